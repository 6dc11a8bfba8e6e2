"""Score-CAM: channel weights from the model's score on activation-masked inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.explain.api import Explainer, Param
from plugins.scoring import logit_objective

#: A channel whose activation spans less than this is flat and carries no mask.
_FLAT = 1e-7
#: Lloyd iterations of the channel clustering in fast mode.
_KMEANS_ITERS = 15
#: How the masked inputs' scores become channel weights.
WEIGHTINGS = ("score", "softmax-logits", "softmax-increase")


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of an (N, *grid) stack to [0, 1] (flat maps become 0)."""
    grid = tuple(range(1, maps.ndim))
    low = maps.amin(dim=grid, keepdim=True)
    span = maps.amax(dim=grid, keepdim=True) - low
    return torch.where(span > _FLAT, (maps - low) / span.clamp(min=_FLAT), 0.0)


def _kmeans(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster rows of ``points`` into ``k`` groups; deterministic farthest-point start."""
    chosen = [int(points.norm(dim=1).argmax())]
    dist = ((points - points[chosen[0]]) ** 2).sum(dim=1)
    for _ in range(1, k):
        chosen.append(int(dist.argmax()))
        dist = torch.minimum(dist, ((points - points[chosen[-1]]) ** 2).sum(dim=1))
    centres = points[chosen].clone()
    labels = torch.zeros(len(points), dtype=torch.long, device=points.device)
    for _ in range(_KMEANS_ITERS):
        labels = torch.cdist(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, labels, points)
        counts = torch.bincount(labels, minlength=k).to(points.dtype)[:, None]
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return labels, centres


def _distinct(normalised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Group channels whose min-max normalised maps are equal; return labels and one map each.

    Channels that are positive multiples of each other (a lone peak in the same cell is common
    after a ReLU on a small grid) normalise to the same map, and so to the same mask: each
    group is scored once. Only exact equality groups, so every score is the one its own
    channel's mask would get.
    """
    distinct, labels = torch.unique(normalised.flatten(1), dim=0, return_inverse=True)
    return labels, distinct.view(-1, *normalised.shape[1:])


class ScoreCAM(Explainer):
    """Score-CAM (Wang et al., Algorithm 1).

    For each channel ``k`` of the layer, the activation ``A_k`` is upsampled to the input size and
    min-max normalised to a mask ``H_k`` in [0, 1]; the weight is the target's post-softmax (or
    sigmoid) score of the masked input, ``w_k = p_c(X * H_k)``, or with ``baseline`` on the
    increase of confidence ``p_c(X * H_k) - p_c(X_b)`` against the all-zero input ``X_b``. The map
    is ``ReLU(sum_k w_k A_k)``. Masked inputs are scored in batches under ``inference_mode``;
    flat channels (constant activation) are skipped with weight 0, and channels whose min-max
    normalised activations are identical share one scored mask.

    ``weighting`` chooses how the scores become weights:

    - ``score``: the post-softmax score above (the paper's equation; the default);
    - ``softmax-logits``: ``w = softmax_k(y_c(X * H_k))``, a softmax across the channels of the
      masked inputs' target **logits** (the paper's Algorithm 1, and pytorch-grad-cam);
    - ``softmax-increase``: ``w = softmax_k(p_c(X * H_k) - p_c(X_b))``, a softmax across the
      channels of the increase in post-softmax score (the MATLAB Score-CAM write-up).

    The softmaxes run over the channels that carry a mask. A softmax ignores a shift common to
    every channel, so ``baseline`` changes only the ``score`` weighting.

    ``mode=fast`` scores ``k`` masks instead of one per channel: the channels' normalised
    activations are grouped into ``k`` clusters (k-means), each cluster's mean mask is scored
    once, and every channel takes its cluster's score, on the premise that similar masks score
    alike. Its agreement with exact mode is measured in the benchmark, not assumed.
    """

    name = "scorecam"
    title = "Score-CAM"
    description = "Activations weighted by the model's score on each activation-masked input."
    citation = (
        "Wang H, Wang Z, Du M, Yang F, Zhang Z, Ding S, Mardziel P, Hu X. Score-CAM: "
        "Score-Weighted Visual Explanations for Convolutional Neural Networks. CVPR Workshops "
        "2020. arXiv:1910.01279"
    )
    needs = frozenset({"activations", "forward_fn"})
    units = "score x activation"
    params = (
        Param("mode", "choice", "exact", choices=("exact", "fast"),
              help="exact scores every channel; fast scores k clusters of similar channels"),
        Param("k", "int", 32, range=(1, 4096), help="masks scored in fast mode"),
        Param("baseline", "bool", False,
              help="subtract the all-zero input's score (increase of confidence)"),
        Param("weighting", "choice", "score", choices=WEIGHTINGS,
              help="channel weights: post-softmax score, or a softmax across channels of the "
              "logits or of the score increase"),
        Param("batch_size", "int", 64, range=(1, 1024), help="masked inputs per forward pass"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return one (1, h, w) map per layer ((1, d, h, w) for volumes)."""
        # No autograd bookkeeping for the mask building either, not just the forwards.
        with torch.inference_mode():
            return self._explain(capture, target, layers, params, progress, cancel)

    def _explain(self, capture, target, layers, params, progress, cancel):
        x = capture.input
        size = tuple(x.shape[2:])
        # Volumes (N, C, D, H, W) upsample their masks trilinearly.
        mode = "trilinear" if len(size) == 3 else "bilinear"
        batch_size = int(params.get("batch_size", 64))
        k = int(params.get("k", 32))
        fast = params.get("mode", "exact") == "fast"
        weighting = params.get("weighting", "score")
        base = 0.0
        if weighting == "score" and params.get("baseline", False):
            base = float(capture.target_scores(torch.zeros_like(x), target)[0])
        plans = {}
        for layer in layers:
            acts = capture.activations[layer][0].float()
            # Bilinear upsampling keeps each channel's extremes, so flatness shows at layer size.
            span = acts.flatten(1).amax(1) - acts.flatten(1).amin(1)
            useful = torch.nonzero(span > _FLAT).flatten()
            normalised = _minmax(acts[useful])
            if fast and len(useful) > k:
                labels, centres = _kmeans(normalised.flatten(1), k)
                plans[layer] = (useful, labels, centres.view(k, *acts.shape[1:]))
            else:
                labels, sources = _distinct(normalised)
                plans[layer] = (useful, labels, sources)
        total = sum(-(-len(p[2]) // batch_size) for p in plans.values()) or 1
        done = 0
        maps = {}
        for layer, (useful, labels, sources) in plans.items():
            acts = capture.activations[layer][0].float()
            scores = torch.zeros(len(sources), device=acts.device)
            for start in range(0, len(sources), batch_size):
                cancel.check()
                chunk = sources[start : start + batch_size]
                up = F.interpolate(chunk[None], size=size, mode=mode, align_corners=False)
                masks = _minmax(up[0])
                masked = x * masks[:, None]
                if weighting == "softmax-logits":
                    found = logit_objective(capture, masked, target, batch_size)
                else:
                    found = capture.target_scores(masked, target, batch_size)
                scores[start : start + len(chunk)] = found.to(scores) - base
                done += 1
                progress(done / total, f"Score-CAM: {layer}")
            weights = torch.zeros(acts.shape[0], device=acts.device)
            per_channel = scores[labels]
            if weighting != "score" and len(per_channel):
                per_channel = torch.softmax(per_channel, dim=0)
            weights[useful] = per_channel
            maps[layer] = torch.relu(torch.tensordot(weights, acts, dims=1))[None]
        return maps


EXPLAINERS = (ScoreCAM,)
