"""The report's content, built once and shared by the PDF, the HTML page and the JSON sidecar.

Building one structure and rendering it three ways keeps the promise that the sidecar holds
everything the report shows, and that de-identification is decided in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.core.jsonsafe import jsonable
from engine.core.versions import app_version, library_versions
from engine.export.deid import BASIC_PROFILE_CODE, METHOD, Scrubber
from engine.export.figure import DISCLAIMER, FigureOptions, probability_text, window_used
from engine.export.identity import case_name, image_entry, model_identity
from engine.export.provenance import method_title, timestamp
from engine.export.reviewed import ReviewedView, review_record, reviewed_view
from engine.export.validation import validation_of
from engine.models.findings import findings

#: Identifiers shown in the case section only when the user keeps them, in this order.
CASE_FIELDS = (
    ("PatientName", "Patient name"),
    ("PatientID", "Patient ID"),
    ("PatientBirthDate", "Birth date"),
    ("PatientSex", "Sex"),
    ("AccessionNumber", "Accession number"),
    ("StudyDate", "Study date"),
    ("StudyID", "Study ID"),
    ("StudyDescription", "Study description"),
    ("ReferringPhysicianName", "Referring physician"),
    ("InstitutionName", "Institution"),
)


def _case(image, result, keep: bool, name: str) -> dict:
    path = Path(str(getattr(image, "path", "") or result.image_path))
    case: dict[str, Any] = {
        # De-identified, the case is called by its pseudonym: file names often name the patient.
        "file": path.name if keep else name,
        "modality": str(getattr(image, "modality", "")),
        "photometric": str(getattr(image, "photometric", "")),
        # (rows, columns), or (slices, rows, columns) for a volume.
        "size": [int(v) for v in image.shape],
        "frame": int(result.frame),
        "frames": int(getattr(image, "n_frames", 1)),
    }
    if getattr(image, "kind", None) == "volume":
        case["spacing_mm"] = [float(v) for v in image.spacing]
    if keep:
        ids = image.identifiers()
        case["path"] = str(path)
        case["patient"] = {key: str(ids.get(key, "")) for key, _label in CASE_FIELDS}
    return case


#: What a result says about intended use when nothing was checked.
NOT_CHECKED = {"status": "unknown", "message": "the model's intended use was not checked",
               "problems": [], "out_of_distribution": None}


def intended_use_of(result) -> dict:
    """The result's intended-use check (``status``, ``message``, ``problems``, ...)."""
    return dict(getattr(result, "intended_use", None) or NOT_CHECKED)


def intended_use_warning(content: dict) -> str | None:
    """The warning a report shows first: outside the intended use, or it is unknown.

    Returns None when the image is within the model's intended use.
    """
    use = content.get("intended_use") or NOT_CHECKED
    if use.get("status") == "match":
        return None
    head = "Outside the model's intended use" if use.get("status") == "mismatch" else (
        "Intended use unknown")
    return f"{head}: {use.get('message', '')}"


def _window(image, options: FigureOptions, frame: int) -> list[float] | None:
    used = window_used(image, options, frame)
    return None if used is None else [float(v) for v in used]


def size_text(case: dict) -> str:
    """``columns × rows`` of an image; a volume as the window shows it: slices × rows × columns."""
    size = case["size"]
    if len(size) == 3:
        dz, dy, dx = case.get("spacing_mm") or (0.0, 0.0, 0.0)
        return (f"{size[0]} × {size[1]} × {size[2]} voxels (slices × rows × columns) of "
                f"{dz:.2f} × {dy:.2f} × {dx:.2f} mm")
    return f"{size[1]} × {size[0]}"


def score_label(content: dict) -> str:
    """What the class scores are: probabilities, or a segmentation model's pixel shares."""
    return "pixel share" if content["model"].get("task") == "segmentation" else "probability"


