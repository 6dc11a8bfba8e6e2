"""Faithfulness Correlation (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI).

Random subsets ``S`` of a fixed size are replaced by a baseline; across the runs, the drop of
the score ``f(x) - f(x_S)`` is correlated (Pearson) with the map's total over ``S``. A map that
gives each pixel its share of the score correlates 1 (input x gradient of a linear model against
its own baseline does exactly this); a map unrelated to the model correlates about 0.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.core.errors import UsageError
from engine.metrics.faithfulness import (
    BASELINES,
    ForwardFn,
    _as_batch,
    _as_map,
    baseline_image,
    tracked,
)

#: Default number of random subsets.
RUNS = 64
#: Default subset size, as a share of the pixels.
SUBSET = 0.05


def random_subsets(n_pixels: int, size: int, runs: int, seed: int = 0) -> np.ndarray:
    """``(runs, size)`` flat pixel indices, each row drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(n_pixels, size, replace=False) for _ in range(runs)])


def pearson(a, b) -> float:
    """Pearson correlation of two 1-D arrays; 0 when either is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    den = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def faithfulness_correlation(forward: ForwardFn, x: torch.Tensor, saliency, target: int, *,
                             baseline: str | float = "mean", runs: int = RUNS,
                             subset: float | int = SUBSET, seed: int = 0,
                             subsets: np.ndarray | None = None, versus: int | None = None,
                             batch_size: int = 64) -> dict:
    """Faithfulness Correlation of one map, batched.

    Parameters
    ----------
    forward : callable
        ``f(batch (N, C, H, W)) -> scores (N, K)``.
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image.
    saliency : array-like
        ``(h, w)`` map (resized bilinearly to the input); signed maps keep their sign.
    target : int
        Class whose score is tracked.
    baseline : str or float
        What replaces a pixel of ``S``: a constant pixel value, or ``"mean"``, ``"blur"`` or
        ``"background"`` (see :func:`engine.metrics.faithfulness.baseline_image`).
    runs : int
        Number of random subsets.
    subset : float or int
        Subset size: a share of the pixels (float) or a pixel count (int).
    seed : int
        Seed of the subsets.
    subsets : np.ndarray, optional
        ``(runs, size)`` flat pixel indices to use instead of drawing them.
    versus : int, optional
        A contrasted class: ``p[target] - p[versus]`` is tracked.
    batch_size : int
        Forward passes per batch.

    Returns
    -------
    dict
        ``faithfulness_correlation`` (Pearson, in [-1, 1]; 0 when the map's totals do not vary,
        as for a constant map), ``runs`` and ``subset_size``.
    """
    x = _as_batch(x)
    h, w = x.shape[-2:]
    n = h * w
    sal = _as_map(saliency, (h, w)).double().flatten().cpu().numpy()
    if subsets is None:
        size = int(round(subset * n)) if isinstance(subset, float) else int(subset)
        if not 1 <= size < n:
            raise UsageError(f"subset size {size} does not fit {n} pixels",
                             fix="use a share between 0 and 1")
        subsets = random_subsets(n, size, runs, seed)
    subsets = np.asarray(subsets)
    if isinstance(baseline, str):
        if baseline == "linear" or baseline not in BASELINES:
            raise UsageError(f"unknown baseline {baseline!r}",
                             fix="use a pixel value, mean, blur or background")
        fill = baseline_image(x, baseline)
    else:
        fill = torch.full_like(x, float(baseline))
    flat_x, flat_fill = x.flatten(2), fill.flatten(2)
    drops = []
    with torch.inference_mode():
        p0 = float(tracked(forward(x), target, versus)[0])
        for start in range(0, len(subsets), batch_size):
            chunk = torch.as_tensor(subsets[start:start + batch_size], device=x.device)
            removed = torch.zeros(len(chunk), 1, n, dtype=torch.bool, device=x.device)
            removed[torch.arange(len(chunk))[:, None], 0, chunk] = True
            batch = torch.where(removed, flat_fill, flat_x).view(len(chunk), *x.shape[1:])
            drops.extend((p0 - tracked(forward(batch), target, versus)).double().tolist())
    totals = sal[subsets].sum(axis=1)
    return {"faithfulness_correlation": pearson(totals, drops), "runs": int(len(subsets)),
            "subset_size": int(subsets.shape[1])}
