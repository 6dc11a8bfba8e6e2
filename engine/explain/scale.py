"""Colour scales of a heatmap: which exist, the default, and the maximum maps share.

A map is stored in [0, 1] (or [-1, 1] when signed) with its raw ``scale``: the value, in the
explainer's ``units``, stored as 1 (see ``MapResult``). A viewer maps those values onto the
colours with one of :data:`SCALES`:

- ``map`` (the default): each map against its own maximum, so every map of a compare grid is
  drawn as the single view draws it;
- ``absolute``: raw values against one maximum shared by the maps being compared
  (:func:`shared_maximum`), so weak evidence looks faint — and can fall under the threshold;
- ``image``: each map stretched to its own minimum..maximum;
- ``fixed``: each map as the engine normalised it.

Qt-free: the window, the reports and the CLI read the same names and words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_SCALE", "SCALES", "SCALE_TEXT", "Scale", "absolute_label", "format_number",
           "shared_maxima", "shared_maximum"]


@dataclass(frozen=True)
class Scale:
    """One colour scale as the window offers it and a report names it.

    Attributes
    ----------
    label : str
        The picker's entry.
    tip : str
        What it shows, and what it hides.
    report : str
        How a report says it.
    """

    label: str
    tip: str
    report: str


#: Every scale, in the order a picker lists them.
SCALES: dict[str, Scale] = {
    "map": Scale(
        "Per map (own maximum)",
        "Each map against its own largest value: every map is drawn in full, so compare where "
        "maps point, not how strong they are (the colour bar gives the map's maximum).",
        "per map, against the map's own maximum"),
    "absolute": Scale(
        "Absolute (shared maximum)",
        "Raw values in the explainer's units against one maximum shared by the maps being "
        "compared (classes, images, compare cells): weak evidence looks faint, and a weak map "
        "can fall under the threshold.",
        "shared maximum, in the explainer's units"),
    "image": Scale(
        "Per image (min–max)",
        "Each map stretched to its own minimum and maximum: even a map with almost no evidence "
        "looks strong.",
        "per map, stretched to the map's own range"),
    "fixed": Scale(
        "Fixed [0, 1]",
        "Each map as the engine scaled it (its own peak is 1).",
        "per map, as the engine scaled it (each map's own peak is 1)"),
}
#: The scale a new view starts with.
DEFAULT_SCALE = "map"
#: How a report names each scale.
SCALE_TEXT = {key: scale.report for key, scale in SCALES.items()}


def format_number(value: float) -> str:
    """Three significant digits, with a real minus sign."""
    return f"{value:.3g}".replace("-", "−")


def shared_maximum(maps: Iterable[tuple[float, str]], units: str) -> float | None:
    """The absolute scale's 1 for maps in ``units``: the largest raw scale among them.

    Parameters
    ----------
    maps : iterable of (float, str)
        Each compared map's raw ``scale`` (its largest magnitude, in its units) and ``units``.
    units : str
        Only maps in these units share a maximum: two units share no scale.

    Returns
    -------
    float or None
        None when no map is in ``units``.
    """
    return shared_maxima(maps).get(units)


def shared_maxima(maps: Iterable[tuple[float, str]]) -> dict[str, float]:
    """The shared maximum of each unit among ``maps`` (see :func:`shared_maximum`)."""
    maxima: dict[str, float] = {}
    for scale, units in maps:
        scale = abs(float(scale))
        if scale == scale and scale > maxima.get(units, 0.0):  # NaN never wins
            maxima[units] = scale
    return maxima


def absolute_label(maxima: dict[str, float] | None) -> tuple[str, str]:
    """The absolute scale's picker entry and tip, naming the shared maximum of what is shown.

    Parameters
    ----------
    maxima : dict of str to float, or None
        Shared maximum per unit (:func:`shared_maxima`); None or empty before any map is shown.

    Returns
    -------
    (str, str)
        The label, such as ``"Absolute (shared max 0.412 a.u.)"``, and its tooltip.
    """
    scale = SCALES["absolute"]
    if not maxima:
        return scale.label, scale.tip
    values = ", ".join(f"{format_number(v)} {units}" for units, v in sorted(maxima.items()))
    return (f"Absolute (shared max {values})",
            f"{scale.tip} Shared maximum now: {values}, drawn at the top of the colours.")
