"""A deliberately broken "explainer" for tests: a Sobel edge map of the input, blind to the model.

Adebayo et al. 2018 showed that some saliency methods produce maps much like an edge detector's,
which do not change when the model is randomised. This control is that failure in its purest form;
the sanity check must flag it. It is used by the tests only and is not shipped in ``plugins/``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.explain.api import INPUT_LAYER, Explainer


class EdgeControl(Explainer):
    """Gradient magnitude of the (channel-mean) input image, ignoring the model entirely."""

    name = "edgecontrol"
    title = "Edge detector (control)"
    description = "Sobel edge magnitude of the input; ignores the model (sanity-check control)."
    citation = (
        "Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. Sanity Checks for Saliency "
        "Maps. NeurIPS 2018. arXiv:1810.03292"
    )
    needs = frozenset()

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": |Sobel(input)|}``, (1, H, W), whatever the model and target."""
        x = capture.input.detach().float().mean(dim=1, keepdim=True).cpu()
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        gx = F.conv2d(padded, kx)
        gy = F.conv2d(padded, kx.transpose(2, 3))
        progress(1.0, self.title)
        return {INPUT_LAYER: torch.hypot(gx, gy)[:, 0]}