def summary_rows(content: dict) -> list[tuple[str, str]]:
    """Return the report's at-a-glance facts as (label, value) pairs, for PDF and HTML."""
    maps = content["maps"]
    case = content["case"]
    model = content["model"]
    return [
        (
            "Target",
            f"{content['target']} ({score_label(content)} "
            f"{probability_text(content['target_probability'])})",
        ),
        (
            "Model",
            f"{model['name']} ({model.get('output') or 'scores'}, {len(model['classes'])} classes)",
        ),
        ("Methods", ", ".join(dict.fromkeys(m["title"] for m in maps))),
        ("Layers", ", ".join(dict.fromkeys(m["layer"] for m in maps))),
        (
            "Image",
            f"{case['file']} ({case['modality'] or 'image'}, {size_text(case)})",
        ),
        ("Identifiers", "removed" if content["deidentified"] else "KEPT (patient record)"),
        ("Intended use", (content.get("intended_use") or NOT_CHECKED).get("message", "")),
    ] + ([("Findings", findings_text(content))] if content.get("findings") else [])


def findings_text(content: dict) -> str:
    """A multi-label model's findings in one line: each class at or above the threshold."""
    found = content["findings"]
    cut = f"{found['threshold']:.2f}"
    if not found["positive"]:
        return f"none at or above {cut}"
    names = ", ".join(f"{item['class']} ({probability_text(item['probability'])})"
                      for item in found["positive"])
    return f"{names}; threshold {cut}"


def row_note(content: dict, name: str, is_target: bool) -> str:
    """The note beside a class in the prediction table: explained target, finding, both."""
    found = content.get("findings") or {}
    positive = any(item["class"] == name for item in found.get("positive", ()))
    notes = (["explained target"] if is_target else []) + (
        [f"finding (≥ {found['threshold']:.2f})"] if positive else [])
    return ", ".join(notes)


def notice_text(content: dict) -> str:
    """Return the boxed notice at the top of a report: disclaimer and identifier status."""
    text = content["disclaimer"]
    if content["deidentified"]:
        return text + f" Patient identifiers removed ({content['deidentification']['method']})."
    return text + " This report contains patient identifiers: handle it as a patient record."


def case_rows(content: dict) -> list[tuple[str, str]]:
    """Return the case section as (label, value) pairs: identifiers only when kept."""
    case = content["case"]
    if case.get("patient"):
        rows = [(label, str(case["patient"].get(key) or "")) for key, label in CASE_FIELDS]
        rows.append(("File", case.get("path", case["file"])))
    else:
        rows = [("Identifiers", "removed (de-identified export)"), ("File", case["file"])]
    rows += [("Modality", case["modality"]),
             ("Photometric interpretation", case["photometric"])]
    if len(case["size"]) == 3:
        return rows + [("Volume", size_text(case))]
    return rows + [
        ("Image size", f"{size_text(case)} pixels"),
        ("Frame", f"{case['frame'] + 1} of {case['frames']}"),
    ]


def _roi_text(roi: list | None, shape: str | None) -> str:
    if not roi:
        return "none"
    if len(roi) == 4:
        corners = ", ".join(f"{n} {v:g}" for n, v in zip(("x0", "y0", "x1", "y1"), roi,
                                                          strict=True))
        return f"{shape or 'box'}: {corners} (image pixels)"
    return " ".join(f"{v:g}" for v in roi)


def card_text(model: dict) -> str:
    """The model card as a report names it: its file name, or where its hash is listed."""
    if model.get("card"):
        return str(model["card"])
    return "listed by role, with its SHA-256" if "card" in (model.get("files") or {}) else "—"


def review_rows(content: dict) -> list[tuple[str, str]]:
    """Return what the reviewer saw and said, as (label, value) pairs for PDF and HTML.

    The contrasted class, the display window, the colour scale and the ROI of the map shown,
    then the reviewer's verdict with its comment (scrubbed when de-identified).
    """
    review = content.get("review") or {}
    versus = review.get("versus")
    window = review.get("window")
    roi = review.get("roi")
    rows = [
        ("Contrast (versus)", f"{content['target']} versus {versus}" if versus
         else f"none ({content['target']} alone)"),
        ("Window", "n/a (colour image)" if not window else "C {:g} / W {:g}".format(*window)),
        ("Scale", review.get("scale_text") or "—"),
        ("ROI", _roi_text(roi, review.get("roi_shape"))),
    ]
    verdict = review.get("verdict")
    if verdict:
        rows.append(("Reviewer verdict", verdict["value"]))
        rows.append(("Reviewer comment", verdict.get("comment") or "—"))
        if verdict.get("recorded"):
            rows.append(("Verdict recorded", verdict["recorded"]))
    else:
        rows.append(("Reviewer verdict", "not given"))
    return rows


