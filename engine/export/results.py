"""The files ``python main.py explain`` writes for one image (contract in the README).

Under ``OUT/<name>/`` (:func:`output_name`: the case's pseudonym, or the file's stem when
identifiers are kept): ``image.png`` (the image as the viewer shows it),
``overlay_<method>_<layer>.png``, ``heatmap_<method>_<layer>.npy`` (float32, the image's size,
0..1) and ``result.json``. Dots in layer names become ``-`` in file names.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.atomic import StagedFiles
from engine.core.jsonsafe import json_bytes
from engine.core.pseudonym import Pseudonyms
from engine.core.versions import app_version
from engine.explain.colour import blend
from engine.export.content import intended_use_of
from engine.export.identity import case_name, case_scrubber, image_entry, model_identity, path_stem
from engine.export.validation import validation_of
from engine.models.findings import findings


def file_key(method: str, layer: str) -> str:
    """Return the ``<method>_<layer>`` part of output file names (dots become ``-``).

    Path separators become ``-`` too: a converted ONNX graph names its layers after the graph's
    nodes (``layer4/layer4/1/relu_1/Relu``).
    """
    return f"{method}_{layer.replace('.', '-').replace('/', '-').replace(chr(92), '-')}"


def output_name(image: Any, pseudonyms: Pseudonyms | None = None,
                keep_identifiers: bool = False) -> str:
    """The name of one image's output folder (``OUT/<name>/``).

    Parameters
    ----------
    image : Image or Volume
        The explained image.
    pseudonyms : Pseudonyms, optional
        The run's pseudonyms, shared by every image of one run so that each gets its own
        ``case-NNN``; None for a run of one image.
    keep_identifiers : bool
        Name the folder for the file (its stem), on purpose.

    Returns
    -------
    str
        The file's stem with ``keep_identifiers``, else the image's pseudonym (``case-001``):
        a file name often names the patient.
    """
    return case_name(image, pseudonyms, keep_identifiers)


def result_json(result: Any, timings_ms: dict, metrics: dict | None = None,
                keep_identifiers: bool = False, *, image: Any = None,
                name: str | None = None) -> dict:
    """Return the ``result.json`` content of one explained image.

    Parameters
    ----------
    result : ExplainResult
        The explanation.
    timings_ms : dict
        ``load``, ``forward``, ``backward`` and ``maps`` in milliseconds.
    metrics : dict, optional
        Trust metrics (with ``--metrics``).
    keep_identifiers : bool
        Store the image's full path and the model files' names. By default ``image`` is the
        case's pseudonym and the model's files are keyed by role, because file and folder
        names often carry patient IDs.
    image : Image, optional
        The explained image: ``content`` then records its pseudonym and content digest.
    name : str, optional
        The case's name in this export (see :func:`output_name`); ``case-001`` by default.
    """
    if name is None:
        name = (path_stem(result.image_path) if keep_identifiers
                else Pseudonyms().name(result.image_path))
    methods = list(dict.fromkeys(m for m, _ in result.maps))
    layers = list(dict.fromkeys(layer for _, layer in result.maps))
    model = model_identity(result.model, keep_identifiers)
    content = {
        "version": app_version(),
        "image": str(result.image_path) if keep_identifiers else name,
        "frame": result.frame,
        "model": {key: model.get(key) for key in ("name", "sha256", "files")},
        "prediction": dict(zip(result.classes, result.scores, strict=True)),
        # A multi-label model's classes at or above its card's threshold (None: single-label).
        "findings": findings(dict(result.model or {}),
                             dict(zip(result.classes, map(float, result.scores), strict=True))),
        "target": result.target_name,
        "target_index": result.target,
        "versus": getattr(result, "versus", None),
        "method": ",".join(methods),
        "layer": ",".join(layers),
        "params": {m: result.params.get(m, {}) for m in methods},
        "maps": [
            {
                "method": m.method,
                "layer": m.layer,
                "heatmap": f"heatmap_{file_key(m.method, m.layer)}.npy",
                "overlay": f"overlay_{file_key(m.method, m.layer)}.png",
                "warning": m.warning,
                # Signed maps are stored in [-1, 1] (scaled by their largest magnitude),
                # unsigned ones in [0, 1]; ``scale`` is the raw value stored as 1, in ``units``.
                "signed": bool(getattr(m, "signed", False)),
                "scale": float(getattr(m, "scale", 1.0)),
                "units": getattr(m, "units", "a.u."),
                # What the explainer reported besides the map: Integrated Gradients'
                # completeness gap, a guided method's warning about functional ReLUs.
                "notes": dict(getattr(m, "notes", None) or {}),
            }
            for m in result.maps.values()
        ],
        "timings_ms": {k: round(float(timings_ms.get(k, 0.0)), 3)
                       for k in ("load", "forward", "backward", "maps")},
        "warnings": list(result.warnings),
        "intended_use": intended_use_of(result),
    }
    if image is not None:
        content["content"] = image_entry(image, result.frame, name)
    if metrics is not None:
        content["metrics"] = metrics
    # CLAIM 2024 item 31: the method, its parameters and how the map was validated.
    content["validation"] = validation_of(content)
    return content


def write_explain_outputs(
    result: Any,
    image: Any,
    folder: Path,
    timings_ms: dict,
    metrics: dict | None = None,
    cmap: str = "jet",
    opacity: float = 0.5,
    keep_identifiers: bool = False,
    pseudonyms: Pseudonyms | None = None,
) -> list[Path]:
    """Write every contract file of one explained image into ``folder``.

    ``keep_identifiers`` keeps the image's full path in ``result.json`` (see `result_json`);
    otherwise it names the case by its pseudonym in ``pseudonyms`` (the run's, so that it
    matches :func:`output_name`), and no file holds the image's file name or folder.

    Returns
    -------
    list of Path
        The files written, ``result.json`` last.

    Raises
    ------
    ExportError
        If the folder or a file cannot be written.
    """
    from PIL import Image as PILImage

    def png(rgb: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        PILImage.fromarray(rgb).save(buffer, format="PNG")
        return buffer.getvalue()

    def npy(heat: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, heat.astype(np.float32))
        return buffer.getvalue()

    # Staged together and renamed into place at the end: a failed or interrupted run leaves
    # the previous files (or none), never a result.json that points at missing maps.
    with StagedFiles(folder) as staged:
        rgb = image.render(result.frame)
        staged.add("image.png", png(rgb))
        for m in result.maps.values():
            key = file_key(m.method, m.layer)
            staged.add(f"heatmap_{key}.npy", npy(m.heatmap))
            overlay = blend(rgb, m.heatmap, cmap=cmap, opacity=opacity)
            staged.add(f"overlay_{key}.png", png(overlay))
        scrubber = case_scrubber(image, keep_identifiers)
        content = result_json(result, timings_ms, metrics, keep_identifiers, image=image,
                              name=case_name(image, pseudonyms, keep_identifiers))
        # Warnings are free text that may quote the file; hashes are left alone.
        content["warnings"] = scrubber.deep(content["warnings"])
        content["intended_use"] = scrubber.deep(content["intended_use"])
        for entry in content["maps"]:
            entry["warning"] = scrubber.deep(entry["warning"])
        data = json_bytes(content)
        # The last line of defence: no identifier, file name or folder of the case gets out.
        scrubber.check(data, str(Path(folder) / "result.json"))
        staged.add("result.json", data)
        return staged.commit()
