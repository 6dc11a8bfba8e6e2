"""File an explanation into the patient's study: build the objects, keep a copy, send them.

This is the explicit, identified kind of export (:data:`engine.export.dicom_objects.
PATIENT_STUDY`): the Secondary Capture, the Parametric Maps and the SR keep the patient and
study identifiers and the StudyInstanceUID, get new series, reference the source instance, and
go to a PACS node with STOW-RS or C-STORE. A copy is kept under ``<folder>/patient_study/`` so
the send can be checked and repeated (same SOP Instance UIDs: the PACS keeps one copy), and
``result.json`` records what the PACS confirmed, and only that, as sent.
"""

from __future__ import annotations

from pathlib import Path

from engine.core.atomic import StagedFiles
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.case import Verdict
from engine.core.errors import UsageError
from engine.export.dicom_objects import PATIENT_STUDY, explanation_objects, volume_map_objects
from engine.export.export_kind import record_export
from engine.export.figure import FigureOptions, render_figure
from engine.export.results import write_explain_outputs
from engine.pacs.config import Node, load_config
from engine.pacs.errors import PacsError
from engine.pacs.send import send_datasets

#: Sub-folder holding the identified objects of a filed explanation.
FILED_FOLDER = "patient_study"


def check_send(node_name: str, *, keep_identifiers: bool, config_path=None) -> Node:
    """Check, before any work, that ``explain --send NODE`` can file into the patient's study.

    Parameters
    ----------
    node_name : str
        The node to send to.
    keep_identifiers : bool
        Whether the run keeps identifiers (``--keep-identifiers``).
    config_path : Path, optional
        The node file (default: :func:`engine.pacs.config.config_path`).

    Returns
    -------
    Node

    Raises
    ------
    UsageError
        If the run de-identifies: a de-identified object cannot be filed into a study.
    PacsError
        If the node is unknown or the node file is bad.
    """
    if not keep_identifiers:
        raise UsageError(
            "--send files the results into the patient's study, which needs the patient's "
            "identifiers, but this run de-identifies its outputs (a research export)",
            fix="add --keep-identifiers to file into the study on purpose, or drop --send "
            "for a de-identified research export")
    return load_config(config_path).node(node_name)


def file_into_study(result, image, folder: Path | str, node: Node, *,
                    metrics: dict | None = None, colormap: str = "jet",
                    options: FigureOptions | None = None,
                    verdict: Verdict | None = None) -> str:
    """Build, keep and send the objects of one explained DICOM image to its study on ``node``.

    Parameters
    ----------
    result : ExplainResult
        The explanation.
    image : Image
        The explained image (DICOM).
    folder : Path or str
        The image's output folder, holding its ``result.json``.
    node : Node
        Where to send.
    metrics : dict, optional
        Trust metrics, recorded in the SR.
    colormap : str
        Colormap of the figure in the Secondary Capture.
    options : FigureOptions, optional
        The figure the Secondary Capture holds (what the viewer showed); by default the
        overlay in ``colormap``.
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR.

    Returns
    -------
    str
        One line saying what was filed where.

    Raises
    ------
    UsageError
        For a raster image, which has no study to file into.
    PacsError
        If the send failed; ``result.json`` then says ``"sent": false`` and lists the
        instances the PACS confirmed, if any.
    """
    folder = Path(folder)
    if getattr(image, "dataset", None) is None:
        raise UsageError("is not a DICOM image, so it has no study to file into",
                         path=image.path, fix="explain a DICOM image, or drop --send")
    figure = render_figure(result, image, options or FigureOptions(colormap=colormap))
    objects = explanation_objects(result, image, kind=PATIENT_STUDY, metrics=metrics,
                                  figure_rgb=figure.rgb,
                                  derivation=f"Lucida {figure.caption}", verdict=verdict)
    return _keep_and_send(objects, image.dataset, folder, node, what=(
        f"{len(objects)} objects (Secondary Capture, {len(objects) - 2} Parametric Map(s), SR)"))


