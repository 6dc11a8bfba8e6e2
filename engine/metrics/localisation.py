"""Localisation of a saliency map against a region of interest drawn or given by the user.

- Pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop"): a hit when
  the map's maximum falls inside the ROI (optionally within a tolerance of it).
- Energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the map's mass inside
  the ROI.
- IoU of the map thresholded at a fraction of its maximum with the ROI.
- Relevance Mass Accuracy and Relevance Rank Accuracy (Arras, Osman & Samek 2022, "CLEVR-XAI: A
  Benchmark Dataset for the Ground Truth Evaluation of Neural Network Explanations", Information
  Fusion): the share of the positive relevance inside the ROI, and the share of the ROI's ``K``
  pixels found among the map's ``K`` highest.

Maps and ROIs are in image geometry: ``(H, W)`` arrays and boxes ``(x0, y0, x1, y1)`` in pixels,
``x1``/``y1`` exclusive.
"""

from __future__ import annotations

import numpy as np

# The one box parser lives in the bottom layer; re-exported for the CLI's --roi.
from engine.core.boxes import parse_roi as parse_roi
from engine.core.errors import UsageError

ROI_SHAPES = ("box", "ellipse")


def roi_mask(
    shape: tuple[int, int], box: tuple[int, int, int, int], kind: str = "box"
) -> np.ndarray:
    """Return a boolean ``(H, W)`` mask of a box or of the ellipse inscribed in it.

    Parameters
    ----------
    shape : (int, int)
        Image ``(rows, cols)``.
    box : (x0, y0, x1, y1)
        Bounding box in pixels; clipped to the image.
    kind : {"box", "ellipse"}
        Region shape.

    Raises
    ------
    UsageError
        If the ROI lies outside the image or the kind is unknown.
    """
    h, w = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    if kind not in ROI_SHAPES:
        raise UsageError(f"unknown ROI shape {kind!r}", fix="use box or ellipse")
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h or x1 <= x0 or y1 <= y0:
        raise UsageError(
            f"ROI {tuple(box)} does not overlap the {w}x{h} image",
            fix="give X0,Y0,X1,Y1 inside the image in pixels",
        )
    yy, xx = np.mgrid[0:h, 0:w]
    # Pixel centres are at +0.5.
    cx, cy = xx + 0.5, yy + 0.5
    if kind == "box":
        return (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    ex, ey = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    return ((cx - ex) / rx) ** 2 + ((cy - ey) / ry) ** 2 <= 1.0


def _clean(saliency) -> np.ndarray:
    s = np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=0.0)
    # Volume maps (slices, rows, columns) work with a 3-D mask (engine.metrics.volume).
    if s.ndim not in (2, 3):
        raise UsageError(f"expected a 2-D or 3-D saliency map, got shape {s.shape}")
    return s


def _check(s: np.ndarray, mask: np.ndarray) -> None:
    if s.shape != mask.shape:
        raise UsageError(f"map shape {s.shape} differs from ROI mask shape {mask.shape}")


def pointing_hit(saliency, mask: np.ndarray, tolerance: int = 0) -> bool:
    """Whether the map's maximum lies in the ROI, or within ``tolerance`` pixels of its box.

    Zhang et al. allow 15 pixels of tolerance at ImageNet scale; the default is none.

    Ties for the maximum count as a hit if any tied pixel is in the ROI, so that a flat map
    (all maxima) is not penalised by where ``argmax`` happens to look first; a constant map is a
    miss because it points nowhere.
    """
    s = _clean(saliency)
    _check(s, mask)
    if s.max() <= s.min():
        return False
    peak = s >= s.max()
    if tolerance > 0:
        ys, xs = np.nonzero(mask)
        grown = np.zeros_like(mask)
        h, w = mask.shape
        grown[
            max(0, ys.min() - tolerance) : min(h, ys.max() + tolerance + 1),
            max(0, xs.min() - tolerance) : min(w, xs.max() + tolerance + 1),
        ] = True
        mask = grown | mask
    return bool(np.any(peak & mask))


def energy_in_roi(saliency, mask: np.ndarray) -> float:
    """Share of the map's mass inside the ROI, after min-max scaling the map to [0, 1].

    Returns 0 for a constant map (it carries no energy).
    """
    s = _clean(saliency)
    _check(s, mask)
    s = s - s.min()
    total = s.sum()
    if total <= 0:
        return 0.0
    return float(s[mask].sum() / total)


def iou_at_threshold(saliency, mask: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``{map >= threshold * max}`` (after min-max scaling) with the ROI."""
    s = _clean(saliency)
    _check(s, mask)
    lo, hi = s.min(), s.max()
    if hi <= lo:
        return 0.0
    region = (s - lo) / (hi - lo) >= threshold
    union = np.logical_or(region, mask).sum()
    return float(np.logical_and(region, mask).sum() / union) if union else 0.0


def roi_metrics(saliency, roi: tuple[int, int, int, int], shape: str = "box") -> dict:
    """Every ROI measure of one map: the ROI keys of ``case_metrics``.

    Parameters
    ----------
    saliency : array-like
        (H, W) map in image geometry.
    roi : (x0, y0, x1, y1)
        Region of interest in pixels, end-exclusive.
    shape : {"box", "ellipse"}
        Region shape within its box.

    Returns
    -------
    dict
        ``roi``, ``roi_shape``, ``pointing_hit``, ``energy_in_roi`` and ``iou_at_half``.

    Raises
    ------
    UsageError
        If the ROI lies outside the map or the shape is unknown.
    """
    s = _clean(saliency)
    mask = roi_mask(s.shape, roi, shape)
    return {
        "roi": [int(v) for v in roi],
        "roi_shape": shape,
        "pointing_hit": pointing_hit(s, mask),
        "energy_in_roi": energy_in_roi(s, mask),
        "iou_at_half": iou_at_threshold(s, mask, 0.5),
    }


def relevance_mass_accuracy(saliency, mask: np.ndarray) -> float:
    """Share of the map's positive relevance inside the ROI (Arras et al. 2022).

    Only positive values count, as in the paper: negative relevance is evidence against the
    class, not a location. 0 for a map with no positive value.
    """
    s = _clean(saliency)
    _check(s, mask)
    pos = np.clip(s, 0.0, None)
    total = pos.sum()
    return float(pos[mask].sum() / total) if total > 0 else 0.0


def relevance_rank_accuracy(saliency, mask: np.ndarray) -> float:
    """Share of the ROI's ``K`` pixels among the map's ``K`` highest (Arras et al. 2022).

    Ties at the K-th value are shared out at random, so the figure is its expectation: a
    constant map scores the ROI's share of the image, the chance level, whatever order a sort
    would leave the ties in.
    """
    s = _clean(saliency)
    m = np.asarray(mask, dtype=bool)
    _check(s, m)
    s, m = s.ravel(), m.ravel()
    k = int(m.sum())
    if k == 0:
        return 0.0
    kth = np.partition(s, s.size - k)[s.size - k]
    above = s > kth
    tied = s == kth
    # The ``k - above`` places left go to tied pixels, each tied pixel equally likely.
    share = (k - above.sum()) / tied.sum()
    hits = (above & m).sum() + share * (tied & m).sum()
    return float(hits / k)
