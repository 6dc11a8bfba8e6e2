"""Whole-batch map work: back to image geometry, ROI shares and small stored maps.

Each function does for a stack of maps what its single-map counterpart does for one
(:func:`engine.audit.measures.region_shares`), with one
tensor operation per batch instead of a Python loop per image; tests check that they agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from engine.audit.measures import BORDER_FRACTION


def _span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Pixel rows (or columns) ``[start, stop)`` an edge pair covers, clipped, stop >= start."""
    start = min(size, max(0, math.floor(lo)))
    return start, max(start, min(size, math.ceil(hi)))


def _rect_sums(table: torch.Tensor, rects: torch.Tensor) -> torch.Tensor:
    """Sum each image over its rectangle ``(r0, r1, c0, c1)`` from a summed-area table."""
    i = torch.arange(len(rects))
    r0, r1, c0, c1 = rects.unbind(1)
    return table[i, r1, c1] - table[i, r0, c1] - table[i, r1, c0] + table[i, r0, c0]


def batch_shares(
    heat: torch.Tensor,
    boxes: Sequence[dict[str, Sequence[float]]],
    masks: Sequence[dict[str, np.ndarray]],
    roles: Sequence[str],
    border: str,
    fraction: float = BORDER_FRACTION,
) -> list[dict[str, float | None]]:
    """Return, per image, the share of non-negative saliency mass on each role.

    The batch form of :func:`engine.audit.measures.region_shares`: box and border sums come
    from one summed-area table of the batch, so every image's sums are a few look-ups.

    Parameters
    ----------
    heat : torch.Tensor
        (N, H, W) maps in image geometry; negatives and NaN carry no mass.
    boxes : sequence of dict
        Per image, ``(x0, y0, x1, y1)`` per role it has.
    masks : sequence of dict
        Per image, boolean (H, W) masks per role (roles with a box take the box).
    roles : sequence of str
        Dataset roles to report; ``border`` is added.
    border : str
        Role name of the border band.
    fraction : float
        Border band width as a fraction of each side.

    Returns
    -------
    list of dict
        Per image, role -> share in [0, 1], or None where the image has no such region or its
        map has no positive mass.
    """
    mass = torch.nan_to_num(heat.double(), nan=0.0, posinf=0.0, neginf=0.0).clamp_(min=0.0)
    n, h, w = mass.shape
    table = F.pad(mass.cumsum(1).cumsum(2), (1, 0, 1, 0))
    total = table[:, h, w]
    bh, bw = max(1, round(fraction * h)), max(1, round(fraction * w))
    inner_rows, inner_cols = _span(bh, max(bh, h - bh), h), _span(bw, max(bw, w - bw), w)
    inner = torch.tensor([[*inner_rows, *inner_cols]] * n, dtype=torch.long)
    border_share = ((total - _rect_sums(table, inner)) / total).clamp(min=0.0)
    box_share = {}
    for role in roles:
        where = [i for i in range(n) if role in boxes[i]]
        if not where:
            continue
        picked = [boxes[i][role] for i in where]
        rects = torch.tensor(
            [[*_span(b[1], b[3], h), *_span(b[0], b[2], w)] for b in picked], dtype=torch.long
        )
        sums = _rect_sums(table[where], rects) / total[where]
        box_share[role] = dict(zip(where, sums.tolist(), strict=True))
    totals, borders = total.tolist(), border_share.tolist()
    out = []
    for i in range(n):
        if not totals[i] > 0.0:
            out.append({r: None for r in [*roles, border]})
            continue
        shares: dict[str, float | None] = {}
        for role in roles:
            if role in box_share and i in box_share[role]:
                shares[role] = box_share[role][i]
            elif role in masks[i]:
                shares[role] = float(mass[i][torch.from_numpy(masks[i][role])].sum() / totals[i])
            else:
                shares[role] = None
        shares[border] = borders[i]
        out.append(shares)
    return out


@lru_cache(maxsize=32)
def _area_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix averaging the input cells of each adaptive-pooling window.

    Window ``i`` spans ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))``, the windows of
    :func:`torch.nn.functional.adaptive_avg_pool2d`. Cached: callers only read it.
    """
    out = torch.zeros(n_out, n_in)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        out[i, lo:hi] = 1.0 / (hi - lo)
    return out


def small_maps(heat: torch.Tensor, size: int) -> torch.Tensor:
    """Downsample (N, H, W) maps to (N, size, size) by area averaging, each scaled to peak 1.

    Adaptive average pooling written as two matrix products, which is several times faster
    than the pooling kernel for these sizes and gives the same windows.
    """
    _, h, w = heat.shape
    clean = torch.nan_to_num(heat.float(), 0.0, 0.0, 0.0)
    small = _area_matrix(h, size) @ clean @ _area_matrix(w, size).T
    return small / small.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
