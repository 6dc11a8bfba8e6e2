"""Trust metrics of a volume map: deletion and insertion over voxels, pointing and energy in a box.

- Deletion and insertion (Petsiuk et al. 2018) run in the 3-D model's input space, as the 2-D
  curves run in pixel space: voxels are removed (or inserted) in saliency order, a heavy 3-D
  Gaussian blur of the input (or its mean) stands in for what is missing, and the target's
  probability is tracked. Saliency ranks, the curve and its area are those of
  :mod:`engine.metrics.faithfulness`.
- Pointing game and energy-based pointing (:mod:`engine.metrics.localisation`) run on the
  finished map on the volume's own grid, against a voxel box ``(x0, y0, z0, x1, y1, z1)``
  (column, row, slice; end-exclusive), the 3-D form of ``--roi X0,Y0,X1,Y1``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.cancel import CancelToken
from engine.core.errors import UsageError
from engine.metrics.faithfulness import Curve, saliency_ranks, tracked, trapezoid_auc
from engine.metrics.localisation import energy_in_roi, iou_at_threshold, pointing_hit

VOXEL_BASELINES = ("blur", "mean")
_FIX = "write it as six numbers X0,Y0,Z0,X1,Y1,Z1: columns, rows, slices, ends excluded"


def parse_box3d(text: str, what: str = "--roi") -> tuple[int, int, int, int, int, int]:
    """Parse ``"x0,y0,z0,x1,y1,z1"`` (voxels; ends excluded) into a box of whole voxels.

    Raises
    ------
    UsageError
        Not six finite numbers, or an empty box, or one starting below 0.
    """
    parts = [p for p in re.split(r"[\s,;]+", str(text).strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{what} {text!r} is not six numbers", fix=_FIX)
    box = tuple(int(round(v)) for v in values)
    if not all(0 <= box[a] < box[a + 3] for a in range(3)):
        raise UsageError(f"{what} {text!r} needs 0 <= start < end on every axis", fix=_FIX)
    return box


def box_mask(shape: tuple[int, int, int], box) -> np.ndarray:
    """Boolean ``(slices, rows, columns)`` mask of a voxel box ``(x0, y0, z0, x1, y1, z1)``.

    Raises
    ------
    UsageError
        If the box lies outside the volume.
    """
    x0, y0, z0, x1, y1, z1 = (int(v) for v in box)
    s, r, c = shape
    if x0 >= c or y0 >= r or z0 >= s or x1 <= 0 or y1 <= 0 or z1 <= 0:
        raise UsageError(f"box {tuple(box)} does not overlap the {c}x{r}x{s} volume",
                         fix="give X0,Y0,Z0,X1,Y1,Z1 inside the volume (columns, rows, slices)")
    mask = np.zeros(shape, bool)
    mask[max(z0, 0):z1, max(y0, 0):y1, max(x0, 0):x1] = True
    return mask


def roi_metrics_3d(heatmap: np.ndarray, box) -> dict:
    """Pointing hit, energy in the box and IoU at half maximum of a map on the volume's grid."""
    mask = box_mask(tuple(heatmap.shape), box)
    return {
        "roi": [int(v) for v in box],
        "roi_shape": "box",
        "pointing_hit": pointing_hit(heatmap, mask),
        "energy_in_roi": energy_in_roi(heatmap, mask),
        "iou_at_half": iou_at_threshold(heatmap, mask, 0.5),
    }


def blur3d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``(N, C, D, H, W)`` with a separable Gaussian of ``sigma`` voxels (replicate edges)."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    out = x
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = -1
        weight = k.view(1, 1, *shape).repeat(c, 1, 1, 1, 1)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), weight, groups=c)
    return out