def file_volume_into_study(maps: dict, volume, folder: Path | str, node: Node, *,
                           result=None, verdict: Verdict | None = None) -> str:
    """File a volume's maps into its study as multi-frame Parametric Maps on its slices.

    Parameters
    ----------
    maps : dict
        ``(method, layer) -> MapResult`` with ``(slices, rows, columns)`` heatmaps.
    volume : Volume
        The explained DICOM series.
    folder : Path or str
        The volume's output folder, holding its ``result.json``.
    node : Node
        Where to send.
    result : ExplainResult, optional
        The explanation: given, an SR of its prediction (and ``verdict``) is filed too.
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR.

    Returns
    -------
    str
        One line saying what was filed where.

    Raises
    ------
    UsageError
        For a volume that is not a DICOM series (NIfTI).
    PacsError
        If the send failed; ``result.json`` then says ``"sent": false``.
    """
    objects = volume_map_objects(maps, volume, kind=PATIENT_STUDY, result=result,
                                 verdict=verdict)
    first = volume.images[0].dataset
    what = f"{len(maps)} multi-frame Parametric Map(s)" + (", SR" if result is not None else "")
    return _keep_and_send(objects, first, Path(folder), node, what=what)


def _keep_and_send(objects, source, folder: Path, node: Node, *, what: str) -> str:
    """Keep a copy of the objects, send them, and record in ``result.json`` what was sent."""
    with StagedFiles(folder / FILED_FOLDER) as staged:
        for obj in objects:
            staged.add(obj.name, obj.to_bytes())
        staged.commit()
    record = {
        "kind": PATIENT_STUDY,
        "node": node.name,
        "protocol": node.protocol,
        "study_uid": str(source.StudyInstanceUID),
        "source_sop_uid": str(source.SOPInstanceUID),
        "folder": FILED_FOLDER,
        "instances": [
            {"file": obj.name, "sop_class_uid": str(obj.dataset.SOPClassUID),
             "sop_instance_uid": str(obj.dataset.SOPInstanceUID),
             "series_instance_uid": str(obj.dataset.SeriesInstanceUID)}
            for obj in objects
        ],
    }
    try:
        report = send_datasets(node, [obj.dataset for obj in objects])
    except PacsError as exc:
        stored = set(getattr(exc, "stored", []))
        for item in record["instances"]:
            item["stored"] = item["sop_instance_uid"] in stored
        record.update(sent=False, error=exc.one_line())
        record_export(folder, record)
        raise
    for item in record["instances"]:
        item["stored"] = item["sop_instance_uid"] in report.stored
    record.update(sent=True, attempts=report.attempts)
    record_export(folder, record)
    return f"  filed {what} into study {source.StudyInstanceUID} on {node.name} ({node.protocol})"


