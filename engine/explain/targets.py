"""What is explained: one class, a contrast of two, or a class's region of a segmentation.

A classifier's output is (N, K) logits; the explained quantity is one row's target logit, or
``logit[target] - logit[versus]`` for a contrastive target. A segmentation model's output is
(N, K, h, w) pixel logits; the explained quantity is the sum of the target class's logits over
a fixed region: by default the pixels the model assigns to that class, or a box the user drew
(the definition of pytorch-grad-cam's ``SemanticSegmentationTarget``). Perturbation methods
track the matching probability: the target's, minus the versus class's, or for segmentation
the target's mean probability over the region.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from engine.core.errors import UsageError


def class_scores(model: Any, logits: torch.Tensor) -> torch.Tensor:
    """(N, K) per-class scores: probabilities, or for segmentation each class's pixel share."""
    if logits.ndim == 4:
        k = logits.shape[1]
        labels = logits.argmax(1)
        counts = F.one_hot(labels, k).flatten(1, 2).sum(1).float()
        return counts / counts.sum(1, keepdim=True).clamp(min=1.0)
    return model.scores(logits)


def resolve_targets(model: Any, target: Any, logits: torch.Tensor) -> torch.Tensor:
    """Return the (N,) class index per input that ``target`` means.

    ``target`` is ``"top"``, a class index or name for every input, or a sequence with one
    entry per input where None means top. For a classifier top is the argmax of the
    **logits** (saturated probabilities can tie); for segmentation it is the foreground class
    (any but class 0) with the most pixels, or class 0 when no pixel is foreground.
    """
    n = logits.shape[0]
    detached = logits.detach().float()
    if detached.ndim == 4:
        shares = class_scores(model, detached)
        fg = shares[:, 1:]
        top = torch.where(fg.amax(1) > 0, fg.argmax(1) + 1, torch.zeros_like(fg.argmax(1)))
    else:
        top = detached.argmax(1)
    top = top.cpu().long()
    if isinstance(target, list | tuple):
        if len(target) != n:
            raise UsageError(f"{len(target)} targets for {n} inputs")
        return torch.tensor(
            [int(top[i]) if t is None or t == "top" else model.resolve_target(t)
             for i, t in enumerate(target)], dtype=torch.long)
    if target is None or (isinstance(target, str) and target.strip().lower() == "top"):
        return top
    return torch.full((n,), int(model.resolve_target(target)), dtype=torch.long)


def target_regions(logits: torch.Tensor, targets: torch.Tensor,
                   roi: Any = None) -> torch.Tensor | None:
    """(N, h, w) float region each segmentation target is summed over; None for classifiers.

    Parameters
    ----------
    logits : torch.Tensor
        (N, K, h, w) pixel logits of the unperturbed inputs.
    targets : torch.Tensor
        (N,) target classes.
    roi : torch.Tensor or callable, optional
        (h, w) or (N, h, w) user region on the logit grid, or ``roi(grid) -> mask`` that makes
        one for the grid's ``(h, w)``; replaces the predicted pixels.
    """
    if logits.ndim != 4:
        return None
    if callable(roi):
        roi = roi(tuple(logits.shape[2:]))
    if roi is not None:
        region = roi.to(logits.device).float()
        return region.expand(logits.shape[0], *logits.shape[2:]).clone()
    labels = logits.detach().argmax(1)
    return (labels == targets.to(labels.device)[:, None, None]).float()


def roi_on_grid(box: tuple[float, float, float, float], image_shape: tuple[int, int],
                spec: Any, grid: tuple[int, int]) -> torch.Tensor:
    """An image-pixel box ``(x0, y0, x1, y1)`` as a 0/1 mask on a model-output grid.

    The box is carried through the model input's placement (resize or letterbox) and scaled
    to the grid.
    """
    from engine.models.preprocess import placement

    place = placement(spec, image_shape)
    h, w = image_shape
    th, tw = spec.size
    x0, y0, x1, y1 = box
    # image -> model input (content placed at top/left, scaled to height/width)
    ix0 = place.left + x0 * place.width / w
    ix1 = place.left + x1 * place.width / w
    iy0 = place.top + y0 * place.height / h
    iy1 = place.top + y1 * place.height / h
    gh, gw = grid
    mask = torch.zeros(gh, gw)
    r0, r1 = int(iy0 * gh / th), max(int(iy0 * gh / th) + 1, round(iy1 * gh / th))
    c0, c1 = int(ix0 * gw / tw), max(int(ix0 * gw / tw) + 1, round(ix1 * gw / tw))
    mask[max(0, r0) : min(gh, r1), max(0, c0) : min(gw, c1)] = 1.0
    return mask


def objective(logits: torch.Tensor, targets: torch.Tensor | int, versus: int | None = None,
              region: torch.Tensor | None = None) -> torch.Tensor:
    """The (N,) quantity explained per row of the model's output.

    (N, K) logits: ``logit[target]`` (minus ``logit[versus]``). (N, K, h, w) pixel logits: the
    sum of the target's logits over ``region`` (minus the versus class's over the same region).
    """
    idx = torch.as_tensor(targets, device=logits.device).reshape(-1).long()
    if idx.numel() == 1 and logits.shape[0] != 1:
        idx = idx.expand(logits.shape[0])
    if logits.ndim == 4:
        if region is None:
            raise UsageError("a segmentation target needs its region")
        weight = region.to(logits)
        if weight.shape[0] != logits.shape[0]:
            weight = weight.expand(logits.shape[0], *weight.shape[1:])
        pick = logits.gather(1, idx[:, None, None, None].expand(-1, 1, *logits.shape[2:]))[:, 0]
        out = (pick * weight).sum((1, 2))
        if versus is not None:
            out = out - (logits[:, int(versus)] * weight).sum((1, 2))
        return out
    out = logits.gather(1, idx[:, None])[:, 0]
    if versus is not None:
        out = out - logits[:, int(versus)]
    return out


def region_scores(scores: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Per-class scores of perturbed inputs: probabilities, or region means for segmentation.

    ``scores`` is (M, K) probabilities, or (M, K, h, w) pixel probabilities that are averaged
    over the (1, h, w) or (h, w) region of the one input being perturbed.
    """
    if scores.ndim != 4:
        return scores
    if region is None:
        return scores.mean((2, 3))
    weight = region.to(scores)
    weight = weight[0] if weight.ndim == 3 else weight
    return (scores * weight).sum((2, 3)) / weight.sum().clamp(min=1.0)


def label_map(model: Any, logits: torch.Tensor, image_shape: tuple[int, int]) -> torch.Tensor:
    """The predicted (H, W) class of every image pixel, from one input's (1, K, h, w) logits.

    Each class's logits are brought back to image geometry as maps are (bilinear, letterbox
    cut away), then the argmax is taken, so boundaries are smooth rather than blocky.
    """
    from engine.models.preprocess import maps_to_image

    return maps_to_image(logits[0].detach().float().cpu(), model.input, image_shape).argmax(0)
