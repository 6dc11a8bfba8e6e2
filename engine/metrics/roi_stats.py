"""Statistics of the pixels inside a box or ellipse ROI, next to the heatmap's energy there.

The values are modality values (HU on CT, after the rescale), so a radiologist reads the same
mean and spread a diagnostic viewer shows; the energy is the energy-based pointing game of
:func:`engine.metrics.localisation.energy_in_roi` over the same pixels. A pixel belongs to the
ROI when its centre does (:func:`engine.metrics.localisation.roi_mask`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.core.errors import UsageError
from engine.metrics.localisation import energy_in_roi, roi_mask
from engine.studies.calibration import Spacing


@dataclass(frozen=True)
class RoiStats:
    """What an ROI holds.

    Attributes
    ----------
    mean, sd, minimum, maximum : float
        Of the modality values inside the ROI; ``sd`` is the population standard deviation
        (``numpy.std``), as diagnostic viewers report it.
    pixels : int
        How many pixels the ROI holds.
    area : float
        ``pixels`` times the pixel area: mm² when the spacing is known, else px.
    area_units : str
        ``"mm²"``, ``"mm² at detector"`` or ``"px"``.
    units : str
        The values' unit (``"HU"``), ``""`` when they have none.
    energy : float or None
        Share of the heatmap's energy inside the ROI, or None without a heatmap.
    """

    mean: float
    sd: float
    minimum: float
    maximum: float
    pixels: int
    area: float
    area_units: str
    units: str
    energy: float | None

    def lines(self) -> list[str]:
        """The statistics as a viewer's ROI label shows them, one line each."""
        unit = f" {self.units}" if self.units else ""
        out = [f"Mean {self.mean:.1f}{unit}  SD {self.sd:.1f}",
               f"Min {self.minimum:.1f}  Max {self.maximum:.1f}",
               f"Area {self.area:.1f} {self.area_units}"]
        if self.energy is not None:
            out.append(f"Heatmap energy {100 * self.energy:.1f} %")
        return out


def roi_statistics(values, roi: tuple[int, int, int, int], shape: str = "box", *,
                   spacing: Spacing | None = None, units: str = "",
                   heatmap=None) -> RoiStats:
    """Mean, SD, min, max and area of ``values`` inside an ROI, and the heatmap's energy there.

    Parameters
    ----------
    values : array-like
        (H, W) modality values of the frame (e.g. ``Image.modality_frame``).
    roi : (x0, y0, x1, y1)
        The ROI's box in pixels, end-exclusive; clipped to the image.
    shape : {"box", "ellipse"}
        The box itself, or the ellipse inscribed in it.
    spacing : Spacing, optional
        The pixel size; the area is in pixels without it.
    units : str
        The unit of ``values`` (``"HU"``).
    heatmap : array-like, optional
        (H, W) map in image geometry; its energy in the ROI is reported.

    Returns
    -------
    RoiStats

    Raises
    ------
    UsageError
        If ``values`` is not a 2-D array, the ROI holds no pixel, or the heatmap's shape
        differs from the image's.
    """
    data = np.asarray(values)
    if data.ndim != 2:
        raise UsageError(f"ROI statistics need a grey (H, W) image, got shape {data.shape}",
                         fix="measure a greyscale image")
    h, w = data.shape
    x0, y0, x1, y1 = (int(v) for v in roi)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise UsageError(f"ROI {tuple(roi)} does not overlap the {w}x{h} image",
                         fix="draw the ROI on the image")
    # The mask of the crop, with the ROI's own box (an ellipse cut by the edge stays one).
    local = roi_mask((cy1 - cy0, cx1 - cx0), (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0), shape)
    inside = data[cy0:cy1, cx0:cx1][local].astype(np.float64)
    inside = inside[np.isfinite(inside)]
    if inside.size == 0:
        raise UsageError(f"the {shape} ROI {tuple(roi)} holds no pixel centre",
                         fix="draw a larger ROI")
    spacing = spacing or Spacing()
    area_units = "px" if not spacing.known else "mm²" + (
        " at detector" if spacing.source == "ImagerPixelSpacing" else "")
    energy = None
    if heatmap is not None:
        heat = np.asarray(heatmap)
        if heat.shape != data.shape:
            raise UsageError(f"heatmap shape {heat.shape} differs from the image's {data.shape}")
        full = np.zeros(data.shape, dtype=bool)
        full[cy0:cy1, cx0:cx1] = local
        energy = energy_in_roi(heat, full)
    pixels = int(local.sum())
    return RoiStats(
        mean=float(inside.mean()), sd=float(inside.std()), minimum=float(inside.min()),
        maximum=float(inside.max()), pixels=pixels,
        area=pixels * (spacing.row_mm * spacing.col_mm if spacing.known else 1.0),
        area_units=area_units, units=units,
        energy=None if energy is None or not math.isfinite(energy) else float(energy))