def file_reviewed(result, image, folder: Path | str, node: Node, *,
                  options: FigureOptions | None = None, metrics: dict | None = None,
                  verdict: Verdict | None = None,
                  progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> str:
    """File what was reviewed into the patient's study, as ``explain --send`` does.

    The GUI's way in: ``folder`` gets the explanation's ``result.json`` (with the maps and
    overlays, identifiers kept: this is the identified kind), then :func:`file_into_study`
    builds, keeps and sends the objects and records the send in ``result.json``.

    Parameters
    ----------
    result : ExplainResult
        The maps reviewed (the map on screen, the compare grid's when shown).
    image : Image
        The explained DICOM image.
    folder : Path or str
        Where the files and the kept copy of the objects go.
    node : Node
        Where to send.
    options : FigureOptions, optional
        The figure the Secondary Capture holds.
    metrics : dict, optional
        Trust metrics, recorded in the SR.
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR.
    progress : callable, optional
        ``progress(fraction, message)``.
    cancel : CancelToken, optional
        Checked before the send starts; a send under way is not interrupted, so nothing is
        ever half-sent by a cancel.

    Returns
    -------
    str
        The line saying what was filed where.

    Raises
    ------
    UsageError
        For a raster image.
    PacsError
        If the send failed (``result.json`` says ``"sent": false``).
    Cancelled
        If cancelled before the send.
    """
    report = progress or (lambda fraction, message="": None)
    options = options or FigureOptions()
    if getattr(image, "dataset", None) is None:
        raise UsageError("is not a DICOM image, so it has no study to file into",
                         path=image.path, fix="explain a DICOM image, or make a research export")
    if cancel is not None:
        cancel.check()
    report(0.0, "writing the explanation")
    write_explain_outputs(result, image, Path(folder), dict(result.timings_ms), metrics,
                          cmap=options.colormap, opacity=options.opacity,
                          keep_identifiers=True)
    if cancel is not None:
        cancel.check()
    report(0.3, f"building the DICOM objects and sending them to {node.name}")
    line = file_into_study(result, image, folder, node, metrics=metrics, options=options,
                           verdict=verdict)
    report(1.0, f"filed into the study on {node.name}")
    return line.strip()


def file_reviewed_volume(result, volume, folder: Path | str, node: Node, *,
                         options: FigureOptions | None = None, all_maps: bool = False,
                         verdict: Verdict | None = None, progress: ProgressFn | None = None,
                         cancel: CancelToken | None = None) -> str:
    """File what was reviewed of a volume into the patient's study: the GUI's way in.

    ``folder`` gets the volume's maps, overlays and ``result.json`` (identifiers kept: this
    is the identified kind), then :func:`file_volume_into_study` files a multi-frame
    Parametric Map per reviewed map and an SR of the prediction and the verdict.

    Parameters
    ----------
    result : ExplainResult
        A 3-D model's explanation of ``volume``.
    volume : Volume
        The explained DICOM series.
    folder : Path or str
        Where the files and the kept copy of the objects go.
    node : Node
        Where to send.
    options : FigureOptions, optional
        The map on screen (``method``, ``layer``) and the compare grid's maps.
    all_maps : bool
        Every map of the result, not only the reviewed ones.
    verdict : Verdict, optional
        The reviewer's verdict, recorded in the SR.
    progress, cancel
        As for :func:`file_reviewed`: a send under way is not interrupted.

    Returns
    -------
    str
        The line saying what was filed where.

    Raises
    ------
    UsageError
        For a volume that is not a DICOM series.
    PacsError
        If the send failed (``result.json`` says ``"sent": false``).
    Cancelled
        If cancelled before the send.
    """
    from engine.export import reviewed_maps
    from engine.export.volume import volume_result_json, write_volume_outputs

    report = progress or (lambda fraction, message="": None)
    options = options or FigureOptions()
    if not getattr(volume, "images", None):
        raise UsageError("is not a DICOM series, so it has no study to file into",
                         path=volume.path, fix="open the DICOM series, or make a research export")
    maps = {key: result.maps[key] for key in reviewed_maps(result, options, all_maps)}
    if cancel is not None:
        cancel.check()
    report(0.0, "writing the explanation")
    content = volume_result_json(
        volume, maps, model=result.model, classes=list(result.classes),
        scores=list(result.scores), target=result.target, params=dict(result.params),
        timings_ms=dict(result.timings_ms), warnings=list(result.warnings),
        intended_use=result.intended_use, versus=result.versus, keep_identifiers=True)
    write_volume_outputs(volume, maps, Path(folder), content, cmap=options.colormap,
                         opacity=options.opacity)
    if cancel is not None:
        cancel.check()
    report(0.3, f"building the DICOM objects and sending them to {node.name}")
    line = file_volume_into_study(maps, volume, folder, node, result=result, verdict=verdict)
    report(1.0, f"filed into the study on {node.name}")
    return line.strip()
