"""The files ``python main.py explain`` writes for one image (contract in the README).

Under ``OUT/<stem>/``: ``image.png`` (the image as the viewer shows it),
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
from engine.core.versions import app_version
from engine.explain.colour import blend
from engine.export.content import intended_use_of


def file_key(method: str, layer: str) -> str:
    """Return the ``<method>_<layer>`` part of output file names (dots become ``-``)."""
    return f"{method}_{layer.replace('.', '-')}"


def result_json(result: Any, timings_ms: dict, metrics: dict | None = None,
                keep_identifiers: bool = False) -> dict:
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
        Store the image's full path. By default only its file name is stored, because folder
        names often carry patient IDs.
    """
    methods = list(dict.fromkeys(m for m, _ in result.maps))
    layers = list(dict.fromkeys(layer for _, layer in result.maps))
    content = {
        "version": app_version(),
        "image": str(result.image_path) if keep_identifiers
        else Path(str(result.image_path)).name,
        "frame": result.frame,
        "model": {"name": result.model.get("name"), "sha256": result.model.get("sha256"),
                  "files": result.model.get("files", {})},
        "prediction": dict(zip(result.classes, result.scores, strict=True)),
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
    if metrics is not None:
        content["metrics"] = metrics
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
) -> list[Path]:
    """Write every contract file of one explained image into ``folder``.

    ``keep_identifiers`` keeps the image's full path in ``result.json`` (see `result_json`).

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
        staged.add("result.json", json_bytes(result_json(result, timings_ms, metrics,
                                                         keep_identifiers)))
        return staged.commit()