def voxel_curve(forward, x: torch.Tensor, saliency, target: int, kind: str = "deletion", *,
                baseline: str = "blur", steps: int = 20, batch_size: int = 8, seed: int = 0,
                cancel: CancelToken | None = None, versus: int | None = None) -> Curve:
    """A deletion or insertion curve over the voxels of a 3-D model's input.

    Parameters
    ----------
    forward : callable
        ``f(batch (N, C, D, H, W)) -> probabilities (N, K)``, on [0, 1] input.
    x : torch.Tensor
        ``(1, C, D, H, W)`` input in [0, 1] space.
    saliency : array-like
        ``(d, h, w)`` map over the input (any resolution; resampled trilinearly).
    target : int
        Class whose probability is tracked.
    kind : {"deletion", "insertion"}
    baseline : {"blur", "mean"}
        What stands in for a removed voxel: a Gaussian blur of 1/16 of the largest side, or the
        input's mean.
    steps, batch_size, seed, cancel, versus
        As in :func:`engine.metrics.faithfulness.perturbation_curve`.

    Returns
    -------
    Curve
    """
    if kind not in ("deletion", "insertion"):
        raise UsageError(f"unknown curve kind {kind!r}", fix="use deletion or insertion")
    if baseline not in VOXEL_BASELINES:
        raise UsageError(f"unknown voxel baseline {baseline!r}", fix="use blur or mean")
    if x.ndim != 5 or x.shape[0] != 1:
        raise UsageError(f"expected one volume shaped (1,C,D,H,W), got {tuple(x.shape)}")
    grid = tuple(x.shape[2:])
    s = torch.as_tensor(np.asarray(saliency, dtype=np.float32))
    if s.ndim != 3:
        raise UsageError(f"expected a 3-D saliency map, got shape {tuple(s.shape)}")
    if tuple(s.shape) != grid:
        s = F.interpolate(s[None, None], size=grid, mode="trilinear", align_corners=False)[0, 0]
    ranks = saliency_ranks(torch.nan_to_num(s), seed=seed).to(x.device)
    base = blur3d(x, max(1.0, max(grid) / 16)) if baseline == "blur" else \
        x.mean(dim=(2, 3, 4), keepdim=True).expand_as(x)
    n = ranks.numel()
    counts = [round(k * n / steps) for k in range(steps + 1)]
    scores: list[float] = []
    for first in range(0, len(counts), batch_size):
        if cancel is not None:
            cancel.check()
        chunk = torch.tensor(counts[first : first + batch_size], device=x.device)
        top = (ranks[None] < chunk[:, None, None, None]).unsqueeze(1)
        removed = (top if kind == "deletion" else ~top).to(x.dtype)
        batch = x * (1 - removed) + base * removed
        with torch.inference_mode():
            scores += [float(v) for v in tracked(forward(batch), target, versus).detach().cpu()]
    fractions = [c / n for c in counts]
    return Curve(kind=kind, fractions=fractions, scores=scores,
                 auc=trapezoid_auc(fractions, scores))


def volume_metrics(forward, pixels: torch.Tensor, found, target: int, roi=None,
                   steps: int = 20, baseline: str = "blur", versus: int | None = None,
                   cancel: CancelToken | None = None) -> dict:
    """The faithfulness and localisation metrics of one map of a 3-D model's explanation.

    :func:`engine.metrics.case.case_metrics` calls this for a volume: it owns the forward
    function (the core's scorer for the case) and the pixel-space input.

    Parameters
    ----------
    forward : callable
        ``f(batch (N, C, D, H, W) in [0, 1]) -> probabilities (N, K)``.
    pixels : torch.Tensor
        ``(1, C, D, H, W)`` the model's input in [0, 1] space.
    found : MapResult
        The map measured.
    target : int
        The class explained.
    roi : tuple, optional
        Voxel box ``(x0, y0, z0, x1, y1, z1)`` for the pointing game and energy.
    steps : int
        Steps of the deletion and insertion curves.
    baseline : {"blur", "mean"}
        What removed voxels become.
    versus : int, optional
        The contrasted class of a contrastive map (the curves track the difference).
    cancel : CancelToken, optional
        Checked between batches.

    Returns
    -------
    dict
        ``deletion_auc``, ``insertion_auc`` and their curves, and with ``roi`` the keys of
        :func:`roi_metrics_3d`.
    """
    saliency = np.clip(found.raw, 0.0, None) if not found.signed else found.raw
    out = {}
    for kind in ("deletion", "insertion"):
        curve = voxel_curve(forward, pixels, saliency, target, kind, baseline=baseline,
                            steps=steps, versus=versus, cancel=cancel)
        out[f"{kind}_auc"] = curve.auc
        out[f"{kind}_curve"] = curve.to_dict()
    out["baseline"] = baseline
    if roi is not None:
        out.update(roi_metrics_3d(found.heatmap, roi))
    return out
