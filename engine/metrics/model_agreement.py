"""Where two models' maps of one case put their evidence: the numbers of a model comparison.

Two models explained on the same image, with the same method and class, are compared by the
share of each map's energy (its mass after min-max scaling, as
:func:`engine.metrics.localisation.energy_in_roi` measures it) inside one region:

- with a region of interest drawn: the **share in the ROI**, the same region for both maps;
- without one: the share of each map's energy in **the other model's top region**, the pixels
  holding the top :data:`TOP_FRACTION` of that map's values (:func:`top_region`). A map spread
  evenly over the image puts the region's share of the pixels there (``baseline``); two models
  that look at the same place put much more; a model that looks elsewhere puts less. The top
  regions' IoU is given too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.errors import UsageError
from engine.metrics.localisation import energy_in_roi, roi_mask

__all__ = ["TOP_FRACTION", "ModelAgreement", "model_agreement", "top_region"]

#: The share of the pixels that makes a map's top region.
TOP_FRACTION = 0.10


@dataclass(frozen=True)
class ModelAgreement:
    """Energy shares of two maps (A and B) of one case in a common region.

    Attributes
    ----------
    region : str
        ``"roi"`` (both in the drawn ROI) or ``"top"`` (each in the other model's top region).
    share_a, share_b : float
        Share of map A's and map B's energy in the region, in [0, 1].
    top_iou : float
        IoU of the two maps' top regions, in [0, 1].
    baseline : float
        What a map spread evenly over the image would score: the region's share of the pixels.
    """

    region: str
    share_a: float
    share_b: float
    top_iou: float
    baseline: float

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"region": self.region, "share_a": self.share_a, "share_b": self.share_b,
                "top_iou": self.top_iou, "baseline": self.baseline}


def _clean(saliency) -> np.ndarray:
    return np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=0.0, posinf=0.0,
                         neginf=0.0)


def top_region(saliency, fraction: float = TOP_FRACTION) -> np.ndarray:
    """The pixels holding the top ``fraction`` of a map's values, as a boolean mask.

    Only pixels above the map's minimum count: a map with evidence on fewer pixels (a CAM
    after its ReLU) has a smaller top region, and a flat map has none. Ties at the cut are kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"top fraction must be in (0, 1], got {fraction}")
    values = _clean(saliency)
    k = max(1, round(fraction * values.size))
    cut = np.partition(values.ravel(), -k)[-k]
    return (values >= cut) & (values > values.min())


def model_agreement(map_a, map_b, roi: tuple | None = None, roi_shape: str = "box",
                    fraction: float = TOP_FRACTION) -> ModelAgreement:
    """Measure where two maps of one image put their evidence (see the module docstring).

    Parameters
    ----------
    map_a, map_b : array_like
        The two models' maps in image geometry, same ``(H, W)`` shape.
    roi : (x0, y0, x1, y1), optional
        A drawn region in image pixels (end-exclusive): both shares are measured in it.
    roi_shape : {"box", "ellipse"}
        The ROI's shape.
    fraction : float
        Share of the pixels that makes a top region.

    Raises
    ------
    UsageError
        The maps differ in shape, or the ROI is outside the image.
    """
    a, b = _clean(map_a), _clean(map_b)
    if a.shape != b.shape:
        raise UsageError(f"the two maps differ in shape: {a.shape} and {b.shape}",
                         fix="explain both models on the same image and frame")
    top_a, top_b = top_region(a, fraction), top_region(b, fraction)
    union = np.count_nonzero(top_a | top_b)
    iou = float(np.count_nonzero(top_a & top_b) / union) if union else 0.0
    if roi is not None:
        mask = roi_mask(a.shape, roi, roi_shape)
        return ModelAgreement("roi", energy_in_roi(a, mask), energy_in_roi(b, mask), iou,
                              float(mask.mean()))
    return ModelAgreement("top", energy_in_roi(a, top_b), energy_in_roi(b, top_a), iou,
                          float((top_a.mean() + top_b.mean()) / 2))
