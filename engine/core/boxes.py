"""Rectangles in image pixels, ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive, parsed from text.

One parser serves the manifest's ``<role>_box`` cells (``x0 y0 x1 y1``) and the CLI's
``--roi X0,Y0,X1,Y1``.
"""

from __future__ import annotations

import math
import re

from engine.core.errors import UsageError

Box = tuple[float, float, float, float]

_FIX = "write it as four numbers X0,Y0,X1,Y1 (or X0 Y0 X1 Y1) in pixels"


def parse_box(text: str, what: str = "box") -> Box:
    """Parse ``"x0 y0 x1 y1"`` or ``"x0,y0,x1,y1"`` into a box.

    Parameters
    ----------
    text : str
        Four numbers separated by spaces, commas or semicolons.
    what : str
        How the message names the box (``"box"``, ``"--roi"``).

    Returns
    -------
    Box
        Floats with ``0 <= x0 < x1`` and ``0 <= y0 < y1``.

    Raises
    ------
    UsageError
        If the text is not four finite numbers, or the box is empty or starts below 0.
    """
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{what} {text!r} is not four numbers", fix=_FIX)
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise UsageError(
            f"{what} {text!r} needs 0 <= x0 < x1 and 0 <= y0 < y1",
            fix="give the top-left corner first, inside the image",
        )
    return (x0, y0, x1, y1)


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """Parse the CLI's ``--roi X0,Y0,X1,Y1`` into a box of whole pixels.

    Raises
    ------
    UsageError
        As :func:`parse_box`, or if rounding to whole pixels empties the box.
    """
    box = tuple(int(round(v)) for v in parse_box(text, "--roi"))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise UsageError(f"--roi {text!r} is empty in whole pixels", fix="give a larger box")
    return box
