"""CAM: class activation mapping with the final linear layer's weights."""

from __future__ import annotations

import torch

from engine.explain.api import Explainer, ExplainerUnavailable

#: Relative tolerance when checking that a layer's pooled features give the model's logits.
_IDENTITY_RTOL = 1e-3


def _refusal(model) -> str:
    name = getattr(model, "name", "this model")
    return (
        f"CAM needs global average pooling followed by one linear layer at the end of the "
        f"network, and {name} does not end that way; use Grad-CAM instead"
    )


class CAM(Explainer):
    """CAM: ``map = ReLU(sum_k w_ck A_k)`` with ``w_c`` the final linear layer's row for class c.

    Defined only when the logits are ``y_c = sum_k w_ck GAP(A_k) + b_c`` (Zhou et al., eq. 1-2),
    i.e. the layer is globally average pooled and fed to one linear layer. That identity is
    verified against the captured logits for every requested layer; layers where it fails get no
    map, and a model where it fails for every layer is refused with one line.
    """

    name = "cam"
    title = "CAM"
    description = "Final linear weights applied to the globally pooled layer (GAP->linear nets)."
    citation = (
        "Zhou B, Khosla A, Lapedriza A, Oliva A, Torralba A. Learning Deep Features for "
        "Discriminative Localization. CVPR 2016. arXiv:1512.04150"
    )
    needs = frozenset({"activations", "fc_weights"})
    units = "logit contribution"

    def unavailable_reason(self, model):
        """Refuse TorchScript models and models that do not end in a linear layer."""
        reason = super().unavailable_reason(model)
        if reason:
            return reason
        weights, _ = model.final_linear()
        return _refusal(model) if weights is None else None

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return a (1, h, w) map for every requested layer fed by GAP to the final layer."""
        weights, bias = capture.fc_weights, capture.fc_bias
        if weights is None:
            raise ExplainerUnavailable(_refusal(capture.model))
        maps = {}
        for i, layer in enumerate(layers):
            cancel.check()
            acts = capture.activations[layer][0].float()
            if acts.shape[0] != weights.shape[1]:
                continue
            logits = weights.float() @ acts.flatten(1).mean(1)
            if bias is not None:
                logits = logits + bias.float()
            expected = capture.logits[0].float()
            tol = _IDENTITY_RTOL * max(1.0, float(expected.abs().max()))
            if float((logits - expected).abs().max()) > tol:
                continue
            maps[layer] = torch.relu(torch.tensordot(weights[target].float(), acts, dims=1))[None]
            progress((i + 1) / len(layers), f"CAM: {layer}")
        if not maps:
            if getattr(capture.model, "default_layer", None) in layers:
                # Not even the layer before global pooling feeds the last linear layer (an MLP
                # head, a norm or a class token in between): no layer choice can help.
                raise ExplainerUnavailable(_refusal(capture.model))
            raise ExplainerUnavailable(
                f"CAM: none of the layers {', '.join(layers)} is globally average pooled into "
                "the final linear layer",
                fix="pick the last convolutional layer (layer auto) or use Grad-CAM",
            )
        return maps


EXPLAINERS = (CAM,)
