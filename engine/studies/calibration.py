"""How image pixels map to physical sizes and values: pixel spacing, distances, scale bars, units.

Spacing follows the DICOM order, ``(row spacing, column spacing)`` in mm: the distance between
the centres of two adjacent rows, then of two adjacent columns. Pixel Spacing is calibrated to
the patient; Imager Pixel Spacing is measured at the detector (projection radiography), so a
length read from it is labelled as such. Without either, or when the value states no size
(``0\\0``, negative, non-finite or malformed: see :func:`valid_spacing`, the one test of a
spacing), lengths are in pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

#: Where a spacing came from, and the unit label a length read from it carries.
SOURCES = {
    "PixelSpacing": "mm",
    "ImagerPixelSpacing": "mm at detector",
    None: "px",
}
#: Scale-bar lengths are 1, 2 or 5 times a power of ten.
_NICE = (1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Spacing:
    """The size of one pixel.

    Attributes
    ----------
    row_mm, col_mm : float
        Distance between adjacent rows and between adjacent columns, in mm (1.0 when
        ``source`` is None: lengths are then in pixels).
    source : str or None
        ``"PixelSpacing"``, ``"ImagerPixelSpacing"``, or None when the file has neither.
    """

    row_mm: float = 1.0
    col_mm: float = 1.0
    source: str | None = None

    @property
    def units(self) -> str:
        """The label of a length: ``"mm"``, ``"mm at detector"`` or ``"px"``."""
        return SOURCES[self.source]

    @property
    def known(self) -> bool:
        """Whether lengths are physical (mm) rather than pixels."""
        return self.source is not None


def valid_spacing(value, n: int = 2) -> tuple[float, ...] | None:
    """Read a DICOM size attribute, or None when it states no usable size.

    This is the one test of "valid spacing": Pixel Spacing, Imager Pixel Spacing, Slice
    Thickness and Spacing Between Slices are sizes only when every value is a finite number
    above zero (PS3.3 10.7.1.3). Zero, negative, non-finite, unreadable values and the wrong
    number of values all mean that the size is unknown, never 0 mm.

    Parameters
    ----------
    value : object
        The attribute's value as pydicom reads it (a number, a multi-value, a ``\\``-separated
        string) or None when absent.
    n : int
        How many values the attribute holds: 2 for a pixel spacing, 1 for a thickness.

    Returns
    -------
    tuple of float or None
        The ``n`` values in mm, or None.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        items = value.split("\\")
    else:
        try:
            items = list(value)
        except TypeError:
            items = [value]
    try:
        sizes = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(sizes) != n or not all(math.isfinite(v) and v > 0 for v in sizes):
        return None
    return sizes


