"""Display windows: the presets a DICOM frame carries, read from its VOI LUT module."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPreset:
    """A display window: centre and width in modality units, and the VOI function.

    ``function`` is ``LINEAR``, ``LINEAR_EXACT`` or ``SIGMOID`` (PS3.3 C.11.2.1), or ``LUT`` for
    item ``lut_index`` of the file's *VOI LUT Sequence*; a LUT preset's centre and width describe
    the LUT's input range so a viewer can start adjusting from it.
    """

    center: float
    width: float
    name: str = ""
    function: str = "LINEAR"
    lut_index: int | None = None


def read_presets(fds) -> list[WindowPreset]:
    """Read the VOI LUT Sequence items, then the window centre/width pairs, of a frame.

    Parameters
    ----------
    fds : pydicom.dataset.Dataset
        The frame's display elements (see :func:`engine.studies.display.frame_dataset`).

    Returns
    -------
    list of WindowPreset
        In file order; pairs with a non-finite centre or a width <= 0 are left out.
    """
    presets: list[WindowPreset] = []
    for i, item in enumerate(fds.get("VOILUTSequence") or []):
        try:
            entries, first, _bits = (int(v) for v in item.LUTDescriptor)
        except (AttributeError, TypeError, ValueError):
            continue
        entries = entries or 2**16
        name = str(item.get("LUTExplanation") or f"VOI LUT {i + 1}")
        presets.append(WindowPreset(first + entries / 2.0, float(entries), name, "LUT", i))
    centers = _floats(fds.get("WindowCenter"))
    widths = _floats(fds.get("WindowWidth"))
    names = fds.get("WindowCenterWidthExplanation")
    names = [] if names is None else [names] if isinstance(names, str) else list(names)
    function = str(fds.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
            continue
        name = str(names[i]).strip() if i < len(names) and names[i] else f"window {i + 1}"
        presets.append(WindowPreset(center, width, name, function))
    return presets


def _floats(value) -> list[float]:
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, int | float | str) else list(value)
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def window_value(value: float) -> str:
    """A window's centre or width as every label shows it (caption, corner, volume caption).

    Five significant digits: a CT window reads ``400`` and ``-600``, and an RT dose window in Gy
    reads ``0.45701``, where whole numbers would say ``0`` and disagree with the corner.

    Parameters
    ----------
    value : float

    Returns
    -------
    str
    """
    return f"{value:.5g}"


def window_text(center: float, width: float) -> str:
    """``"W <width> / L <centre>"``, as the caption shows a window (see :func:`window_value`)."""
    return f"W {window_value(width)} / L {window_value(center)}"