def prediction_rows(content: dict) -> list[tuple[str, str, bool]]:
    """Return (class, score text, is the explained target), highest score first (see
    :func:`score_label` for what the score is)."""
    return [
        (name, probability_text(p), name == content["target"])
        for name, p in sorted(content["prediction"].items(), key=lambda kv: -kv[1])
    ]


def param_rows(content: dict) -> list[tuple[str, str, str]]:
    """Return (method title, parameter, value) once each; one "defaults" row when none is set."""
    params = content.get("params") or {}
    rows: list[tuple[str, str, str]] = []
    for m in content["maps"]:
        for key, value in (params.get(m["method"]) or {}).items():
            row = (m["title"], key, format_value(value))
            if row not in rows:
                rows.append(row)
    return rows or [("all", "—", "defaults (no parameters set)")]


def display_text(content: dict) -> str:
    """Return one sentence naming the layers and the display settings the figures use."""
    disp = content["display"]
    window = (
        "n/a (colour image)" if not disp["window"] else "C {:g} / W {:g}".format(*disp["window"])
    )
    layers = ", ".join(dict.fromkeys(m["layer"] for m in content["maps"]))
    return (
        f"Layers: {layers}. Display: colour map {disp['colormap']}, opacity "
        f"{disp['opacity']:.2f}, threshold {disp['threshold']:.2f}, window {window}"
        f"{', inverted' if disp['invert'] else ''}."
    )


