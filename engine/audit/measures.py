"""Per-image saliency measures and the statistics that summarise them over a dataset."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Width of the automatic border band, as a fraction of each image side.
BORDER_FRACTION = 0.08


def saliency_mass(heat: np.ndarray) -> np.ndarray:
    """Return the non-negative part of a map as float64 mass (NaN and negatives count as 0).

    Negative values of signed methods are evidence against the class, so they carry no mass.
    """
    mass = np.clip(np.asarray(heat, dtype=np.float64), 0.0, None)
    finite = np.isfinite(mass)
    if not finite.all():  # rare, so the common case skips the copy nan_to_num would make
        mass[~finite] = 0.0
    return mass


def border_mask(shape: tuple[int, int], fraction: float = BORDER_FRACTION) -> np.ndarray:
    """Return a boolean mask of the outer band, ``fraction`` of each side wide (at least 1 px)."""
    h, w = shape
    bh = max(1, int(round(fraction * h)))
    bw = max(1, int(round(fraction * w)))
    mask = np.ones((h, w), dtype=bool)
    mask[bh : h - bh, bw : w - bw] = False
    return mask


def box_mask(shape: tuple[int, int], box: Sequence[float]) -> np.ndarray:
    """Return a boolean mask of the pixels a box ``(x0, y0, x1, y1)`` covers.

    The box is in pixel-edge coordinates: ``(0, 0, 2, 1)`` covers the first two pixels of the
    first row. Fractional edges include every pixel the box touches.
    """
    h, w = shape
    x0, y0, x1, y1 = box
    c0, r0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    c1, r1 = min(w, math.ceil(x1)), min(h, math.ceil(y1))
    mask = np.zeros((h, w), dtype=bool)
    if c1 > c0 and r1 > r0:
        mask[r0:r1, c0:c1] = True
    return mask


def roi_shares(heat: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Return, per role, the share of the map's non-negative mass inside the role's mask.

    Parameters
    ----------
    heat : ndarray
        (H, W) saliency in image geometry; any scale, negatives ignored.
    masks : dict of str to ndarray
        Boolean (H, W) masks, one per role.

    Returns
    -------
    dict of str to float
        Shares in [0, 1]; NaN for every role when the map has no positive mass.
    """
    mass = saliency_mass(heat)
    total = float(mass.sum())
    if total <= 0.0:
        return {role: float("nan") for role in masks}
    return {role: float(mass[m].sum() / total) for role, m in masks.items()}


def _box_slices(shape: tuple[int, int], box: Sequence[float]) -> tuple[slice, slice]:
    """Rows and columns a box covers, with the edge rules of :func:`box_mask`."""
    h, w = shape
    x0, y0, x1, y1 = box
    rows = slice(max(0, math.floor(y0)), max(0, min(h, math.ceil(y1))))
    cols = slice(max(0, math.floor(x0)), max(0, min(w, math.ceil(x1))))
    return rows, cols


def region_shares(
    heat: np.ndarray,
    boxes: dict[str, Sequence[float]],
    masks: dict[str, np.ndarray] | None = None,
    border: str | None = "border",
    fraction: float = BORDER_FRACTION,
) -> dict[str, float]:
    """Like :func:`roi_shares` for boxes, masks and the border band, without building masks.

    Box and border sums are slices of the mass, which is what keeps large audits fast; the
    results equal :func:`roi_shares` with :func:`box_mask` and :func:`border_mask` masks.

    Parameters
    ----------
    heat : ndarray
        (H, W) saliency in image geometry.
    boxes : dict of str to box
        ``(x0, y0, x1, y1)`` per role, image pixels.
    masks : dict of str to ndarray, optional
        Boolean (H, W) masks per role.
    border : str or None
        Role name of the border band; None to skip it.
    fraction : float
        Border band width as a fraction of each side.
    """
    mass = saliency_mass(heat)
    total = float(mass.sum())
    roles = [*boxes, *(masks or {}), *([border] if border else [])]
    if total <= 0.0:
        return {role: float("nan") for role in roles}
    out = {}
    for role, box in boxes.items():
        rows, cols = _box_slices(mass.shape, box)
        out[role] = float(mass[rows, cols].sum() / total)
    for role, m in (masks or {}).items():
        out[role] = float(mass[m].sum() / total)
    if border:
        h, w = mass.shape
        bh, bw = max(1, int(round(fraction * h))), max(1, int(round(fraction * w)))
        inner = float(mass[bh : max(bh, h - bh), bw : max(bw, w - bw)].sum())
        out[border] = max(0.0, (total - inner) / total)
    return out


def _resampled_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples of ``x``, drawn in chunks so memory stays bounded."""
    n = x.size
    means = np.empty(n_boot)
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    return means


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    minus: Sequence[float] | np.ndarray | None = None,
) -> tuple[float, float]:
    """Return a percentile bootstrap confidence interval for the mean of ``values``.

    NaN values are dropped first. Resamples are drawn in chunks so memory stays bounded for
    large datasets. The same values and ``seed`` always give the same interval, in whatever
    order the values come (engines that finish images in different orders agree).

    With ``minus`` the interval is for ``mean(values) - mean(minus)``: both samples are
    resampled independently (a group against the images outside it).

    Returns
    -------
    tuple of float
        ``(lo, hi)``; ``(nan, nan)`` for no values, ``(v, v)`` for one.
    """
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[np.isfinite(x)])
    y = None
    if minus is not None:
        y = np.asarray(minus, dtype=np.float64)
        y = np.sort(y[np.isfinite(y)])
    n = x.size
    if n == 0 or (y is not None and y.size == 0):
        return (float("nan"), float("nan"))
    if y is None and n == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = _resampled_means(x, n_boot, rng)
    if y is not None:
        means = means - _resampled_means(y, n_boot, rng)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def summarise(values: Sequence[float], *, seed: int = 0) -> dict:
    """Return ``{"mean", "ci95": [lo, hi], "n"}`` for the finite values (NaN when none)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    mean = float(x.mean()) if x.size else float("nan")
    lo, hi = bootstrap_ci(x, seed=seed)
    return {"mean": mean, "ci95": [lo, hi], "n": int(x.size)}


def confusion_matrix(truth: Sequence[int], pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Return the (true, predicted) count matrix."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        cm[t, p] += 1
    return cm


def classification_summary(cm: np.ndarray, classes: Sequence[str]) -> dict:
    """Return accuracy, per-class recall and the confusion matrix from a count matrix.

    Recall is NaN for a class with no true examples; accuracy is NaN for an empty matrix.
    """
    total = int(cm.sum())
    support = cm.sum(axis=1)
    recall = {
        c: (float(cm[i, i] / support[i]) if support[i] else float("nan"))
        for i, c in enumerate(classes)
    }
    return {
        "accuracy": float(np.trace(cm) / total) if total else float("nan"),
        "recall": recall,
        "confusion": cm.tolist(),
        "n": total,
    }


class RunningMeanMap:
    """The mean of fixed-size maps, kept as a running sum so memory does not grow with the data."""

    def __init__(self, size: tuple[int, int]):
        self.sum = np.zeros(size, dtype=np.float64)
        self.count = 0

    def add(self, heat: np.ndarray) -> None:
        """Add one map of the fixed size (NaN counts as 0)."""
        self.sum += np.nan_to_num(np.asarray(heat, dtype=np.float64))
        self.count += 1

    def mean(self) -> np.ndarray:
        """Return the mean map (zeros when nothing was added)."""
        return (self.sum / self.count if self.count else self.sum).astype(np.float32)
