"""Faithfulness of a saliency map: does removing what it highlights change the prediction?

Everything here works on a *pixel-space* input in [0, 1] shaped ``(1, C, H, W)`` (or ``(C, H, W)``)
and a forward function ``f(batch) -> scores`` of shape ``(N, K)``; the caller folds the model's
normalisation into ``f``. Saliency maps are ``(H, W)`` in the same geometry as the input.

Deletion and insertion curves follow Petsiuk et al. 2018 (RISE, BMVC): pixels are removed (or
inserted) in saliency order and the target probability is tracked; a faithful map makes the
deletion curve fall fast (small area) and the insertion curve rise fast (large area).

Removed pixels must be replaced by something, and the replacement must neither draw a shape the
model can read nor rebuild the evidence that was removed. A constant fills the hole with a shape
(Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
ROAD). Interpolating from the hole's rim has the opposite flaw: inside a dark region (a lung
field) the rim is brighter than the floor, so the fill is a faint bright patch, which is exactly
what a small opacity looks like, and a rim that still touches the removed blob rebuilds it. Four
baselines are offered:

- ``"background"`` (default): the image's local background, a grey-level opening followed by a
  closing with a square about 1/12 of the image side, plus noise at the image's own level. The
  opening erases bright structures smaller than the square (a nodule, a rib), the closing erases
  dark ones, and both keep larger anatomy such as a lung field's dark floor, so a filled hole
  carries neither the removed detail nor an edge.
- ``"linear"``: ROAD's noisy linear imputation (each removed pixel the weighted mean of its
  neighbours, 1/6 direct and 1/12 diagonal, plus noise).
- ``"blur"``: a heavy Gaussian blur of the image, as Petsiuk et al. use for insertion.
- ``"mean"``: the per-channel image mean.

ROAD's consistency check is also available: ``order="lerf"`` removes the *least* relevant pixels
first; a map is only credible if LeRF keeps the score far above MoRF.

Average Drop and Increase in Confidence follow Chattopadhay et al. 2018 (Grad-CAM++, WACV), as
used by Wang et al. 2020 (Score-CAM, CVPRW): the input is multiplied by the map scaled to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import UsageError

ForwardFn = Callable[[torch.Tensor], torch.Tensor]

BASELINES = ("background", "linear", "blur", "mean")


def _neighbour_mean(x: torch.Tensor) -> torch.Tensor:
    """ROAD's neighbour mean: direct neighbours weigh 1/6, diagonal ones 1/12 (edges replicated).

    Written as shifted slices rather than a convolution: it is several times faster on CPU for
    one-channel inputs.
    """
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    direct = p[..., 1:-1, :-2] + p[..., 1:-1, 2:] + p[..., :-2, 1:-1] + p[..., 2:, 1:-1]
    diagonal = p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]
    return direct / 6 + diagonal / 12


@dataclass
class Curve:
    """One deletion or insertion curve.

    Attributes
    ----------
    kind : str
        ``"deletion"`` or ``"insertion"``.
    fractions : list of float
        Share of pixels removed (deletion) or inserted (insertion), from 0 to 1.
    scores : list of float
        Target probability at each fraction.
    auc : float
        Trapezoidal area under ``scores`` over ``fractions`` (both axes in [0, 1]).
    """

    kind: str
    fractions: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    auc: float = 0.0

    def score_at(self, fraction: float) -> float:
        """Return the score at ``fraction``, linearly interpolated between steps."""
        return float(np.interp(fraction, self.fractions, self.scores))

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {"fractions": self.fractions, "scores": self.scores, "auc": self.auc}


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise UsageError(f"expected one image shaped (1,C,H,W), got {tuple(x.shape)}")
    return x


def _as_map(saliency, shape: tuple[int, int]) -> torch.Tensor:
    s = torch.as_tensor(np.asarray(saliency, dtype=np.float32))
    if s.dim() != 2:
        raise UsageError(f"expected a 2-D saliency map, got shape {tuple(s.shape)}")
    if tuple(s.shape) != tuple(shape):
        s = F.interpolate(s[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0]
    return torch.nan_to_num(s, nan=0.0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a ``(N, C, H, W)`` batch with a separable Gaussian (reflect padding).

    Parameters
    ----------
    x : torch.Tensor
        Batch to blur.
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    torch.Tensor
        The blurred batch, same shape.
    """
    radius = max(1, int(round(3 * sigma)))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def background_size(shape: tuple[int, int]) -> int:
    """Side of the square of the ``"background"`` fill: odd, about 1/12 of the image side.

    Large enough to erase blob-sized evidence (at 64 px a 5-px square erases a demo nodule of
    about 2 px sigma), small enough to keep narrow anatomy such as a mediastinum: a larger square
    erases it too, and the model then reads the distorted anatomy instead of the missing pixels.
    """
    k = max(3, int(round(max(shape) / 12)))
    return k if k % 2 else k + 1


