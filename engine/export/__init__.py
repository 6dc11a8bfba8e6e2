"""Exports: annotated figures, PDF and HTML reports, a JSON sidecar and DICOM Secondary Capture.

Everything is de-identified by default (DICOM PS3.15 Annex E, basic profile), and written
all-or-nothing: a failed export leaves no half-written file and raises one-line
:class:`~engine.core.errors.ExportError`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.core.atomic import StagedFiles
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import UsageError
from engine.core.jsonsafe import json_bytes
from engine.core.pseudonym import Pseudonyms
from engine.export.content import build_content
from engine.export.dicom_sc import secondary_capture
from engine.export.figure import (
    FigureOptions,
    RenderedFigure,
    figure_png,
    pick_map,
    render_figure,
    report_image,
    with_kind,
)
from engine.export.identity import case_name, case_scrubber
from engine.export.report_html import report_html
from engine.export.report_pdf import report_pdf
from engine.export.reviewed import ReviewedView, reviewed_view

__all__ = ["FORMATS", "ExportView", "FigureOptions", "RenderedFigure", "ReviewedView",
           "export_view", "render_figure", "write_reports"]

#: Formats :func:`write_reports` understands; the JSON sidecar comes with every export.
FORMATS = ("png", "pdf", "html", "dicom", "pm", "sr", "json")
#: Resolution of the figures inside PDF and HTML reports: sharp in print at page width, while
#: keeping a report of several figures to a few megabytes.
REPORT_DPI = 200
#: File name of each format inside the output folder.
FILE_NAMES = {
    "png": "figure.png",
    "pdf": "report.pdf",
    "html": "report.html",
    "dicom": "figure_sc.dcm",
    "json": "report.json",
}


def parse_formats(formats) -> list[str]:
    """The export formats a list or comma-separated string names, checked (one line if not)."""
    if isinstance(formats, str):
        formats = formats.split(",")
    wanted = [f.strip().lower() for f in formats if f and f.strip()]
    wanted = ["dicom" if f in ("dcm", "sc") else f for f in wanted]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise UsageError(
            f"unknown report format {', '.join(bad) or '(none)'}",
            fix=f"use a comma-separated subset of {','.join(FORMATS)}",
        )
    return list(dict.fromkeys(wanted))


def export_options(result, figure_options: FigureOptions | dict | None) -> FigureOptions:
    """The figure options one export of ``result`` draws with, once it is known to have maps.

    Parameters
    ----------
    result : ExplainResult
        The explanation to export.
    figure_options : FigureOptions or dict, optional
        Layout and display settings (a dict is read as the GUI's view state); the defaults
        when omitted.

    Returns
    -------
    FigureOptions
        The settings to draw with.

    Raises
    ------
    UsageError
        If the result has no map, or for an unknown figure setting.
    """
    if not result.maps:
        raise UsageError("the result has no explanation map to export", fix="run a method first")
    if isinstance(figure_options, dict):
        return FigureOptions.from_view_state(figure_options)
    return figure_options or FigureOptions()


def reviewed_maps(result, options: FigureOptions, all_maps: bool = False) -> list:
    """The (method, layer) keys one export shows, in the order the report shows them.

    By default: the map on screen, then the maps of the compare grid when it is shown
    (``options.compare``). With ``all_maps``: every map of the result.

    Raises
    ------
    UsageError
        If the map on screen, or a compared map, is not in the result.
    """
    if all_maps:
        return list(result.maps)
    shown = pick_map(result, options.method, options.layer)
    keys = [(shown.method, shown.layer)]
    for key in options.compare or ():
        if key not in result.maps:
            raise UsageError(f"the compare grid shows {key[0]}/{key[1]}, which has no map",
                             fix="let the compare grid finish before exporting")
        keys.append(tuple(key))
    return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class ExportView:
    """What one export shows, as results restricted to the maps that go into it.

    Attributes
    ----------
    reviewed : ExplainResult
        The map on screen, then the compare grid's maps (or every map, with ``all_maps``).
    grid : ExplainResult or None
        The maps of the compare grid when it is shown (every map with ``all_maps``).
    figure : ExplainResult
        What the annotated figure and the DICOM Secondary Capture draw: the grid's maps for
        the grid layout, the reviewed ones otherwise.
    report_maps : list of (method, layer)
        The maps that get a figure of their own in the PDF and HTML reports.
    """

    reviewed: Any
    grid: Any
    figure: Any
    report_maps: list


def export_view(result, options: FigureOptions, all_maps: bool = False) -> ExportView:
    """Decide what an export of ``result`` holds (see :class:`ExportView`)."""
    keys = reviewed_maps(result, options, all_maps)
    reviewed = replace(result, maps={key: result.maps[key] for key in keys})
    grid = None
    if all_maps and len(keys) > 1:
        grid = reviewed
    elif options.compare:
        grid = replace(result, maps={tuple(k): result.maps[tuple(k)] for k in options.compare})
    figure = grid if options.kind == "grid" and grid is not None else reviewed
    return ExportView(reviewed, grid, figure, keys if all_maps else keys[:1])


def write_reports(
    result,
    image,
    out_dir: Path | str,
    formats,
    keep_identifiers: bool = False,
    metrics: dict | None = None,
    figure_options: FigureOptions | dict | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    all_maps: bool = False,
    view: ReviewedView | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> list[Path]:
    """Write the chosen exports of one explained image.

    Every output holds what was reviewed: the map on screen (``figure_options.method`` and
    ``layer``), and the compare grid when it was shown (``figure_options.compare``), unless
    ``all_maps`` asks for every map of the result. The reports record the trust metrics, the
    colour scale, the ROI, the contrasted class, the window and the reviewer's verdict.
    The window and the CLI both call this function: the window with its state as ``view``,
    the CLI with ``metrics`` and ``figure_options``.

    Parameters
    ----------
    result : ExplainResult
        The explanation: maps, prediction, parameters, timings, model description.
    image : Image
        The explained image.
    out_dir : Path or str
        Folder to write to (created if missing).
    formats : list of str or str
        Subset of ``png`` (annotated figure), ``pdf``, ``html``, ``dicom`` (Secondary Capture),
        ``pm`` (a Parametric Map per map), ``sr`` (Comprehensive SR) and ``json``; a
        comma-separated string is accepted. ``report.json`` is always written.
    keep_identifiers : bool
        Keep patient identifiers, on purpose. By default every output is de-identified (the
        case is called by its pseudonym, the model by its name and hashes) and checked byte
        by byte for the patient's name and ID and the image's file name and folder before
        it is written.
    metrics : dict, optional
        Trust metrics to include (they replace the view's).
    figure_options : FigureOptions or dict, optional
        Layout and display settings (a dict is read as the GUI's view state); by default
        the view's.
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : CancelToken, optional
        Checked between outputs; cancelling writes nothing.
    all_maps : bool
        Every map of the result ("All layers"): a report figure per map, and a grid of all.
    view : ReviewedView, optional
        The review window's state: the map and display, its metrics, scale, ROI, contrasted
        class and the reviewer's verdict.
    pseudonyms : Pseudonyms, optional
        The run's pseudonyms (see :func:`engine.export.results.output_name`); the case is
        ``case-001`` without them.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ExportError
        If anything cannot be written; no file of this export is left behind.
    UsageError
        For an unknown format or figure setting.
    """
    wanted = parse_formats(formats)
    seen = reviewed_view(result, view, figure_options, metrics)
    options = export_options(result, figure_options if figure_options is not None
                             else seen.figure_options())
    metrics = seen.metrics
    shown = export_view(result, options, all_maps)
    reviewed, grid, report_maps = shown.reviewed, shown.grid, shown.report_maps
    report = progress or (lambda fraction, message="": None)
    scrubber = case_scrubber(image, keep_identifiers)
    if seen.verdict is not None:
        # The comment is free text: it may name the patient.
        seen = replace(seen, verdict=replace(seen.verdict,
                                             comment=scrubber.text(seen.verdict.comment)))
    outputs: list[tuple[str, bytes]] = []
    reports_wanted = bool({"pdf", "html"} & set(wanted))
    steps = len(wanted) + (len(report_maps) + (grid is not None) if reports_wanted else 0) + 1
    done = 0

    def step(message: str) -> None:
        nonlocal done
        if cancel is not None:
            cancel.check()
        report(done / steps, message)
        done += 1

    if {"png", "dicom"} & set(wanted):
        step("drawing the figure")
        figure = render_figure(shown.figure, image, options, keep_identifiers=keep_identifiers)
        if "png" in wanted:
            outputs.append(("png", figure_png(figure, scrubber)))
        if "dicom" in wanted:
            step("building the DICOM Secondary Capture")
            derivation = scrubber.text(f"Lucida {figure.caption}")
            dataset = getattr(image, "dataset", None)
            outputs.append(
                (
                    "dicom",
                    secondary_capture(
                        figure.rgb,
                        dataset,
                        keep_identifiers=keep_identifiers,
                        derivation=derivation,
                    ),
                )
            )

    if {"pm", "sr"} & set(wanted):
        from engine.export.dicom_objects import research_files

        step("building the DICOM Parametric Map and SR")
        # Named files: one Parametric Map per reviewed map, and the SR.
        outputs += research_files(reviewed, image, set(wanted), metrics=metrics,
                                  keep_identifiers=keep_identifiers, verdict=seen.verdict)

    figures: list[tuple[bytes, str, str | None]] = []
    captions: dict[tuple[str, str], str] = {}
    if reports_wanted:
        dpi = min(options.dpi, REPORT_DPI)
        for method, layer in report_maps:
            step(f"drawing {method} / {layer}")
            per_map = with_kind(options, "side_by_side", method=method, layer=layer,
                                caption=False, dpi=dpi)
            rendered = render_figure(reviewed, image, per_map, keep_identifiers=keep_identifiers)
            warning = reviewed.maps[method, layer].warning
            figures.append((report_image(rendered, scrubber), scrubber.text(rendered.caption),
                            scrubber.text(warning or "") or None))
            captions[method, layer] = f"Figure {len(figures)}"
        if grid is not None:
            step("drawing the compare grid")
            rendered = render_figure(grid, image, with_kind(options, "grid", caption=False,
                                                            dpi=dpi),
                                     keep_identifiers=keep_identifiers)
            caption = scrubber.text(rendered.caption)
            figures.append((report_image(rendered, scrubber), caption, None))
            for key in grid.maps:
                captions.setdefault(key, f"Figure {len(figures)}")

    names = [FILE_NAMES.get(kind, kind) for kind, _ in outputs] + [
        FILE_NAMES[k] for k in ("pdf", "html") if k in wanted
    ]
    content = build_content(
        reviewed,
        image,
        keep_identifiers=keep_identifiers,
        scrubber=scrubber,
        options=options,
        metrics=metrics,
        files=names,
        figures=captions or None,
        view=seen,
        name=case_name(image, pseudonyms, keep_identifiers),
    )
    if "pdf" in wanted:
        step("typesetting the PDF report")
        outputs.append(("pdf", report_pdf(content, figures)))
    if "html" in wanted:
        step("writing the HTML report")
        outputs.append(("html", report_html(content, figures)))
    outputs.append(("json", json_bytes(content)))

    for kind, data in outputs:
        scrubber.check(data, str(Path(out_dir) / FILE_NAMES.get(kind, kind)))
    step("writing files")
    with StagedFiles(out_dir) as staged:
        for kind, data in outputs:
            staged.add(FILE_NAMES.get(kind, kind), data)
        written = staged.commit()
    report(1.0, f"wrote {len(written)} files")
    return written