def format_value(value) -> str:
    """Format a parameter or timing value for a report table."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)


#: Keys of a metrics dict that name what was measured rather than a measurement.
_CONTEXT_KEYS = {"method", "layer", "target", "target_name", "summary", "warnings"}


def metric_rows(metrics: dict | None) -> tuple[str, list[tuple[str, str]], str | None]:
    """Return what a report table shows of the trust metrics.

    Parameters
    ----------
    metrics : dict, optional
        From :func:`engine.metrics.case_metrics`.

    Returns
    -------
    about : str
        The method and layer measured (``""`` if not given).
    rows : list of (str, str)
        Metric name and formatted value: numbers, yes/no flags, short settings and the ROI;
        curves and per-step details stay in the JSON sidecar.
    summary : str or None
        The metrics' one-line verdict.
    """
    metrics = metrics or {}
    about = ", ".join(
        str(v)
        for v in (metrics.get("method") and method_title(metrics["method"]), metrics.get("layer"))
        if v
    )
    rows = []
    for key, value in metrics.items():
        if key in _CONTEXT_KEYS:
            continue
        name = key.replace("_", " ")
        if isinstance(value, bool | np.bool_):
            rows.append((name, "yes" if value else "no"))
        elif isinstance(value, int | float | np.number):
            rows.append((name, f"{float(value):.4g}"))
        elif isinstance(value, str) and len(value) <= 40:
            rows.append((name, value))
        elif key == "roi" and isinstance(value, list | tuple):
            rows.append((name, " ".join(str(v) for v in value)))
    summary = metrics.get("summary")
    return about, rows, summary if isinstance(summary, str) else None


def build_content(
    result,
    image,
    *,
    keep_identifiers: bool,
    scrubber: Scrubber,
    options: FigureOptions,
    metrics: dict | None = None,
    figures: dict[tuple[str, str], str] | None = None,
    files: list[str] | None = None,
    view: ReviewedView | None = None,
    name: str | None = None,
) -> dict:
    """Collect everything a report shows, de-identified unless asked otherwise.

    Parameters
    ----------
    result : ExplainResult
        Prediction, maps, parameters, timings and the model description.
    image : Image
        The explained image (for the case section).
    keep_identifiers : bool
        Include patient identifiers and the full path, on purpose.
    scrubber : Scrubber
        Blanks identifiers from all free text when de-identifying.
    options : FigureOptions
        The display settings the figures use (recorded so a figure can be reproduced).
    metrics : dict, optional
        Trust metrics from :func:`engine.metrics.case_metrics`.
    figures : dict, optional
        (method, layer) -> figure file name or caption, per map.
    files : list of str, optional
        Names of the other files written with this report.
    view : ReviewedView, optional
        What the reviewer saw: its metrics (when ``metrics`` is not given), colour scale, ROI,
        contrasted class and verdict are recorded under ``review``.
    name : str, optional
        What this export calls the case (:func:`engine.export.identity.case_name`); by
        default its file stem with ``keep_identifiers``, else ``case-001``.

    Returns
    -------
    dict
        JSON-safe; the keys of ``result.json`` (``model``, ``prediction``, ``target``,
        ``method``, ``layer``, ``params``, ``timings_ms``, ``metrics``, ``version``),
        ``findings`` (a multi-label model's classes at or above its threshold, else None), plus
        case, provenance, per-map entries, display settings, the review and software
        versions, and ``validation`` (the "Method and its validation" section, see
        :func:`engine.export.validation.validation_section`). De-identified, no file name or
        path of the case or the model is in it.
    """
    view = reviewed_view(result, view, options, metrics)
    name = name or case_name(image, None, keep_identifiers)
    frame = 0 if getattr(image, "kind", None) == "volume" else int(result.frame)
    window = _window(image, options, result.frame)
    model = model_identity(result.model, keep_identifiers)
    classes = list(result.classes)
    scores = [float(s) for s in result.scores]
    methods = list(dict.fromkeys(m for m, _ in result.maps))
    layers = list(dict.fromkeys(lay for _, lay in result.maps))
    maps = [
        {
            "method": method,
            "title": method_title(method),
            "layer": layer,
            "warning": item.warning,
            "figure": (figures or {}).get((method, layer)),
        }
        for (method, layer), item in result.maps.items()
    ]
    content = {
        "report": "Lucida explanation report",
        "version": app_version(),
        "generated": timestamp(),
        "disclaimer": DISCLAIMER
        + " Explanation maps show what influenced the model, not where disease is.",
        "deidentified": not keep_identifiers,
        "deidentification": None
        if keep_identifiers
        else {"method": METHOD, "code": f"{BASIC_PROFILE_CODE[1]} {BASIC_PROFILE_CODE[0]}"},
        "case": _case(image, result, keep_identifiers, name),
        "content": image_entry(image, frame, name),
        "model": {
            "name": model.get("name"),
            "sha256": model.get("sha256"),
            "files": dict(model.get("files") or {}),
            "card": model.get("card"),
            "kind": model.get("kind"),
            "output": model.get("output"),
            "task": model.get("task") or "classification",
            "classes": classes,
        },
        "prediction": dict(zip(classes, scores, strict=False)),
        # A multi-label model's classes at or above the threshold the reviewer used.
        "findings": findings(dict(result.model or {}), dict(zip(classes, scores, strict=False)),
                             view.finding_threshold),
        "target": result.target_name,
        "target_index": int(result.target),
        "target_probability": scores[int(result.target)],
        "versus": view.versus,
        # A full path names folders that often carry the patient; de-identified, the pseudonym.
        "image": str(Path(str(getattr(image, "path", "") or result.image_path)))
        if keep_identifiers else name,
        "frame": int(result.frame),
        "method": ",".join(methods),
        "layer": ",".join(layers),
        "maps": maps,
        "params": {m: (result.params or {}).get(m, {}) for m in methods},
        "display": {
            "window": window,
            "invert": options.invert,
            "opacity": options.opacity,
            "colormap": options.colormap,
            "threshold": options.threshold,
        },
        "timings_ms": result.timings_ms,
        "metrics": view.metrics,
        "review": review_record(view, window),
        "warnings": list(result.warnings or []),
        "intended_use": intended_use_of(result),
        "software": {"lucida": app_version(), **library_versions()},
        "files": list(files or []),
    }
    # CLAIM 2024 item 31: the method, its parameters and how the map was validated.
    content["validation"] = validation_of(content)
    clean = jsonable(content)
    if keep_identifiers:
        return clean
    # Free text from the model card, plugins and warnings is scrubbed in case it quotes the
    # patient. Hashes are left alone: a short ID could match a run of hex digits by chance.
    hashes = (clean["model"]["sha256"], list(clean["model"]["files"].values()),
              clean["content"]["digest"])
    clean = scrubber.deep(clean)
    clean["model"]["sha256"] = hashes[0]
    clean["model"]["files"] = dict(zip(clean["model"]["files"], hashes[1], strict=True))
    clean["content"]["digest"] = hashes[2]
    return clean
