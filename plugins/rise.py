"""RISE: saliency as the score-weighted average of random masks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.explain.api import INPUT_LAYER, Explainer, Param


class RISE(Explainer):
    """RISE (Petsiuk et al., section 3).

    ``N`` binary grids of ``s x s`` cells, each cell kept with probability ``p``, are upsampled
    bilinearly to ``(s + 1)`` cells of size ``ceil(H / s)`` and cropped at a random shift, giving
    smooth masks ``M_i``. The saliency is ``S = 1 / (N p) * sum_i p_c(I . M_i) M_i`` with ``p_c``
    the target's post-softmax score. As in the paper the mask multiplies the image's *pixels*, so
    a hidden pixel is black (pixel value 0), not the normalisation mean: a mean-grey patch in a
    dark lung looks like a nodule and raises the score it should lower.

    With ``baseline`` the mean score of the masked inputs is subtracted from every score first.
    Since ``sum_i M_i / (N p)`` is 1 in expectation this changes the map only by a constant in
    expectation, but it removes the mask-count noise that swamps the map when the score barely
    moves (a confident model on a small lesion). Masked inputs are scored in batches; it needs
    only the model's outputs, so it works on any model, TorchScript included. The seed makes maps
    reproducible.
    """

    name = "rise"
    title = "RISE"
    description = "Randomised input sampling: score-weighted average of random smooth masks."
    citation = (
        "Petsiuk V, Das A, Saenko K. RISE: Randomized Input Sampling for Explanation of "
        "Black-box Models. BMVC 2018. arXiv:1806.07421"
    )
    needs = frozenset({"forward_fn"})
    units = "mask-weighted probability"
    # p = 0.9 rather than the paper's 0.5 (chosen for ImageNet objects): hiding half of a
    # radiograph makes every mask out of distribution and saturates the score; keeping most of
    # it lets the small lesion's cells decide. Grid 8 gives cells of 8 px at 64 px input and
    # 28 px at 224 px (the paper: 32 px).
    params = (
        Param("n_masks", "int", 1000, range=(8, 100000), help="number of random masks"),
        Param("grid", "int", 8, range=(2, 64), help="cells per side of the random grid"),
        Param("p", "float", 0.9, range=(0.05, 0.95), help="probability a cell is kept"),
        Param("baseline", "bool", True,
              help="subtract the masks' mean score (less noise; the paper's form without)"),
        Param("seed", "int", 0, range=(0, 2**31 - 1), help="random seed of the masks"),
        Param("batch_size", "int", 32, range=(1, 1024), help="masked inputs per forward pass"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (1, H, W) map}`` in model-input geometry."""
        x = capture.input
        _, channels, height, width = x.shape
        n = int(params.get("n_masks", 1000))
        grid = int(params.get("grid", 8))
        keep = float(params.get("p", 0.9))
        batch_size = int(params.get("batch_size", 32))
        gen = torch.Generator().manual_seed(int(params.get("seed", 0)))
        black = capture.from_pixels(0.0)
        cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
        up_size = ((grid + 1) * cell_h, (grid + 1) * cell_w)
        weighted = torch.zeros(height, width, device=x.device)
        coverage = torch.zeros(height, width, device=x.device)
        total = 0.0
        # With the baseline subtracted, scores are summed relative to the first one: a model
        # whose score no mask changes then gives an exact zero map, not rounding noise that
        # the display would stretch to full contrast.
        offset: float | None = None if params.get("baseline", True) else 0.0
        for start in range(0, n, batch_size):
            cancel.check()
            m = min(batch_size, n - start)
            cells = (torch.rand(m, 1, grid, grid, generator=gen) < keep).float()
            up = F.interpolate(cells, size=up_size, mode="bilinear", align_corners=False)
            dy = torch.randint(0, cell_h, (m,), generator=gen).tolist()
            dx = torch.randint(0, cell_w, (m,), generator=gen).tolist()
            shifts = enumerate(zip(dy, dx, strict=True))
            masks = torch.stack([up[i, 0, a : a + height, b : b + width] for i, (a, b) in shifts])
            masks = masks.to(x.device)[:, None]
            # I . M in pixel space, written in the model's normalised space.
            masked = torch.lerp(black, x, masks)
            scores = capture.target_scores(masked, target, batch_size).to(masks)
            if offset is None:
                offset = float(scores[0])
            scores = scores - offset
            weighted += torch.einsum("n,nhw->hw", scores, masks[:, 0])
            coverage += masks[:, 0].sum(0)
            total += float(scores.sum())
            progress((start + m) / n, "RISE")
        if params.get("baseline", True):
            weighted -= (total / n) * coverage
        return {INPUT_LAYER: (weighted / (n * keep))[None]}


EXPLAINERS = (RISE,)
