"""The files ``python main.py explain`` writes for one image (contract in the README).

Under ``OUT/<stem>/``: ``image.png`` (the image as the viewer shows it),
``overlay_<method>_<layer>.png``, ``heatmap_<method>_<layer>.npy`` (float32, the image's size,
0..1) and ``result.json``. Dots in layer names become ``-`` in file names.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import ExportError
from engine.explain.colour import blend


def lucida_version() -> str:
    """Return the installed Lucida version (``0+unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version("lucida")
    except metadata.PackageNotFoundError:
        return "0+unknown"


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
        "version": lucida_version(),
        "image": str(result.image_path) if keep_identifiers
        else Path(str(result.image_path)).name,
        "frame": result.frame,
        "model": {"name": result.model.get("name"), "sha256": result.model.get("sha256"),
                  "files": result.model.get("files", {})},
        "prediction": dict(zip(result.classes, result.scores, strict=True)),
        "target": result.target_name,
        "target_index": result.target,
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
            }
            for m in result.maps.values()
        ],
        "timings_ms": {k: round(float(timings_ms.get(k, 0.0)), 3)
                       for k in ("load", "forward", "backward", "maps")},
        "warnings": list(result.warnings),
    }
    if metrics is not None:
        content["metrics"] = metrics
    return content


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


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

    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        rgb = image.render(result.frame)
        path = folder / "image.png"
        PILImage.fromarray(rgb).save(path)
        written.append(path)
        for m in result.maps.values():
            key = file_key(m.method, m.layer)
            path = folder / f"heatmap_{key}.npy"
            np.save(path, m.heatmap.astype(np.float32))
            written.append(path)
            path = folder / f"overlay_{key}.png"
            PILImage.fromarray(blend(rgb, m.heatmap, cmap=cmap, opacity=opacity)).save(path)
            written.append(path)
        path = folder / "result.json"
        content = _jsonable(result_json(result, timings_ms, metrics, keep_identifiers))
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    except OSError as exc:
        raise ExportError(
            f"cannot write explanation files ({exc.strerror or exc})",
            path=getattr(exc, "filename", None) or folder,
            fix="choose an --out folder you can write to",
        ) from None
    return written
