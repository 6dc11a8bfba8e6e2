"""The PDF report, drawn with reportlab: real vector text, searchable and copyable.

reportlab rather than Qt's QPdfWriter because the engine must not import Qt (the CLI and tests
write reports without a GUI), and because its flowables (paragraphs, tables that split across
pages, page templates) give a typeset document rather than a painted page.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from engine.export.content import (
    card_text,
    case_rows,
    display_text,
    format_value,
    intended_use_warning,
    metric_rows,
    notice_text,
    param_rows,
    prediction_rows,
    review_rows,
    row_note,
    score_label,
    summary_rows,
)

# Images go in as binary Flate streams. ASCII85 text encoding would make them 25% bigger, and
# without reportlab's optional C accelerator it takes seconds per figure.
rl_config.useA85 = 0

_ACCENT = colors.HexColor("#1f4e79")
_GRID = colors.HexColor("#b8c4d0")
_SHADE = colors.HexColor("#eef2f6")


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    body = ParagraphStyle(
        "body",
        parent=base["BodyText"],
        fontName="Helvetica",
        fontSize=9,
        leading=11.5,
        alignment=TA_LEFT,
    )
    return {
        "title": ParagraphStyle(
            "title",
            parent=body,
            fontName="Helvetica-Bold",
            fontSize=17,
            leading=21,
            textColor=_ACCENT,
        ),
        "sub": ParagraphStyle("sub", parent=body, fontSize=8.5, textColor=colors.HexColor("#555")),
        "h2": ParagraphStyle(
            "h2",
            parent=body,
            fontName="Helvetica-Bold",
            fontSize=11.5,
            leading=14,
            spaceBefore=9,
            spaceAfter=4,
            textColor=_ACCENT,
        ),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=10),
        "mono": ParagraphStyle("mono", parent=body, fontName="Courier", fontSize=7.2, leading=9),
        "caption": ParagraphStyle(
            "caption",
            parent=body,
            fontSize=8,
            leading=10,
            textColor=colors.HexColor("#333"),
            spaceBefore=2,
        ),
        "warn": ParagraphStyle(
            "warn", parent=body, fontSize=8.5, leading=11, textColor=colors.HexColor("#8a1c1c")
        ),
        "notice": ParagraphStyle(
            "notice", parent=body, fontSize=8.5, leading=11, textColor=colors.HexColor("#5a3d00")
        ),
    }


def _p(text, style) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(rows, widths, header: bool = True, mono_cols=(), styles=None) -> Table:
    st = styles
    cells = []
    for r, row in enumerate(rows):
        out = []
        for c, value in enumerate(row):
            if r == 0 and header:
                style = ParagraphStyle("th", parent=st["small"], fontName="Helvetica-Bold")
            else:
                style = st["mono"] if c in mono_cols else st["small"]
            out.append(value if isinstance(value, Paragraph) else _p(value, style))
        cells.append(out)
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    commands = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, _GRID),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
    ]
    if header:
        commands += [
            ("BACKGROUND", (0, 0), (-1, 0), _SHADE),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, _ACCENT),
        ]
    table.setStyle(TableStyle(commands))
    return table


def _footer(content: dict):
    label = "De-identified" if content["deidentified"] else "CONTAINS PATIENT IDENTIFIERS"

    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#666"))
        left = f"Lucida {content['version']} · {content['generated']} · {label}"
        canvas.drawString(doc.leftMargin, 10 * mm, left)
        canvas.drawRightString(
            A4[0] - doc.rightMargin, 10 * mm, f"Research use only · page {doc.page}"
        )
        canvas.setStrokeColor(_GRID)
        canvas.setLineWidth(0.4)
        canvas.line(doc.leftMargin, 13 * mm, A4[0] - doc.rightMargin, 13 * mm)
        canvas.restoreState()

    return draw


def report_pdf(content: dict, figures: list[tuple[bytes, str, str | None]]) -> bytes:
    """Typeset the report as a PDF.

    Parameters
    ----------
    content : dict
        What :func:`engine.export.content.build_content` returns (already de-identified
        unless identifiers are kept).
    figures : list of (bytes, str, str or None)
        One per figure: PNG or JPEG bytes, caption, warning.

    Returns
    -------
    bytes
        The PDF; page streams are left uncompressed so the text stays greppable, images are
        compressed.
    """
    st = _styles()
    buf = io.BytesIO()
    width = A4[0] - 36 * mm
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=content["report"],
        author="Lucida",
        subject=f"{content['maps'][0]['title'] if content['maps'] else ''} explanation, "
        f"model {content['model']['name']}",
        creator=f"Lucida {content['version']}",
        keywords="explainable AI, saliency, research use only",
        pageCompression=0,
    )
    story = [
        _p(content["report"], st["title"]),
        _p(f"Generated {content['generated']} by Lucida {content['version']}", st["sub"]),
        Spacer(1, 5),
        _notice(content, st, width),
        *_use_warning(content, st, width),
        Spacer(1, 6),
        _summary(content, st, width),
    ]
    # Short sections stay whole, so no heading is left alone at the foot of a page.
    story.append(KeepTogether(_case_section(content, st, width)))
    story.append(KeepTogether([_p("Review", st["h2"]),
                               _pairs(review_rows(content), st, width, shade=False)]))
    story.append(KeepTogether(_prediction_section(content, st, width)))
    story += _figure_section(content, figures, st, width)
    story.append(KeepTogether(_params_section(content, st, width)))
    story += _metrics_section(content, st, width)
    story += _validation_section(content, st, width)
    story += _model_section(content, st, width)
    story += _software_section(content, st, width)
    doc.build(story, onFirstPage=_footer(content), onLaterPages=_footer(content))
    return buf.getvalue()


def _notice(content: dict, st, width) -> Table:
    box = Table([[_p(notice_text(content), st["notice"])]], colWidths=[width], hAlign="LEFT")
    box.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff6e0")),
                ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#e0b050")),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
            ]
        )
    )
    return box


def _use_warning(content: dict, st, width) -> list:
    """A red box when the image is outside the model's intended use (or that is unknown)."""
    text = intended_use_warning(content)
    if text is None:
        return []
    box = Table([[_p(text, st["warn"])]], colWidths=[width], hAlign="LEFT")
    box.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fdecea")),
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#8a1c1c")),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))
    return [Spacer(1, 4), box]


