"""Exports of an explained volume: reports with a row of planes per map, figures, NIfTI maps.

The PDF and HTML reports have the 2-D report's sections (case, prediction, parameters, model,
software), built by :func:`engine.export.content.build_content`; each reviewed map is one figure,
a row of its axial, coronal and sagittal planes (:func:`engine.export.volume.plane_figure`).
Beside them: ``figure_planes.png`` (every reviewed map, a row each, under the prediction, with
orientation letters on each plane and a colour bar in the maps' units), each map as NIfTI on
the volume's affine, a multi-frame Parametric Map per map on the series' slices, and
``report.json``. Every file is checked for the patient's identifiers
before anything is written (unless they are kept on purpose), and all are written together.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from engine.core.atomic import StagedFiles
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import UsageError
from engine.core.jsonsafe import json_bytes
from engine.export import FILE_NAMES, export_options, reviewed_maps
from engine.export.content import build_content
from engine.export.figure import FigureOptions, prediction_line
from engine.export.identity import case_scrubber
from engine.export.provenance import method_title
from engine.export.report_html import report_html
from engine.export.report_pdf import report_pdf
from engine.export.results import file_key
from engine.export.reviewed import ReviewedView, reviewed_view
from engine.export.volume import plane_figure, plane_letters, png_bytes, write_map_nifti
from engine.studies.planes import PLANES

#: What :func:`write_volume_exports` writes.
VOLUME_FORMATS = ("pdf", "html", "png", "nifti", "pm")
#: The figure of every reviewed map's three planes.
PLANES_FIGURE = "figure_planes.png"


def _formats(formats) -> list[str]:
    if isinstance(formats, str):
        formats = formats.split(",")
    wanted = [f.strip().lower() for f in formats if f and f.strip()]
    unknown = [f for f in wanted if f not in VOLUME_FORMATS]
    if unknown:
        raise UsageError(f"unknown volume export format(s): {', '.join(unknown)}",
                         fix=f"use {', '.join(VOLUME_FORMATS)}")
    return wanted


def _window(volume, options: FigureOptions) -> tuple[float, float]:
    if options.window is not None:
        return tuple(float(v) for v in options.window)
    preset = volume.default_window
    return float(preset.center), float(preset.width)


def write_volume_exports(
    result,
    volume,
    out_dir: Path | str,
    formats="pdf,html,png,nifti",
    *,
    keep_identifiers: bool = False,
    figure_options: FigureOptions | dict | None = None,
    point=None,
    all_maps: bool = False,
    view: ReviewedView | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Write the chosen exports of one explained volume.

    Parameters
    ----------
    result : ExplainResult
        A 3-D model's explanation of ``volume`` (maps on its voxel grid).
    volume : Volume
        The explained volume.
    out_dir : Path or str
        Folder to write to (created if missing).
    formats : list of str or str
        Subset of ``pdf``, ``html`` (reports with a row of planes per map), ``png``
        (``figure_planes.png``), ``nifti`` (``heatmap_<method>_<layer>.nii.gz``) and ``pm``
        (``explanation_pm_<method>_<layer>.dcm``, multi-frame Parametric Maps on the DICOM
        series' slices). ``report.json`` is always written.
    keep_identifiers : bool
        Keep patient identifiers, on purpose; by default every file is checked for them.
    figure_options : FigureOptions or dict, optional
        The map on screen (``method``, ``layer``), window, colour map and opacity (a dict is
        read as the GUI's view state).
    point : array-like, optional
        LPS mm the planes pass through (the viewer's crosshair); each map's peak by default.
    all_maps : bool
        Every map of the result, not only the one on screen.
    view : ReviewedView, optional
        The review window's state: its contrasted class and the reviewer's verdict are
        recorded (and its display drawn when ``figure_options`` is not given).
    progress, cancel
        Progress callback and cancel token, checked between files.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ExportError
        If anything cannot be written; nothing of this export is left behind.
    UsageError
        For an unknown format, or a result without the map on screen.
    """
    wanted = _formats(formats)
    seen = reviewed_view(result, view, figure_options)
    options = export_options(result, figure_options if figure_options is not None or
                             view is None else seen.figure_options())
    window = _window(volume, options)
    options = replace(options, window=window)
    keys = reviewed_maps(result, options, all_maps)
    report = progress or (lambda fraction, message="": None)
    scrubber = case_scrubber(volume, keep_identifiers)
    if seen.verdict is not None:
        # The comment is free text: it may name the patient.
        seen = replace(seen, verdict=replace(seen.verdict,
                                             comment=scrubber.text(seen.verdict.comment)))
    steps = len(keys) + len(wanted) + 1

    def step(n: int, message: str) -> None:
        if cancel is not None:
            cancel.check()
        report(n / steps, message)

    where = "the crosshair" if point is not None else "the map's peak"
    rows, figures, captions = [], [], {}
    for n, key in enumerate(keys):
        step(n, f"drawing the planes of {key[0]} / {key[1]}")
        item = result.maps[key]
        label = f"{method_title(key[0])} {key[1]}"
        rgb = plane_figure(volume, [(label, item.heatmap)], point, window, options.colormap,
                           options.opacity, threshold=options.threshold,
                           signed=bool(item.signed))
        rows.append((label, item))
        caption = (f"{label}: axial, coronal and sagittal planes through {where}, resampled in "
                   f"patient space; map scaled to its own peak ({item.units}).")
        figures.append((png_bytes(rgb), scrubber.text(caption), scrubber.text(item.warning or "")
                        or None))
        captions[key] = f"Figure {n + 1}"

    outputs: list[tuple[str, bytes]] = []
    planes = None
    if "png" in wanted:
        step(len(keys), "drawing the plane figure")
        planes = {
            "file": PLANES_FIGURE,
            "prediction": scrubber.text(prediction_line(result, seen.versus)),
            "letters": {p: list(vars(plane_letters(volume, p)).values()) for p in PLANES},
            "colour_bar": {"colormap": options.colormap,
                           "signed": any(item.signed for _, item in rows),
                           "units": ", ".join(dict.fromkeys(item.units for _, item in rows))},
        }
        outputs.append((PLANES_FIGURE, png_bytes(plane_figure(
            volume, [(label, item.heatmap) for label, item in rows], point, window,
            options.colormap, options.opacity, threshold=options.threshold,
            signed=planes["colour_bar"]["signed"], units=planes["colour_bar"]["units"],
            prediction=planes["prediction"]))))
    if "nifti" in wanted:
        step(len(keys) + 1, "writing the maps as NIfTI")
        with tempfile.TemporaryDirectory() as tmp:
            for key in keys:
                name = f"heatmap_{file_key(*key)}.nii.gz"
                path = write_map_nifti(result.maps[key].heatmap, volume, Path(tmp) / name, *key)
                outputs.append((name, path.read_bytes()))
    reports = [k for k in ("pdf", "html") if k in wanted]
    reviewed = replace(result, maps={key: result.maps[key] for key in keys})
    if "pm" in wanted:
        from engine.export.dicom_objects import research_volume_files

        step(len(keys) + 2, "building the multi-frame Parametric Maps")
        outputs += research_volume_files(reviewed.maps, volume,
                                         keep_identifiers=keep_identifiers)
    content = build_content(reviewed, volume, keep_identifiers=keep_identifiers,
                            scrubber=scrubber, options=options, figures=captions,
                            files=[name for name, _ in outputs] + [FILE_NAMES[k]
                                                                   for k in reports],
                            view=seen)
    if planes is not None:
        content["planes_figure"] = planes
    if "pdf" in wanted:
        step(steps - 2, "typesetting the PDF report")
        outputs.append((FILE_NAMES["pdf"], report_pdf(content, figures)))
    if "html" in wanted:
        step(steps - 1, "writing the HTML report")
        outputs.append((FILE_NAMES["html"], report_html(content, figures)))
    outputs.append((FILE_NAMES["json"], json_bytes(content)))
    for name, data in outputs:
        scrubber.check(data, str(Path(out_dir) / name))
    with StagedFiles(out_dir) as staged:
        for name, data in outputs:
            staged.add(name, data)
        written = staged.commit()
    report(1.0, f"wrote {len(written)} files")
    return written

