"""Occlusion sensitivity: how much the target score drops when a patch is hidden."""

from __future__ import annotations

import itertools

import torch

from engine.explain.api import INPUT_LAYER, Explainer, Param

#: The largest patch side used when the user sets none (the fixed default of old).
LARGEST_AUTO_PATCH = 16


def auto_sizes(grid: tuple[int, ...], patch: int, stride: int) -> tuple[int, int]:
    """The patch side and stride on the model input ``grid``; 0 means "not set by the user".

    An unset patch is a quarter of the input's shortest axis, at most
    :data:`LARGEST_AUTO_PATCH`: a 2-D input of 64 pixels or more keeps the 16-pixel patch it
    always had, and the 3-D demo's 32 x 64 x 64 grid gets cubes of 8. A fixed cube of 16 there
    hides half of the depth at each of only three depths; on the demo CT its largest drop then
    falls at the inferior edge, away from the nodule, where cubes of 8 put it in the nodule. An
    unset stride is half the patch (8 for 16, as before), so neighbouring patches overlap by
    half on every axis.

    Parameters
    ----------
    grid : tuple of int
        The model input's spatial sizes: (H, W) or (D, H, W).
    patch, stride : int
        The user's values, or 0.

    Returns
    -------
    patch, stride : int
        Each at least 1.
    """
    if patch <= 0:
        patch = max(1, min(LARGEST_AUTO_PATCH, min(grid) // 4))
    if stride <= 0:
        stride = max(1, patch // 2)
    return patch, stride


def _starts(length: int, patch: int, stride: int) -> list[int]:
    last = max(length - patch, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:  # cover the border too
        starts.append(last)
    return starts


class Occlusion(Explainer):
    """Occlusion (Zeiler and Fergus, section 4.2).

    A square patch of the model input is replaced by 0 (the normalised data mean) at every
    position of a sliding grid (sized by :func:`auto_sizes` unless the user sets it); each
    pixel's value is the mean drop of the target's post-softmax score
    ``p_c(X) - p_c(X_occluded)`` over the patches that cover it. Occluded inputs are scored
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
        Param("patch", "int", 0, range=(0, 1024),
              help="side of the hidden square, input pixels (0: a quarter of the input's "
                   "shortest side, at most 16)"),
        Param("stride", "int", 0, range=(0, 1024),
              help="step between patch positions (0: half the patch)"),
        Param("batch_size", "int", 32, range=(1, 1024), help="occluded inputs per forward pass"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": map}`` in model-input geometry: (1, H, W), or (1, D, H, W).

        A volume is hidden cube by cube, with the same side and stride along every axis
        (sized to the input grid unless the user sets them: :func:`auto_sizes`).
        """
        x = capture.input
        grid = tuple(x.shape[2:])
        patch, stride = auto_sizes(grid, int(params.get("patch", 0)),
                                   int(params.get("stride", 0)))
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