def _frame_spacings(ds, frame: int) -> list:
    """Pixel Spacing of an enhanced multi-frame object: the frame's own, then the shared one."""
    values = []
    for keyword, index in (("PerFrameFunctionalGroupsSequence", frame),
                           ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(keyword)
        if not groups or index >= len(groups):
            continue
        measures = groups[index].get("PixelMeasuresSequence")
        if measures and "PixelSpacing" in measures[0]:
            values.append(measures[0].PixelSpacing)
    return values


def dataset_spacing(ds, frame: int = 0) -> Spacing:
    """Return the spacing of one frame of a DICOM data set.

    Pixel Spacing wins (per-frame functional groups first), then Imager Pixel Spacing; a data
    set with neither, or only with values :func:`valid_spacing` refuses (``0\\0``, say), gives
    pixels.

    Parameters
    ----------
    ds : pydicom.Dataset or None
        The header; None (a raster file) gives pixels.
    frame : int
        Zero-based frame, for enhanced multi-frame objects.

    Returns
    -------
    Spacing
    """
    if ds is None:
        return Spacing()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a malformed value is read as absent
        candidates = [("PixelSpacing", v) for v in _frame_spacings(ds, frame)] + [
            ("PixelSpacing", ds.get("PixelSpacing")),
            ("ImagerPixelSpacing", ds.get("ImagerPixelSpacing"))]
        for source, value in candidates:
            pair = valid_spacing(value)
            if pair is not None:
                return Spacing(pair[0], pair[1], source)
    return Spacing()


def pixel_spacing(image, frame: int = 0) -> Spacing:
    """Return the spacing of one frame of ``image`` (an :class:`engine.studies.image.Image`).

    See :func:`dataset_spacing`; a raster file gives pixels.

    Parameters
    ----------
    image : Image
        Anything with a ``dataset`` attribute (a pydicom Dataset or None).
    frame : int
        Zero-based frame, for enhanced multi-frame objects.

    Returns
    -------
    Spacing
    """
    return dataset_spacing(getattr(image, "dataset", None), frame)


def distance(spacing: Spacing, start: tuple[float, float], end: tuple[float, float]) -> float:
    """Length of the segment from ``start`` to ``end`` (``(x, y)`` in image pixels).

    Returns
    -------
    float
        In mm when the spacing is known, else in pixels (``spacing.units`` says which).
    """
    dx = (end[0] - start[0]) * spacing.col_mm
    dy = (end[1] - start[1]) * spacing.row_mm
    return math.hypot(dx, dy)


def length_text(value: float, spacing: Spacing) -> str:
    """A length as a viewer labels it: ``"50.0 mm"``, ``"12.3 mm at detector"``, ``"80.0 px"``."""
    return f"{value:.1f} {spacing.units}"


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar: its length in image units and on screen, and its label."""

    length: float
    screen_px: float
    label: str


def scale_bar(spacing: Spacing, zoom: float, max_screen_px: float) -> ScaleBar | None:
    """Choose a round scale-bar length (1, 2 or 5 × 10^k) no longer than ``max_screen_px``.

    Parameters
    ----------
    spacing : Spacing
        The image's spacing; a bar in pixels when unknown.
    zoom : float
        Screen pixels per image pixel (isotropic, as the viewer zooms).
    max_screen_px : float
        The longest bar wanted on screen.

    Returns
    -------
    ScaleBar or None
        None when the zoom or the room leaves no bar of at least one unit.
    """
    if zoom <= 0 or max_screen_px <= 0:
        return None
    # Horizontal bar: one screen pixel covers col_mm / zoom mm.
    per_screen_px = spacing.col_mm / zoom
    longest = max_screen_px * per_screen_px
    if longest <= 0 or not math.isfinite(longest):
        return None
    power = 10.0 ** math.floor(math.log10(longest))
    length = max(n * power for n in _NICE if n * power <= longest * (1 + 1e-9))
    if spacing.known:
        label = f"{length / 10:g} cm" if length >= 10 else f"{length:g} mm"
        if spacing.source == "ImagerPixelSpacing":
            label += " at detector"
    else:
        label = f"{length:g} px"
    return ScaleBar(length, length / per_screen_px, label)


def modality_units(image) -> str:
    """The unit of an image's modality values: ``"HU"`` on CT, ``"Gy"`` on RT dose, or ``""``.

    Parameters
    ----------
    image : Image

    Returns
    -------
    str
        ``"HU"`` for CT, ``"Gy"`` for an RT dose in Dose Units ``GY`` (Dose Grid Scaling makes
        its values doses), PET's Units (e.g. ``"BQML"``), a Rescale Type other than ``US``
        (unspecified), else ``""`` (the stored values have no unit; a ``RELATIVE`` dose too).
    """
    if getattr(image, "modality", "") == "CT":
        return "HU"
    ds = getattr(image, "dataset", None)
    if ds is None:
        return ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if image.modality == "PT" and ds.get("Units"):
            return str(ds.Units)
        if image.modality == "RTDOSE":
            return "Gy" if str(ds.get("DoseUnits", "")).upper() == "GY" else ""
        kind = str(ds.get("RescaleType", "") or "")
    return "" if kind.upper() in ("", "US") else kind