def local_background(x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Grey-level opening then closing of a ``(N, C, H, W)`` batch with a ``size`` square.

    Parameters
    ----------
    x : torch.Tensor
        Batch.
    size : int, optional
        Odd side of the square; :func:`background_size` by default.

    Returns
    -------
    torch.Tensor
        The background, same shape: structures narrower than the square are gone, whether
        brighter (opening) or darker (closing) than their surroundings.
    """
    k = background_size(tuple(x.shape[-2:])) if size is None else size

    def dilate(t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, k, stride=1, padding=k // 2)

    def erode(t: torch.Tensor) -> torch.Tensor:
        return -dilate(-t)

    return erode(dilate(dilate(erode(x))))


def baseline_image(x: torch.Tensor, baseline: str = "background") -> torch.Tensor:
    """Return the ``(1, C, H, W)`` image that removed pixels are replaced with.

    Only for the mask-independent baselines ``"background"`` (before its noise), ``"blur"`` and
    ``"mean"``; the ``"linear"`` fill depends on the mask (see :func:`impute`).
    """
    x = _as_batch(x)
    if baseline == "background":
        return local_background(x)
    if baseline == "blur":
        # Petsiuk et al. blur with sigma 5 at 224 px, which leaves small lesions visible; a sigma
        # of 1/16 of the image side erases blob-sized evidence at any input size.
        return gaussian_blur(x, sigma=max(1.0, max(x.shape[-2:]) / 16))
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    raise UsageError(f"no fixed baseline image for {baseline!r}",
                     fix="use background, blur or mean")


def impute(
    x: torch.Tensor,
    removed: torch.Tensor,
    baseline: str = "background",
    *,
    base: torch.Tensor | None = None,
    iterations: int = 12,
    noise: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace the removed pixels of ``x`` for each mask of a batch.

    Parameters
    ----------
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image.
    removed : torch.Tensor
        ``(N, 1, H, W)`` masks, 1 where a pixel is removed.
    baseline : {"background", "linear", "blur", "mean"}
        What replaces removed pixels. ``"background"`` is :func:`local_background` plus Gaussian
        noise of std ``noise``. ``"linear"`` solves the ROAD neighbour-mean system by Jacobi
        iteration started from a blur of the kept pixels only, then adds the same noise.
    base : torch.Tensor, optional
        Precomputed :func:`baseline_image` for ``"background"``/``"blur"``/``"mean"`` (saves
        work across batches).
    iterations : int
        Jacobi iterations for ``"linear"``.
    noise : float, optional
        Noise std for ``"background"`` and ``"linear"``. By default it is the image's own noise
        level (:func:`noise_level`): ROAD adds noise so that a filled hole is not a smooth
        patch, and a patch smoother than the rest of the image is itself a shape a model can
        read.
    generator : torch.Generator, optional
        Seeded generator for the noise.

    Returns
    -------
    torch.Tensor
        ``(N, C, H, W)`` batch.
    """
    x = _as_batch(x)
    if baseline not in BASELINES:
        raise UsageError(f"unknown baseline {baseline!r}", fix=f"use one of {', '.join(BASELINES)}")
    removed = removed.to(x.dtype)
    if baseline in ("blur", "mean"):
        if base is None:
            base = baseline_image(x, baseline)
        return x * (1 - removed) + base * removed
    sigma_noise = noise_level(x) if noise is None else noise
    if baseline == "background":
        if base is None:
            base = baseline_image(x, baseline)
        eps = torch.randn(removed.shape[:1] + x.shape[1:], generator=generator,
                          dtype=x.dtype).to(x.device)
        return (x * (1 - removed) + (base + sigma_noise * eps) * removed).clamp(0.0, 1.0)
    # Start from a normalised convolution of the kept pixels only, so no removed value leaks in,
    # then relax towards the ROAD neighbour-mean solution.
    kept = 1 - removed
    sigma = max(1.0, max(x.shape[-2:]) / 16)
    num = gaussian_blur(x * kept, sigma)
    den = gaussian_blur(kept.expand(-1, x.shape[1], -1, -1), sigma)
    fallback = x.mean(dim=(2, 3), keepdim=True)
    start = torch.where(den > 1e-3, num / den.clamp_min(1e-3), fallback)
    out = x * kept + start * removed
    for _ in range(iterations):
        out = x * kept + _neighbour_mean(out) * removed
    eps = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
    return (out + sigma_noise * eps * removed).clamp(0.0, 1.0)


def noise_level(x: torch.Tensor) -> float:
    """Robust estimate of the additive noise std of an image.

    The residual ``x - neighbour_mean(x)`` of i.i.d. noise of std s has std
    ``s * sqrt(1 + 4/36 + 4/144)``; its median absolute deviation (times 1.4826) ignores the
    smooth anatomy and the few edges.
    """
    r = (x - _neighbour_mean(x)).flatten()
    mad = (r - r.median()).abs().median()
    return float(1.4826 * mad / (1 + 4 / 36 + 4 / 144) ** 0.5)


def saliency_ranks(saliency: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Rank pixels from most (0) to least salient, breaking ties at random.

    Ties are common (ReLU zeros); breaking them in raster order would remove a band from the top of
    the image, a mask shape the model can read.
    """
    flat = saliency.flatten().double()
    g = torch.Generator().manual_seed(seed)
    jitter = torch.rand(flat.shape, generator=g, dtype=torch.float64)
    # Lexicographic sort: saliency descending, then the random key.
    order = torch.argsort(jitter)
    order = order[torch.argsort(-flat[order], stable=True)]
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks.view(saliency.shape)


def trapezoid_auc(fractions, scores) -> float:
    """Area under ``scores`` over ``fractions`` by the trapezoidal rule."""
    f = np.asarray(fractions, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return float(np.sum((f[1:] - f[:-1]) * (s[1:] + s[:-1]) / 2))


def tracked(scores: torch.Tensor, target: int, versus: int | None = None) -> torch.Tensor:
    """The (N,) quantity a curve tracks: ``p[target]``, or ``p[target] - p[versus]``.

    A contrastive map explains why the model says the target rather than ``versus``, so its
    curves track that difference, as the perturbation explainers do.
    """
    out = scores[:, target]
    return out - scores[:, versus] if versus is not None else out


def perturbation_curve(
    forward: ForwardFn,
    x: torch.Tensor,
    saliency,
    target: int,
    kind: str = "deletion",
    *,
    baseline: str = "background",
    steps: int = 20,
    order: str = "morf",
    batch_size: int = 32,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    versus: int | None = None,
) -> Curve:
    """Compute a deletion or insertion curve (Petsiuk et al. 2018), batched.

    Parameters
    ----------
    forward : callable
        ``f(batch (N,C,H,W)) -> scores (N,K)``, probabilities.
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image.
    saliency : array-like
        ``(h, w)`` map; resized bilinearly to the input if needed.
    target : int
        Class index whose probability is tracked.
    kind : {"deletion", "insertion"}
        Remove pixels from the image, or insert them into the baseline.
    baseline : {"background", "linear", "blur", "mean"}
        What stands in for a missing pixel (see the module docstring).
    steps : int
        Number of steps; the curve has ``steps + 1`` points.
    order : {"morf", "lerf"}
        Most relevant first (the usual curve) or least relevant first (ROAD's control).
    batch_size : int
        Forward passes per batch.
    seed : int
        Seed for tie-breaking and imputation noise.
    progress, cancel
        Progress callback and cancel token.
    versus : int, optional
        A contrasted class: the curve tracks ``p[target] - p[versus]`` (see :func:`tracked`).

    Returns
    -------
    Curve
    """
    if kind not in ("deletion", "insertion"):
        raise UsageError(f"unknown curve kind {kind!r}", fix="use deletion or insertion")
    if order not in ("morf", "lerf"):
        raise UsageError(f"unknown order {order!r}", fix="use morf or lerf")
    if steps < 1:
        raise UsageError("steps must be at least 1")
    x = _as_batch(x)
    h, w = x.shape[-2:]
    sal = _as_map(saliency, (h, w)).to(x.device)
    ranks = saliency_ranks(-sal if order == "lerf" else sal, seed=seed).to(x.device)
    n_pix = h * w
    counts = [round(k * n_pix / steps) for k in range(steps + 1)]
    if baseline not in BASELINES:
        raise UsageError(f"unknown baseline {baseline!r}", fix=f"use one of {', '.join(BASELINES)}")
    base = None if baseline == "linear" else baseline_image(x, baseline)
    g = torch.Generator().manual_seed(seed)
    scores: list[float] = []
    for start in range(0, len(counts), batch_size):
        if cancel is not None:
            cancel.check()
        chunk = torch.tensor(counts[start : start + batch_size], device=x.device)
        # A pixel is "on top" for step k if its rank is among the first counts[k].
        top = (ranks[None] < chunk[:, None, None]).unsqueeze(1)
        removed = top if kind == "deletion" else ~top
        batch = impute(x, removed, baseline, base=base, generator=g)
        with torch.inference_mode():
            p = tracked(forward(batch), target, versus)
        scores.extend(float(v) for v in p.detach().cpu())
        if progress is not None:
            progress(min(1.0, (start + len(chunk)) / len(counts)), f"{kind} curve")
    fractions = [c / n_pix for c in counts]
    auc = trapezoid_auc(fractions, scores)
    return Curve(kind=kind, fractions=fractions, scores=scores, auc=auc)


def average_drop_increase(
    forward: ForwardFn, x: torch.Tensor, saliency, target: int, versus: int | None = None
) -> tuple[float, bool, float, float]:
    """Average Drop and Increase in Confidence for one image (Chattopadhay et al. 2018).

    The input is multiplied by the map min-max scaled to [0, 1] ("explanation map").

    Parameters
    ----------
    forward : callable
        ``f(batch) -> probabilities``.
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image.
    saliency : array-like
        ``(h, w)`` map.
    target : int
        Class index.
    versus : int, optional
        A contrasted class (see :func:`tracked`).

    Returns
    -------
    drop : float
        ``100 * max(0, Y - O) / Y`` where Y is the score on the image, O on the explanation map.
        The dataset-level Average Drop is the mean of this.
    increased : bool
        Whether ``O > Y``; the dataset-level Increase in Confidence is the percentage of True.
    y, o : float
        The two scores.
    """
    x = _as_batch(x)
    sal = _as_map(saliency, tuple(x.shape[-2:])).to(x.device)
    lo, hi = sal.min(), sal.max()
    m = (sal - lo) / (hi - lo) if hi > lo else torch.zeros_like(sal)
    with torch.inference_mode():
        p = tracked(forward(torch.cat([x, x * m])), target, versus)
    y, o = float(p[0]), float(p[1])
    drop = 100.0 * max(0.0, y - o) / y if y > 0 else 0.0
    return drop, o > y, y, o

