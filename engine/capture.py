"""One forward pass (and one backward pass) that records every requested layer.

A :class:`Capture` holds the activations of every requested layer and the gradients of the target
logit with respect to them, from a single forward pass and a single ``torch.autograd.grad`` call.
Every gradient-family map of every layer is then a cheap reduction, so switching layer or method
does not run the model again. Captures are cached by (image, model, target) in a
:class:`CaptureCache`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch import nn

from engine.errors import LucidaError, ModelError

#: Images per batch when explainers score many perturbed inputs.
DEFAULT_BATCH = 32


class Capture:
    """Everything explainers need from one image passed through one model.

    Attributes
    ----------
    model : LoadedModel
        The model that was run.
    input : torch.Tensor
        (1, C, H, W) preprocessed input on the model's device.
    logits : torch.Tensor
        (K,) output of the model's output adapter.
    scores : torch.Tensor
        (K,) softmax or sigmoid of ``logits``, per the model card.
    target : int
        The class index the gradients were taken for.
    activations : dict of str to torch.Tensor
        (C, h, w) per layer, detached.
    gradients : dict of str to torch.Tensor
        (C, h, w) gradient of ``logits[target]`` per layer; empty if none were asked for.
    fc_weights : torch.Tensor or None
        (K, C) weights of the model's final linear layer, if its outputs are the logits.
    fc_bias : torch.Tensor or None
        (K,) bias of that layer.
    timings_ms : dict
        ``forward`` and ``backward`` wall time in milliseconds.
    """

    def __init__(
        self,
        model: Any,
        input: torch.Tensor,
        logits: torch.Tensor,
        scores: torch.Tensor,
        target: int,
        activations: dict[str, torch.Tensor],
        gradients: dict[str, torch.Tensor],
        timings_ms: dict[str, float],
    ) -> None:
        self.model = model
        self.input = input
        self.logits = logits
        self.scores = scores
        self.target = target
        self.activations = activations
        self.gradients = gradients
        self.timings_ms = timings_ms
        self.fc_weights, self.fc_bias = final_linear(model, logits.numel())
        #: Images scored by :meth:`forward_scores` so far (perturbation work done on this capture).
        self.scored_images = 0
        # oneDNN's CPU convolutions run ~10% faster on NHWC (channels-last) batches; a model that
        # reshapes its input with .view() cannot take them, and then falls back for good.
        self._channels_last = input.dim() == 4 and input.device.type == "cpu"

    @property
    def layers(self) -> list[str]:
        """Names of the captured layers."""
        return list(self.activations)

    @property
    def has_gradients(self) -> bool:
        """Whether gradients were taken for every captured layer."""
        return set(self.gradients) >= set(self.activations)

    def covers(self, layers: Sequence[str], gradients: bool) -> bool:
        """Whether this capture already holds ``layers`` (and their gradients if asked)."""
        if not set(layers) <= set(self.activations):
            return False
        return not gradients or set(layers) <= set(self.gradients)

    def forward_scores(self, batch: torch.Tensor, batch_size: int = DEFAULT_BATCH) -> torch.Tensor:
        """Score many inputs with the model, without gradients.

        Parameters
        ----------
        batch : torch.Tensor
            (N, C, H, W) inputs in the model's preprocessed space.
        batch_size : int
            Largest number of inputs sent to the model at once.

        Returns
        -------
        torch.Tensor
            (N, K) post-softmax (or sigmoid) scores, on the model's device.
        """
        outs = []
        with torch.inference_mode():
            for start in range(0, batch.shape[0], batch_size):
                chunk = batch[start : start + batch_size].to(self.input.device)
                outs.append(self.model.scores(self._logits(chunk)).float())
        self.scored_images += int(batch.shape[0])
        return torch.cat(outs, 0)

    def _logits(self, chunk: torch.Tensor) -> torch.Tensor:
        if self._channels_last:
            try:
                return self.model.logits(chunk.contiguous(memory_format=torch.channels_last))
            except RuntimeError:
                self._channels_last = False
        return self.model.logits(chunk)


def final_linear(model: Any, n_outputs: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Return the weights and bias of the model's last linear layer if it produces the logits.

    Whether the layer really reads globally average-pooled features is checked per layer by the
    CAM explainer, against the captured logits.
    """
    module = getattr(model, "module", None)
    if module is None or getattr(model, "kind", "module") == "torchscript":
        return None, None
    last = None
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            last = sub
    if last is None or last.out_features != n_outputs:
        return None, None
    bias = None if last.bias is None else last.bias.detach()
    return last.weight.detach(), bias


def first_tensor(output: Any) -> tuple[torch.Tensor, Any]:
    """Return the tensor a layer's output carries and a function putting a replacement back.

    A layer may return a tensor or a tuple/list holding one (the first tensor is the map); the
    hooks record that tensor and return the output rebuilt around its clone.

    Raises
    ------
    ModelError
        The output holds no tensor.
    """
    if isinstance(output, torch.Tensor):
        return output, lambda t: t
    if isinstance(output, tuple | list):
        for i, item in enumerate(output):
            if isinstance(item, torch.Tensor):
                def rebuild(t, i=i, output=output):
                    items = list(output)
                    items[i] = t
                    return type(output)(items) if isinstance(output, tuple) else items
                return item, rebuild
    raise ModelError(f"layer output of type {type(output).__name__} holds no tensor")


