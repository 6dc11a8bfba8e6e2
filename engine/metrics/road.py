"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy
for Attribution Methods", ICML).

A share ``q`` of the pixels is removed in the map's order, most relevant first (MoRF) or least
relevant first (LeRF), and filled by noisy linear imputation: each removed pixel becomes the
weighted mean of its neighbours (1/6 direct, 1/12 diagonal) plus a little noise
(:func:`engine.metrics.faithfulness.impute` with ``"linear"``). The model's score is read at each
share. The fill carries no shape of the mask, so the two orders see the same kind of artefact and
only the gap between them credits the map: a faithful map's MoRF curve falls fast while its LeRF
curve stays high.

The imputation solves the neighbour-mean system by Jacobi iteration from a blur of the kept
pixels; ``iterations`` sets how far it goes (the exact sparse solve is the limit). The scores are
averaged over the shares, as pytorch-grad-cam's ``ROADMostRelevantFirstAverage`` does.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.core.errors import UsageError
from engine.metrics.faithfulness import (
    ForwardFn,
    _as_batch,
    _as_map,
    impute,
    saliency_ranks,
    tracked,
)

#: Shares of pixels removed, in percent (Rong et al. and pytorch-grad-cam use 10..90).
PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
#: Jacobi iterations of the linear imputation.
ITERATIONS = 40
#: Noise added to imputed pixels (pixel values), as pytorch-grad-cam's imputer (0.01).
NOISE = 0.01


def road(forward: ForwardFn, x: torch.Tensor, saliency, target: int, *,
         percentages=PERCENTAGES, versus: int | None = None, seed: int = 0,
         iterations: int = ITERATIONS, noise: float = NOISE) -> dict:
    """ROAD scores of one map in both orders, batched (one forward pass for all shares).

    Parameters
    ----------
    forward : callable
        ``f(batch (N, C, H, W)) -> scores (N, K)``.
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image.
    saliency : array-like
        ``(h, w)`` map (resized bilinearly to the input).
    target : int
        Class whose score is tracked.
    percentages : sequence of float
        Shares of pixels removed, in percent.
    versus : int, optional
        A contrasted class: ``p[target] - p[versus]`` is tracked.
    seed : int
        Seed of the tie-breaking and of the noise.
    iterations : int
        Jacobi iterations of the imputation.
    noise : float
        Std of the noise added to the imputed pixels.

    Returns
    -------
    dict
        ``road_score`` (on the image), ``road_morf`` and ``road_lerf`` (per share),
        ``road_morf_mean`` and ``road_lerf_mean`` (their means), ``road_gap``
        (``(lerf_mean - morf_mean) / score``, larger is more faithful; 0 when the score is 0)
        and ``road_percentages``.
    """
    x = _as_batch(x)
    qs, batch = road_inputs(x, saliency, percentages, seed=seed, iterations=iterations,
                            noise=noise)
    with torch.inference_mode():
        scores = tracked(forward(torch.cat([x, batch])), target, versus).double().cpu().numpy()
    return road_result(scores, qs)


def road_inputs(x: torch.Tensor, saliency, percentages=PERCENTAGES, *, seed: int = 0,
                iterations: int = ITERATIONS, noise: float = NOISE):
    """The shares and the ``(2 * len(percentages), C, H, W)`` imputed copies ROAD scores.

    MoRF copies first, then LeRF; :func:`road` scores them after the image itself.
    """
    x = _as_batch(x)
    qs = [float(q) for q in percentages]
    if not qs or min(qs) < 0 or max(qs) > 100:
        raise UsageError("ROAD percentages must lie in [0, 100]")
    h, w = x.shape[-2:]
    sal = _as_map(saliency, (h, w)).to(x.device)
    counts = torch.tensor([round(q / 100 * h * w) for q in qs], device=x.device)
    masks = []
    for signed in (sal, -sal):
        ranks = saliency_ranks(signed, seed=seed).to(x.device)
        masks.append((ranks[None] < counts[:, None, None]).unsqueeze(1))
    removed = torch.cat(masks)
    g = torch.Generator().manual_seed(seed)
    return qs, impute(x, removed, "linear", iterations=iterations, noise=noise, generator=g)


def road_result(scores: np.ndarray, qs: list[float]) -> dict:
    """The dict of :func:`road` from the tracked scores of the image and its imputed copies."""
    p0, morf, lerf = float(scores[0]), scores[1:1 + len(qs)], scores[1 + len(qs):]
    gap = (lerf.mean() - morf.mean()) / p0 if p0 > 0 else 0.0
    return {"road_score": p0, "road_morf": morf.tolist(), "road_lerf": lerf.tolist(),
            "road_morf_mean": float(morf.mean()), "road_lerf_mean": float(lerf.mean()),
            "road_gap": float(gap), "road_percentages": qs}

def road_subsets(saliency, percentages=PERCENTAGES, order: str = "morf",
                 seed: int = 0) -> np.ndarray:
    """The ``(len(percentages), h, w)`` boolean masks of the pixels ROAD removes.

    Exposed so that a reference implementation can be fed the same pixels.
    """
    sal = torch.as_tensor(np.asarray(saliency, dtype=np.float32))
    ranks = saliency_ranks(sal if order == "morf" else -sal, seed=seed).numpy()
    n = sal.numel()
    return np.stack([ranks < round(q / 100 * n) for q in percentages])