def _pairs(pairs: list[tuple[str, str]], st, width, shade: bool) -> Table:
    """Label/value pairs, two pairs per row, to keep short facts compact."""
    label = ParagraphStyle(
        "label", parent=st["small"], fontName="Helvetica-Bold", textColor=_ACCENT
    )
    cells = []
    for i in range(0, len(pairs), 2):
        row = []
        for name, value in pairs[i : i + 2]:
            row += [_p(name, label), _p(value or "—", st["small"])]
        cells.append(row + [""] * (4 - len(row)))
    table = Table(cells, colWidths=[0.18 * width, 0.32 * width] * 2, hAlign="LEFT")
    commands = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3.5),
    ]
    if shade:
        commands += [
            ("BOX", (0, 0), (-1, -1), 0.5, _GRID),
            ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f7f9fb")),
        ]
    else:
        commands.append(("LINEBELOW", (0, 0), (-1, -1), 0.25, _GRID))
    table.setStyle(TableStyle(commands))
    return table


def _summary(content: dict, st, width) -> Table:
    return _pairs(summary_rows(content), st, width, shade=True)


def _case_section(content: dict, st, width) -> list:
    return [_p("Case", st["h2"]), _pairs(case_rows(content), st, width, shade=False)]


def _prediction_section(content: dict, st, width) -> list:
    predictions = prediction_rows(content)
    rows = [["Class", score_label(content).capitalize(), ""]]
    rows += [[name, p, row_note(content, name, target)] for name, p, target in predictions]
    table = _table(rows, [0.4 * width, 0.25 * width, 0.35 * width], styles=st)
    target_row = 1 + [target for _, _, target in predictions].index(True)
    table.setStyle(
        TableStyle([("BACKGROUND", (0, target_row), (-1, target_row), colors.HexColor("#fdf0d5"))])
    )
    head = f"Prediction ({content['model']['output'] or 'scores'})"
    return [_p(head, st["h2"]), table]


