"""Ablation-CAM: channel weights from the drop of the class score when a channel is removed."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch

from engine.explain.api import Explainer, ExplainerUnavailable, Param
from plugins.scoring import logit_objective


@contextlib.contextmanager
def ablating(module: torch.nn.Module, channels: list[torch.Tensor],
             to_map: Callable[[torch.Tensor], torch.Tensor]):
    """Zero channel ``channels[0][i]`` of input ``i``'s output of ``module`` in the next pass.

    ``channels`` is a one-item list the caller refills before each pass. ``to_map`` turns the
    module's output into the (N, C, *grid) view the activation maps use (the model's
    ``to_activation_map`` for the layer), so a channel is zeroed where its map came from:
    the last dimension of a channels-last layer (Swin's stages) or of a token layer (a ViT's;
    a class token keeps its values, as the map leaves it out). The forward hook is removed on
    exit, whatever happens.
    """

    def hook(_m, _inputs, output):
        if not isinstance(output, torch.Tensor):
            raise ExplainerUnavailable(
                "Ablation-CAM needs a layer whose output is one tensor",
                fix="pick a convolutional layer (see `python main.py layers`)",
            )
        ablated = output.clone()
        view = to_map(ablated)
        shared = view.untyped_storage().data_ptr() == ablated.untyped_storage().data_ptr()
        if view.dim() not in (4, 5) or not shared:
            raise ExplainerUnavailable(
                "Ablation-CAM needs a layer whose output is an (N, C, H, W) map, channels-last "
                "or token grid",
                fix="pick a convolutional layer (see `python main.py layers`)",
            )
        view[torch.arange(len(view)), channels[0].to(view.device)] = 0.0
        return ablated

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class AblationCAM(Explainer):
    """Ablation-CAM (Desai and Ramaswamy 2020, eq. 3-4).

    For each channel ``k`` of the layer, the network is run with that channel's activation set to
    zero; the weight is the relative drop of the target logit, ``w_k = (y_c - y_c^k) / |y_c|``,
    and the map is ``ReLU(sum_k w_k A_k)`` (for a contrastive or segmentation target, ``y`` is
    the quantity explained; see :func:`plugins.scoring.logit_objective`). The paper divides by
    ``y_c``; dividing by its magnitude is the same for a positive logit and keeps the map from
    inverting for a negative one. Ablated inputs run in batches of ``batch_size`` (one channel
    per input), with progress and cancel; channels that are zero everywhere are not run, since
    removing them changes nothing (weight 0).
    """

    name = "ablationcam"
    title = "Ablation-CAM"
    description = "Activations weighted by how much the class score drops without each channel."
    citation = (
        "Desai S, Ramaswamy HG. Ablation-CAM: Visual Explanations for Deep Convolutional "
        "Network via Gradient-free Localization. WACV 2020, pp. 983-991. "
        "doi:10.1109/WACV45572.2020.9093360"
    )
    needs = frozenset({"activations", "forward_fn"})
    units = "relative logit drop x activation"
    params = (
        Param("batch_size", "int", 32, range=(1, 1024), help="ablated passes per batch"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return one (1, h, w) map per layer ((1, d, h, w) for volumes)."""
        batch_size = int(params["batch_size"])
        x = capture.input
        original = float(logit_objective(capture, x, target, 1)[0])
        norm = abs(original) if original != 0 else 1.0
        plans = {}
        for layer in layers:
            acts = capture.activations[layer][0].float()
            live = torch.nonzero(acts.flatten(1).abs().amax(1) > 0).flatten()
            plans[layer] = (acts, live)
        total = sum(-(-len(live) // batch_size) for _, live in plans.values()) or 1
        done = 0
        maps = {}
        for layer, (acts, live) in plans.items():
            weights = torch.zeros(acts.shape[0], device=acts.device)
            channels: list[torch.Tensor] = [live[:0]]
            to_map = functools.partial(capture.model.to_activation_map, layer)
            with ablating(capture.model.submodule(layer), channels, to_map):
                for start in range(0, len(live), batch_size):
                    cancel.check()
                    chunk = live[start : start + batch_size]
                    channels[0] = chunk
                    batch = x.expand(len(chunk), *x.shape[1:])
                    ablated = logit_objective(capture, batch, target, len(chunk))
                    weights[chunk.to(weights.device)] = (original - ablated.to(weights)) / norm
                    done += 1
                    progress(done / total, f"{self.title}: {layer}")
            shape = (-1,) + (1,) * (acts.dim() - 1)
            maps[layer] = torch.relu((weights.view(shape) * acts).sum(0))[None]
        return maps


EXPLAINERS = (AblationCAM,)