def _as_map(model: Any, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Return a layer's (C, h, w) map; the model reshapes token layers it knows."""
    try:
        return model.to_activation_map(name, tensor)[0]
    except LucidaError:
        # A module the model did not list as a candidate (one whose output repeats its
        # parent's, say) is still usable when it is already an (N, C, h, w) map.
        if tensor.ndim == 4:
            return tensor[0]
        raise


def hooked_forward(
    model: Any, x: torch.Tensor, layers: Sequence[str], want_grad: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """Run one forward pass that records the output of every named layer.

    Parameters
    ----------
    model : LoadedModel
        The model; ``model.submodule(name)`` finds each layer.
    x : torch.Tensor
        (N, C, H, W) preprocessed input on the model's device.
    layers : sequence of str
        Layers to record.
    want_grad : bool
        Whether to build the autograd graph, so gradients can be taken on the recordings.

    Returns
    -------
    logits : torch.Tensor
        (N, K) output of the model's output adapter.
    recorded : dict of str to torch.Tensor
        Each layer's output tensor, as the rest of the network saw it.
    forward_ms : float
        Wall time of the pass.

    Notes
    -----
    Hooks are removed before returning, whatever happens, so later passes (a model's lazy layer
    discovery, say) cannot overwrite a recording. Each hook hands a copy of the layer's output to
    the rest of the network, so an in-place operation downstream (``ReLU(inplace=True)``) cannot
    overwrite the recorded activation or break its gradient.
    """
    recorded: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(module, inputs, output):
            tensor, rebuild = first_tensor(output)
            recorded[name] = tensor
            return rebuild(tensor.clone())

        return hook

    handles = []
    try:
        for name in layers:
            handles.append(model.submodule(name).register_forward_hook(make_hook(name)))
        start = time.perf_counter()
        if want_grad:
            # The input requires grad so that frozen models (requires_grad=False) still build a
            # graph up to the hooked layers; autograd.grad computes only what it is asked.
            with torch.enable_grad():
                logits = model.logits(x.detach().requires_grad_(True))
        else:
            with torch.no_grad():
                logits = model.logits(x)
        forward_ms = (time.perf_counter() - start) * 1000.0
    finally:
        for handle in handles:
            handle.remove()
    return logits, recorded, forward_ms


def run_capture(
    model: Any,
    x: torch.Tensor,
    target: str | int = "top",
    layers: Sequence[str] = (),
    gradients: bool = True,
) -> Capture:
    """Run one forward pass hooking ``layers`` and, if asked, one backward pass for the target.

    Parameters
    ----------
    model : LoadedModel
        The model.
    x : torch.Tensor
        (1, C, H, W) preprocessed input on the model's device.
    target : str or int
        ``"top"``, a class index, or a class name; resolved by ``model.resolve_target``.
    layers : sequence of str
        Layers to record; may be empty for model-agnostic explainers.
    gradients : bool
        Whether to take the gradient of the target logit with respect to every layer.

    Returns
    -------
    Capture

    Notes
    -----
    Only ``torch.autograd.grad`` on the recorded activations is used, so no parameter ``.grad``
    is written. The recording follows :func:`hooked_forward`.
    """
    layers = list(dict.fromkeys(layers))
    want_grad = gradients and bool(layers)
    x = x.detach()
    logits, recorded, forward_ms = hooked_forward(model, x, layers, want_grad)
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise ModelError(f"model output has shape {tuple(logits.shape)}, expected (1, K)")
    scores = model.scores(logits.detach())[0]
    index = int(model.resolve_target(target, scores))
    missing = [n for n in layers if n not in recorded]
    if missing:
        raise ModelError(
            f"layer {missing[0]} did not run in the forward pass",
            fix="pick a layer that `python main.py layers` lists",
        )
    raw_grads: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    if want_grad:
        found = torch.autograd.grad(
            logits[0, index], [recorded[n] for n in layers], allow_unused=True
        )
        for name, grad in zip(layers, found, strict=True):
            if grad is None:  # the layer does not feed the logits
                grad = torch.zeros_like(recorded[name])
            raw_grads[name] = grad.detach()
    backward_ms = (time.perf_counter() - start) * 1000.0
    grads = {n: _as_map(model, n, g) for n, g in raw_grads.items()}
    activations = {n: _as_map(model, n, recorded[n].detach()) for n in layers}
    return Capture(
        model=model,
        input=x.detach().requires_grad_(False),
        logits=logits.detach()[0],
        scores=scores,
        target=index,
        activations=activations,
        gradients=grads,
        timings_ms={"forward": forward_ms, "backward": backward_ms},
    )


class CaptureCache:
    """A least-recently-used store of captures keyed by (image, model, target).

    Parameters
    ----------
    size : int
        Most captures kept; the least recently used one is dropped first.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = max(0, int(size))
        self._items: OrderedDict[Hashable, Capture] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Capture | None:
        """Return the capture stored under ``key`` (marking it recently used), or None."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, capture: Capture) -> None:
        """Store a capture, dropping the least recently used ones beyond the size limit."""
        self._items[key] = capture
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every capture."""
        self._items.clear()
