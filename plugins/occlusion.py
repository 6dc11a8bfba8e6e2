"""Occlusion sensitivity: how much the target score drops when a patch is hidden."""

from __future__ import annotations

import itertools

import torch

from engine.explain.api import INPUT_LAYER, Explainer, Param


def _starts(length: int, patch: int, stride: int) -> list[int]:
    last = max(length - patch, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:  # cover the border too
        starts.append(last)
    return starts


class Occlusion(Explainer):
    """Occlusion (Zeiler and Fergus, section 4.2).

    A square patch of the model input is replaced by 0 (the normalised data mean) at every
    position of a sliding grid; each pixel's value is the mean drop of the target's post-softmax
    score ``p_c(X) - p_c(X_occluded)`` over the patches that cover it. Occluded inputs are scored
    in batches; it needs only the model's outputs, so it works on any model, TorchScript included.
    """

    name = "occlusion"
    title = "Occlusion"
    description = "Drop of the target score when a sliding patch of the input is hidden."
    citation = (
        "Zeiler MD, Fergus R. Visualizing and Understanding Convolutional Networks. ECCV 2014. "
        "arXiv:1311.2901"
    )
    needs = frozenset({"forward_fn"})
    units = "probability drop"
    params = (
        Param("patch", "int", 16, range=(1, 1024), help="side of the hidden square, input pixels"),
        Param("stride", "int", 8, range=(1, 1024), help="step between patch positions"),
        Param("batch_size", "int", 32, range=(1, 1024), help="occluded inputs per forward pass"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": map}`` in model-input geometry: (1, H, W), or (1, D, H, W).

        A volume is hidden cube by cube, with the same side and stride along every axis.
        """
        x = capture.input
        grid = tuple(x.shape[2:])
        patch = int(params.get("patch", 16))
        stride = int(params.get("stride", 8))
        batch_size = int(params.get("batch_size", 32))
        sides = [min(patch, n) for n in grid]
        boxes = [tuple(slice(a, a + side) for a, side in zip(corner, sides, strict=True))
                 for corner in itertools.product(*(_starts(n, side, stride)
                                                   for n, side in zip(grid, sides,
                                                                      strict=True)))]
        reference = float(capture.reference_scores()[0])
        total = torch.zeros(grid, device=x.device)
        count = torch.zeros(grid, device=x.device)
        for start in range(0, len(boxes), batch_size):
            cancel.check()
            chunk = boxes[start : start + batch_size]
            batch = x.repeat(len(chunk), *[1] * (x.ndim - 1))
            for i, box in enumerate(chunk):
                batch[(i, slice(None), *box)] = 0.0
            drops = reference - capture.target_scores(batch, target, batch_size)
            for box, drop in zip(chunk, drops.tolist(), strict=True):
                total[box] += drop
                count[box] += 1.0
            progress(min(1.0, (start + len(chunk)) / len(boxes)), "Occlusion")
        return {INPUT_LAYER: (total / count.clamp(min=1.0))[None]}


EXPLAINERS = (Occlusion,)
