"""The HTML report: the PDF's content as one self-contained page (figures as data URIs)."""

from __future__ import annotations

import base64
from html import escape

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

_CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1b1b1b;
max-width:860px;margin:24px auto;padding:0 16px}
h1{color:#1f4e79;font-size:24px;margin:0}h2{color:#1f4e79;font-size:17px;margin:22px 0 6px;
border-bottom:1px solid #b8c4d0;padding-bottom:2px}
.sub{color:#555;font-size:12px;margin:2px 0 12px}
.notice{background:#fff6e0;border:1px solid #e0b050;padding:8px 10px;color:#5a3d00;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{background:#eef2f6;text-align:left;border-bottom:2px solid #1f4e79}
td,th{padding:3px 6px;border-bottom:1px solid #d6dde5;vertical-align:top}
tr.target td{background:#fdf0d5}code,.mono{font-family:Menlo,Consolas,monospace;font-size:12px;
word-break:break-all}figure{margin:10px 0 18px}figure img{width:100%;height:auto}
figcaption{font-size:12.5px;color:#333}.warn{color:#8a1c1c}
.use{background:#fdecea;border:1px solid #8a1c1c;padding:8px 10px;color:#8a1c1c;font-weight:bold}
footer{margin-top:28px;color:#666;font-size:11px;border-top:1px solid #b8c4d0;padding-top:6px}
"""


def _e(value) -> str:
    return escape("—" if value is None or value == "" else str(value))


def _rows(rows, head=None, mono=()) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = "".join(
            f'<td class="mono">{_e(v)}</td>' if i in mono else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def report_html(content: dict, figures: list[tuple[bytes, str, str | None]]) -> bytes:
    """Render the report as a self-contained HTML page.

    Parameters
    ----------
    content : dict
        What :func:`engine.export.content.build_content` returns.
    figures : list of (bytes, str, str or None)
        One per figure: PNG or JPEG bytes, caption, warning.

    Returns
    -------
    bytes
        UTF-8 HTML with no external references.
    """
    model = content["model"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(content['report'])}</title>",
        '<meta name="generator" content="Lucida ' + _e(content["version"]) + '">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(content['report'])}</h1>",
        f'<p class="sub">Generated {_e(content["generated"])} by Lucida '
        f"{_e(content['version'])}</p>",
    ]
    parts.append(f'<p class="notice">{_e(notice_text(content))}</p>')
    use = intended_use_warning(content)
    if use:
        parts.append(f'<p class="use">{_e(use)}</p>')
    parts.append(_rows(summary_rows(content)))
    parts += ["<h2>Case</h2>", _rows(case_rows(content), ("Item", "Value"))]
    parts += ["<h2>Review</h2>", _rows(review_rows(content), ("Item", "Value"))]

    parts.append(f"<h2>Prediction ({_e(model.get('output') or 'scores')})</h2><table>")
    parts.append(f"<tr><th>Class</th><th>{_e(score_label(content).capitalize())}</th>"
                 "<th></th></tr>")
    for name, p, is_target in prediction_rows(content):
        mark = row_note(content, name, is_target)
        cls = ' class="target"' if is_target else ""
        parts.append(f"<tr{cls}><td>{_e(name)}</td><td>{_e(p)}</td><td>{mark}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Explanations</h2>")
    for n, (png, caption, warning) in enumerate(figures, start=1):
        data = base64.b64encode(png).decode("ascii")
        mime = "image/png" if png.startswith(b"\x89PNG") else "image/jpeg"
        warn = f'<br><span class="warn">Warning: {_e(warning)}</span>' if warning else ""
        parts.append(
            f'<figure><img alt="Figure {n}" src="data:{mime};base64,{data}">'
            f"<figcaption><b>Figure {n}.</b> {_e(caption)}{warn}</figcaption></figure>"
        )

    parts += [
        "<h2>Explainer parameters</h2>",
        _rows(param_rows(content), ("Method", "Parameter", "Value")),
        f"<p>{_e(display_text(content))}</p>",
    ]

    about, rows, summary = metric_rows(content.get("metrics"))
    if rows or summary:
        parts.append(f"<h2>Trust metrics{f' ({_e(about)})' if about else ''}</h2>")
        if summary:
            parts.append(f"<p>{_e(summary)}</p>")
        parts.append(_rows(rows, ("Metric", "Value")))

    validation = content.get("validation")
    if validation:
        parts += ["<h2>Method and its validation</h2>",
                  f"<p>Following {_e(validation['standard'])}.</p>",
                  _rows([tuple(r) for r in validation["rows"][1:]], ("Item", "Value"))]

    mrows = [
        ("Name", model["name"]),
        ("Kind", model.get("kind")),
        ("Card", card_text(model)),
        ("Classes", ", ".join(model["classes"])),
        ("Weights SHA-256", model.get("sha256")),
    ]
    parts += [
        "<h2>Model provenance</h2>",
        _rows(mrows, ("Item", "Value")),
        _rows(list(model["files"].items()), ("File", "SHA-256"), mono=(1,)),
    ]

    parts += [
        "<h2>Software and timing</h2>",
        _rows(list(content["software"].items()), ("Software", "Version")),
    ]
    timings = content.get("timings_ms") or {}
    if timings:
        text = ", ".join(f"{k} {format_value(v)} ms" for k, v in timings.items())
        parts.append(f"<p>Compute time: {_e(text)}.</p>")
    for warning in content.get("warnings") or []:
        parts.append(f'<p class="warn">Warning: {_e(warning)}</p>')
    label = "De-identified" if content["deidentified"] else "Contains patient identifiers"
    parts.append(
        f"<footer>Lucida {_e(content['version'])} · {_e(content['generated'])} · {label} · "
        "Research use only</footer></body></html>"
    )
    return ("\n".join(parts) + "\n").encode("utf-8")
