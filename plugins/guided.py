"""Guided Backprop and Guided Grad-CAM: input gradients with rectified ReLU gradients.

Guided Backprop (Springenberg et al. 2015, section 3.4) changes the backward pass of every ReLU:
where the plain gradient is ``g * [x > 0]``, the guided one is ``max(g, 0) * [x > 0]``, so only
positive gradient flows down. The user's model is not changed: for the duration of the gradient
passes a forward hook on each ``nn.ReLU`` module puts a gradient hook on that ReLU's output, which
clamps the incoming gradient at 0 before the ReLU's own backward masks it. Forward hooks are
removed when the passes end, whatever happens, and the gradient hooks die with the graph.

ReLUs applied as functions (``torch.relu``, ``F.relu``, ``x.relu()``) belong to no module and are
not reached; the pass counts them, and the explainer notes a one-line warning (see
:func:`plugins.gradients.note`) saying that their gradient passes unguided.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from engine.explain.api import Explainer
from plugins.gradient_cams import GradCAM
from plugins.gradients import batch_param, channel_sum, input_pixel_gradients, note, targets_of

#: The functional spellings of ReLU that module hooks cannot see.
_FUNCTIONAL_RELUS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu,
                     torch.Tensor.relu_}


class _CountFunctionalReLUs(TorchFunctionMode):
    """Counts ReLUs called as functions outside any ``nn.ReLU`` module's forward."""

    def __init__(self, inside: list[int]) -> None:
        super().__init__()
        self.inside = inside
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _FUNCTIONAL_RELUS and not self.inside[0]:
            self.count += 1
        return func(*args, **(kwargs or {}))


class GuidedReLUs:
    """``hooks(module)`` factory for ``Capture.input_gradients`` that guides every ReLU module.

    Attributes
    ----------
    modules : int
        ``nn.ReLU`` modules hooked in the last pass.
    functional : int
        ReLUs called as functions during the first pass (their gradient is not guided).
    """

    def __init__(self) -> None:
        self.modules = 0
        self.functional: int | None = None

    @contextlib.contextmanager
    def __call__(self, module: nn.Module):
        """Install the hooks on ``module``'s ReLUs; remove them on exit."""
        inside = [0]

        def enter(_m, _inputs):
            inside[0] += 1

        def guide(_m, _inputs, output):
            inside[0] -= 1
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: grad.clamp(min=0))

        handles = []
        counter = _CountFunctionalReLUs(inside) if self.functional is None else None
        try:
            relus = [m for m in module.modules() if isinstance(m, nn.ReLU)]
            for m in relus:
                handles.append(m.register_forward_pre_hook(enter))
                handles.append(m.register_forward_hook(guide))
            self.modules = len(relus)
            with counter if counter is not None else contextlib.nullcontext():
                yield
        finally:
            for handle in handles:
                handle.remove()
        if counter is not None:
            self.functional = counter.count

    def warning(self, model_name: str) -> str | None:
        """One line on what guided backprop cannot see in this model, or None."""
        if self.functional:
            return (
                f"guidedbackprop: {model_name} applies {self.functional} ReLU(s) as functions, "
                f"which hooks cannot reach: their gradient passes unguided, so the map is guided "
                f"only at the model's {self.modules} nn.ReLU module(s)"
            )
        if not self.modules:
            return (f"guidedbackprop: {model_name} has no nn.ReLU module, so the map is the "
                    "plain input gradient")
        return None


def guided_gradients(capture, targets, params, progress, cancel) -> tuple[torch.Tensor, str | None]:
    """Guided gradients (N, C, *spatial) of the capture's inputs in pixel space, and a warning."""
    hooks = GuidedReLUs()
    grads = input_pixel_gradients(capture, targets, params, progress, cancel, "Guided Backprop",
                                  hooks)
    return grads, hooks.warning(str(getattr(capture.model, "name", "the model")))


def _refusal(model) -> str | None:
    reason = getattr(model, "layer_methods_reason", None)
    return f"guided backprop hooks the model's ReLU modules: {reason}" if reason else None


class GuidedBackprop(Explainer):
    """Guided Backprop (Springenberg et al. 2015): the input gradient through guided ReLUs.

    The map sums the guided gradient over channels (signed). Adebayo et al. 2018 found it nearly
    unchanged when the model's weights are randomised; the randomisation sanity check shows it.
    """

    name = "guidedbackprop"
    title = "Guided Backprop"
    description = "Input gradient with negative gradients stopped at every ReLU (edge-like maps)."
    citation = (
        "Springenberg JT, Dosovitskiy A, Brox T, Riedmiller M. Striving for Simplicity: The All "
        "Convolutional Net. ICLR Workshop 2015. arXiv:1412.6806"
    )
    needs = frozenset({"input_gradients"})
    batched = True
    signed = True
    units = "guided gradient per pixel value"
    params = (batch_param(),)

    def unavailable_reason(self, model):
        """Refuse models whose modules cannot be hooked (TorchScript)."""
        return _refusal(model)

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (N, *spatial)}``; notes the functional-ReLU warning if any."""
        grads, warning = guided_gradients(capture, targets_of(target, len(capture)), params,
                                          progress, cancel)
        if warning:
            note(capture, self.name, [{"warning": warning} for _ in range(len(capture))])
        return {"input": channel_sum(grads)}


class GuidedGradCAM(Explainer):
    """Guided Grad-CAM (Selvaraju et al. 2017, section 3.1).

    The Grad-CAM map of each layer, upsampled bilinearly to the input, multiplies the guided
    gradient pointwise; the product is summed over channels. One map per layer, in model-input
    resolution; the guided gradients are computed once for all layers.
    """

    name = "guidedgradcam"
    title = "Guided Grad-CAM"
    description = "Guided Backprop masked by the layer's upsampled Grad-CAM map."
    citation = (
        "Selvaraju RR, Cogswell M, Das A, Vedantam R, Parikh D, Batra D. Grad-CAM: Visual "
        "Explanations from Deep Networks via Gradient-based Localization. ICCV 2017. "
        "arXiv:1610.02391"
    )
    needs = frozenset({"activations", "gradients", "input_gradients"})
    batched = True
    signed = True
    units = "guided gradient x Grad-CAM"
    params = (batch_param(),)

    def unavailable_reason(self, model):
        """Refuse models whose modules cannot be hooked (TorchScript)."""
        return super().unavailable_reason(model) or _refusal(model)

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return one (N, *spatial) map per layer, in model-input resolution."""
        targets = targets_of(target, len(capture))
        grads, warning = guided_gradients(capture, targets, params,
                                          lambda f, m="": progress(0.9 * f, m), cancel)
        if warning:
            note(capture, self.name, [{"warning": warning} for _ in range(len(capture))])
        size = tuple(capture.input.shape[2:])
        mode = "bilinear" if len(size) == 2 else "trilinear"
        cam = GradCAM()
        maps = {}
        for layer in layers:
            cancel.check()
            acts = capture.activations[layer].float()
            heat = torch.relu(cam.reduce(acts, capture.gradients[layer].float()))
            up = F.interpolate(heat[:, None], size=size, mode=mode, align_corners=False)
            maps[layer] = channel_sum(grads * up.to(grads))
        progress(1.0, self.title)
        return maps


EXPLAINERS = (GuidedBackprop, GuidedGradCAM)