def _figure_section(content: dict, figures, st, width) -> list:
    out = []
    for n, (png, caption, warning) in enumerate(figures, start=1):
        # The heading travels with the first figure.
        block = [_p("Explanations", st["h2"])] if n == 1 else []
        img = Image(io.BytesIO(png))
        scale = width / img.imageWidth
        img.drawWidth, img.drawHeight = width, img.imageHeight * scale
        block += [img, Paragraph(f"<b>Figure {n}.</b> {escape(caption)}", st["caption"])]
        if warning:
            block.append(_p(f"Warning: {warning}", st["warn"]))
        block.append(Spacer(1, 8))
        out.append(KeepTogether(block))
    return out


def _params_section(content: dict, st, width) -> list:
    rows = [["Method", "Parameter", "Value"], *param_rows(content)]
    return [
        _p("Explainer parameters", st["h2"]),
        _table(rows, [0.3 * width, 0.3 * width, 0.4 * width], styles=st),
        Spacer(1, 3),
        _p(display_text(content), st["small"]),
    ]


def _metrics_section(content: dict, st, width) -> list:
    about, rows, summary = metric_rows(content.get("metrics"))
    if not rows and not summary:
        return []
    head = f"Trust metrics ({about})" if about else "Trust metrics"
    block = [_p(head, st["h2"])]
    if summary:
        block.append(_p(summary, st["body"]))
        block.append(Spacer(1, 3))
    if rows:
        half = (len(rows) + 1) // 2
        table = [["Metric", "Value", "Metric", "Value"]]
        for left, right in zip(rows[:half], rows[half:] + [("", "")], strict=False):
            table.append([*left, *right])
        block.append(_table(table, [0.3 * width, 0.2 * width] * 2, styles=st))
    return [KeepTogether(block)]


def _validation_section(content: dict, st, width) -> list:
    validation = content.get("validation")
    if not validation:
        return []
    rows = [["Item", "Value"], *validation["rows"][1:]]
    return [_p("Method and its validation", st["h2"]),
            _p(f"Following {validation['standard']}.", st["small"]), Spacer(1, 3),
            _table(rows, [0.2 * width, 0.8 * width], styles=st)]


def _model_section(content: dict, st, width) -> list:
    model = content["model"]
    rows = [
        ["Item", "Value"],
        ["Name", model["name"]],
        ["Kind", model.get("kind") or "—"],
        ["Card", card_text(model)],
        ["Classes", ", ".join(model["classes"])],
        ["Weights SHA-256", _p(model.get("sha256") or "—", st["mono"])],
    ]
    files = [["File", "SHA-256"]] + [[path, sha] for path, sha in model["files"].items()]
    out = [
        KeepTogether(
            [_p("Model provenance", st["h2"]), _table(rows, [0.3 * width, 0.7 * width], styles=st)]
        )
    ]
    if len(files) > 1:
        out += [
            Spacer(1, 4),
            _table(files, [0.3 * width, 0.7 * width], mono_cols=(1,), styles=st),
        ]
    return out


def _software_section(content: dict, st, width) -> list:
    items = list(content["software"].items())
    half = (len(items) + 1) // 2
    rows = [["Software", "Version", "Software", "Version"]]
    for left, right in zip(items[:half], items[half:] + [("", "")], strict=False):
        rows.append([*left, *right])
    timings = content.get("timings_ms") or {}
    out = [
        _p("Software and timing", st["h2"]),
        _table(rows, [0.2 * width, 0.3 * width] * 2, styles=st),
    ]
    if timings:
        text = ", ".join(f"{k} {format_value(v)} ms" for k, v in timings.items())
        out += [Spacer(1, 3), _p(f"Compute time: {text}.", st["small"])]
    for warning in content.get("warnings") or []:
        out.append(_p(f"Warning: {warning}", st["warn"]))
    return [KeepTogether(out)]
