"""One forward pass (and one backward pass) that records every requested layer, for a batch.

A :class:`Capture` holds, for a batch of N inputs (one image is a batch of one), the activations
of every requested layer and the gradients of each image's target objective with respect to them,
from a single forward pass and a single ``torch.autograd.grad`` call. Every gradient-family map of
every layer is then a cheap reduction, so switching layer or method does not run the model again.
The capture also scores batches of perturbed inputs (``forward_scores``) and takes gradients with
respect to batches of inputs (``input_gradients``), for the perturbation and attribution methods.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from engine.core.cancel import CancelToken
from engine.core.errors import LucidaError, ModelError, UsageError
from engine.explain.scorer import fast_model, has_hooks, pass_size
from engine.explain.targets import (
    class_scores,
    objective,
    region_scores,
    resolve_targets,
    target_regions,
)
from engine.models.attention import AttentionLayout, find_attention, recording_attention

#: Images per batch when explainers score many perturbed inputs.
DEFAULT_BATCH = 32


class Capture:
    """Everything explainers need from a batch of inputs passed through one model.

    Attributes
    ----------
    model : LoadedModel
        The model that was run.
    input : torch.Tensor
        (N, C, *spatial) preprocessed inputs on the model's device.
    logits : torch.Tensor
        (N, K) output of the model's output adapter.
    scores : torch.Tensor
        (N, K) softmax or sigmoid of ``logits``, per the model card.
    targets : torch.Tensor
        (N,) class index per input that the gradients were taken for.
    activations : dict of str to torch.Tensor
        (N, C, *grid) per layer, detached: the value the rest of the network saw.
    gradients : dict of str to torch.Tensor
        (N, C, *grid) gradient of each input's target logit per layer; empty if none were asked.
    timings_ms : dict
        ``forward`` and ``backward`` wall time in milliseconds (per input for batches).
    needs : frozenset of str or None
        What the explainer holding this view declared; None allows everything (the core's own
        view). Reading an undeclared part raises :class:`engine.core.errors.UsageError`.
    versus : int or None
        For a contrastive target, the class whose logit is subtracted: the capture then
        explains ``logit[target] - logit[versus]`` (and perturbation methods track
        ``p[target] - p[versus]``).
    region : torch.Tensor or None
        For a segmentation model, the (N, h, w) region of the output grid whose target logits
        are summed (see :mod:`engine.explain.targets`); ``logits`` then holds the (N, K, h, w)
        pixel logits and ``scores`` each class's pixel share.
    attentions, attention_gradients, readout_gradients, token_grid
        A vision transformer's own attention, when it was captured (see the properties).
    """

    def __init__(
        self,
        model: Any,
        input: torch.Tensor,
        logits: torch.Tensor,
        scores: torch.Tensor,
        targets: torch.Tensor,
        activations: dict[str, torch.Tensor],
        gradients: dict[str, torch.Tensor],
        timings_ms: dict[str, float],
        needs: frozenset[str] | None = None,
        versus: int | None = None,
        region: torch.Tensor | None = None,
    ) -> None:
        self.model = model
        self.input = input
        self.logits = logits
        self.scores = scores
        self.targets = targets
        self.activations = activations
        self.gradients = gradients
        self.timings_ms = timings_ms
        self.needs = needs
        self.versus = versus
        self.region = region
        #: Inputs scored or differentiated on behalf of explainers (their perturbation work).
        self.scored_images = 0
        #: What explainers report besides maps: ``notes[method]`` is a list with one dict per
        #: input (a completeness gap, a warning). Each view starts empty; the core collects them.
        self.notes: dict[str, list[dict]] = {}
        # oneDNN's CPU convolutions run ~10% faster on NHWC (channels-last) batches; a model that
        # reshapes its input with .view() cannot take them, and then falls back for good.
        self._channels_last = input.dim() == 4 and input.device.type == "cpu"
        #: The attention parts, set by :func:`run_capture` when they are asked for.
        self._attention: dict[str, Any] = {}

    # -- views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.input.shape[0])

    @property
    def target(self) -> int:
        """The target class index of a capture of one input."""
        if len(self) != 1:
            raise UsageError(f"a batch of {len(self)} has one target per input; use targets")
        return int(self.targets[0])

    @property
    def layers(self) -> list[str]:
        """Names of the captured layers."""
        return list(self.activations)

    @property
    def has_gradients(self) -> bool:
        """Whether gradients were taken for every captured layer."""
        return set(self.gradients) >= set(self.activations)

    def covers(self, layers: Sequence[str], gradients: bool, attentions: bool = False,
               attention_gradients: bool = False, readout_gradients: bool = False) -> bool:
        """Whether this capture already holds ``layers`` (and their gradients if asked), and
        the attention (and its gradients) if asked."""
        if not set(layers) <= set(self.activations):
            return False
        if attentions and "probs" not in self._attention:
            return False
        if attention_gradients and "target" not in self._attention:
            return False
        if readout_gradients and "readout" not in self._attention:
            return False
        return not gradients or set(layers) <= set(self.gradients)

    # -- a vision transformer's attention (needs ``attentions`` and its gradients) -------------
    def _attention_part(self, part: str, need: str) -> Any:
        self._need(need)
        if part not in self._attention:
            raise UsageError(f"this capture holds no attention {part}",
                             fix="capture with attentions (the plan does when a method needs it)")
        return self._attention[part]

    @property
    def attentions(self) -> list[torch.Tensor]:
        """Per block, in execution order, the (N, heads, T, T) post-softmax attention
        probabilities the model multiplied into its values (rows are queries)."""
        return self._attention_part("probs", "attentions")

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """``(prefix, h, w)``: the T tokens are ``prefix`` class/register/distillation tokens,
        then an h x w grid of patches in row-major order."""
        return self._attention_part("grid", "attentions")

    @property
    def attention_gradients(self) -> list[torch.Tensor]:
        """Per block, the gradient of each input's target objective with respect to that
        block's attention probabilities, (N, heads, T, T)."""
        return self._attention_part("target", "attention_gradients")

    @property
    def readout_gradients(self) -> list[torch.Tensor]:
        """Per block l, the gradient with respect to block l's attention of the target score
        that the model's own final norm and classifier give to the mean of block l's output
        tokens (the layer-wise score LeGrad differentiates). Empty when the model's head cannot
        be read that way."""
        return self._attention_part("readout", "readout_gradients")

    def view(self, needs: frozenset[str] | None) -> Capture:
        """Return this capture as seen by an explainer that declared ``needs``."""
        twin = _copy(self)
        twin.needs = None if needs is None else frozenset(needs)
        twin._owner = self
        return twin

    def select(self, index: int) -> Capture:
        """Return the capture of input ``index`` as a batch of one (views, no copies)."""
        twin = _copy(self)
        sl = slice(index, index + 1)
        twin.input, twin.logits, twin.scores = self.input[sl], self.logits[sl], self.scores[sl]
        twin.targets = self.targets[sl]
        twin.region = None if self.region is None else self.region[sl]
        twin.activations = {n: a[sl] for n, a in self.activations.items()}
        twin.gradients = {n: g[sl] for n, g in self.gradients.items()}
        twin._attention = {k: v if k == "grid" else [t[sl] for t in v]
                           for k, v in self._attention.items()}
        twin._owner = self
        return twin

    def _need(self, what: str) -> None:
        if self.needs is not None and what not in self.needs:
            raise UsageError(
                f"the explainer reads capture {what} but does not declare it",
                fix=f"add {what!r} to the explainer's needs",
            )

    def _count(self, n: int) -> None:
        owner = self
        while getattr(owner, "_owner", None) is not None:
            owner = owner._owner
        owner.scored_images += n
        if owner is not self:
            self.scored_images += n

    # -- parts computed on request -------------------------------------------------------------
    @property
    def fc_weights(self) -> torch.Tensor | None:
        """(K, C) weights of the model's final linear layer, if its outputs are the logits."""
        self._need("fc_weights")
        return self.model.final_linear()[0]

    @property
    def fc_bias(self) -> torch.Tensor | None:
        """(K,) bias of the final linear layer (None without one)."""
        self._need("fc_weights")
        return self.model.final_linear()[1]

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised model input back to [0, 1] pixel values (undoes the card's mean/std)."""
        mean, std = self._mean_std(x)
        return x * std + mean

    def from_pixels(self, p: torch.Tensor | float) -> torch.Tensor:
        """Map pixel values (a tensor, or one value for every pixel) into normalised space."""
        like = self.input
        mean, std = self._mean_std(like)
        if not isinstance(p, torch.Tensor):
            p = torch.full((1, like.shape[1], *([1] * (like.dim() - 2))), float(p),
                           dtype=like.dtype, device=like.device)
        return (p - mean) / std

    def _mean_std(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = getattr(self.model, "input", None)
        shape = (1, -1, *([1] * (like.dim() - 2)))
        mean = torch.as_tensor(getattr(spec, "mean", (0.0,)), dtype=like.dtype,
                               device=like.device).view(shape)
        std = torch.as_tensor(getattr(spec, "std", (1.0,)), dtype=like.dtype,
                              device=like.device).view(shape)
        return mean, std

    def objective(self, logits: torch.Tensor, targets: torch.Tensor | int) -> torch.Tensor:
        """Return the (N,) quantity explained for each row of ``logits``.

        The target logit, or for a contrastive target the target logit minus the ``versus``
        class's (see :func:`objective`).
        """
        return objective(logits, targets, self.versus, self.region)

    def reference_scores(self) -> torch.Tensor:
        """(N,) what :meth:`target_scores` gives for the captured inputs themselves."""
        if self.region is not None:
            return torch.stack([self.select(i).target_scores(self.input[i : i + 1], t)[0]
                                for i, t in enumerate(self.targets.tolist())])
        out = self.scores.gather(1, self.targets.to(self.scores.device)[:, None])[:, 0]
        return out - self.scores[:, self.versus] if self.versus is not None else out

    def target_scores(self, batch: torch.Tensor, targets: torch.Tensor | int | None = None,
                      batch_size: int = DEFAULT_BATCH) -> torch.Tensor:
        """Score many inputs by what perturbation methods track, without gradients.

        Parameters
        ----------
        batch : torch.Tensor
            (M, C, *spatial) inputs in the model's preprocessed space.
        targets : int or torch.Tensor, optional
            Class per input (or one for all); defaults to this capture's target.
        batch_size : int
            Largest number of inputs sent to the model at once.

        Returns
        -------
        torch.Tensor
            (M,) post-softmax (or sigmoid) probability of the target, minus that of the
            ``versus`` class for a contrastive target.
        """
        idx = torch.as_tensor(self.targets if targets is None else targets).reshape(-1).long()
        scores = self.forward_scores(batch, batch_size)
        idx = idx.to(scores.device).expand(scores.shape[0]) if idx.numel() == 1 else \
            idx.to(scores.device)
        out = scores.gather(1, idx[:, None])[:, 0]
        if self.versus is not None:
            out = out - scores[:, self.versus]
        return out

    def forward_scores(self, batch: torch.Tensor, batch_size: int = DEFAULT_BATCH) -> torch.Tensor:
        """Score many inputs with the model, without gradients.

        Parameters
        ----------
        batch : torch.Tensor
            (M, C, *spatial) inputs in the model's preprocessed space.
        batch_size : int
            Largest number of inputs sent to the model at once.

        Returns
        -------
        torch.Tensor
            (M, K) post-softmax (or sigmoid) scores, on the model's device. For a segmentation
            model, each class's mean probability over the region of the (one) input being
            perturbed.
        """
        self._need("forward_fn")
        outs = []
        model, size = self._scoring(batch, batch_size)
        with torch.inference_mode():
            for start in range(0, batch.shape[0], size):
                chunk = batch[start : start + size].to(self.input.device)
                outs.append(region_scores(self.model.scores(self._logits(chunk, model)).float(),
                                          self.region))
        self._count(int(batch.shape[0]))
        return torch.cat(outs, 0)

    def input_gradients(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | int | None = None,
        batch_size: int = DEFAULT_BATCH,
        cancel: CancelToken | None = None,
        hooks: Callable[[torch.nn.Module], contextlib.AbstractContextManager] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiate each input's target objective with respect to the input itself.

        Parameters
        ----------
        inputs : torch.Tensor
            (M, C, *spatial) inputs in the model's preprocessed space (perturbed copies, path
            points of Integrated Gradients, noisy samples of SmoothGrad...).
        targets : int or torch.Tensor, optional
            Class per input (or one for all); defaults to this capture's target.
        batch_size : int
            Inputs per forward/backward pass.
        cancel : CancelToken, optional
            Checked between batches.
        hooks : callable, optional
            ``hooks(module)`` returns a context manager that installs backward hooks on the
            model's modules for the duration of the passes (Guided Backprop); whatever it
            installs must be removed when it exits.

        Returns
        -------
        gradients : torch.Tensor
            (M, C, *spatial), same dtype as ``inputs``, detached.
        objective : torch.Tensor
            (M,) value of the objective at each input.

        Notes
        -----
        Only ``torch.autograd.grad`` on the inputs is used; no parameter ``.grad`` is written.
        In evaluation mode the inputs of one pass do not interact, so the gradient of the sum of
        their objectives is each input's own gradient.
        """
        self._need("input_gradients")
        if targets is None:
            targets = self.targets if len(self) == 1 else self.targets
        idx = torch.as_tensor(targets).reshape(-1).long()
        if idx.numel() == 1:
            idx = idx.expand(inputs.shape[0])
        if idx.numel() != inputs.shape[0]:
            raise UsageError(f"{idx.numel()} targets for {inputs.shape[0]} inputs")
        grads, values = [], []
        module = getattr(self.model, "module", None)
        model, size = (self.model, batch_size) if hooks is not None else \
            self._scoring(inputs, batch_size)
        ctx = hooks(module) if hooks is not None else contextlib.nullcontext()
        with ctx, torch.enable_grad():
            for start in range(0, inputs.shape[0], size):
                if cancel is not None:
                    cancel.check()
                chunk = inputs[start : start + size].to(self.input.device).detach()
                chunk.requires_grad_(True)
                value = self.objective(model.logits(chunk), idx[start : start + len(chunk)])
                (grad,) = torch.autograd.grad(value.sum(), chunk)
                grads.append(grad.detach())
                values.append(value.detach())
        self._count(int(inputs.shape[0]))
        return torch.cat(grads, 0), torch.cat(values, 0)

    def _scoring(self, batch: torch.Tensor, batch_size: int) -> tuple[Any, int]:
        """The model to score ``batch`` with and the inputs per pass (see engine.explain.scorer).

        The folded private copy in cache-sized passes; with hooks installed on the model's
        modules (Ablation-CAM's ablation pairs one channel with each input of a pass), the model
        itself in the passes asked for.
        """
        module = getattr(self.model, "module", None)
        if isinstance(module, torch.nn.Module) and has_hooks(module):
            return self.model, batch_size
        return fast_model(self.model, self.input), pass_size(batch, batch_size)

    def _logits(self, chunk: torch.Tensor, model: Any) -> torch.Tensor:
        if self._channels_last:
            try:
                return model.logits(chunk.contiguous(memory_format=torch.channels_last))
            except RuntimeError:
                self._channels_last = False
        return model.logits(chunk)


def _copy(capture: Capture) -> Capture:
    twin = object.__new__(Capture)
    twin.__dict__.update(capture.__dict__)
    twin.scored_images = 0
    twin.notes = {}
    return twin


def first_tensor(output: Any) -> tuple[torch.Tensor, Any]:
    """Return the tensor a layer's output carries and a function putting a replacement back.

    A layer may return a tensor or a tuple/list holding one (the first tensor is the map); the
    hooks record that tensor and return the output rebuilt around its replacement.

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


def _as_maps(model: Any, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Return a layer's (N, C, *grid) maps; the model reshapes token layers it knows."""
    try:
        return model.to_activation_map(name, tensor)
    except LucidaError:
        # A module the model did not list as a candidate (one whose output repeats its
        # parent's, say) is still usable when it is already an (N, C, *grid) map.
        if tensor.ndim in (4, 5):
            return tensor
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
        (N, C, *spatial) preprocessed input on the model's device.
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
    Hooks are removed before returning, whatever happens. Each hook hands a *copy* of the
    layer's output to the rest of the network and records that copy, so what is recorded is the
    value that flows on; an in-place operation downstream (DenseNet's functional ReLU after
    ``features``, ``ReLU(inplace=True)``) modifies the recorded copy itself, and autograd's
    version counter keeps the gradient consistent with the modified value. The recordings are
    detached copies taken after the pass (see :func:`run_capture`).
    """
    recorded: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(module, inputs, output):
            tensor, rebuild = first_tensor(output)
            flowing = tensor.clone()
            recorded[name] = flowing
            return rebuild(flowing)

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
    target: Any = "top",
    layers: Sequence[str] = (),
    gradients: bool = True,
    versus: Any = None,
    roi: torch.Tensor | None = None,
    attentions: bool = False,
    attention_gradients: bool = False,
    readout_gradients: bool = False,
) -> Capture:
    """Run one forward pass hooking ``layers`` and, if asked, one backward pass for the targets.

    Parameters
    ----------
    model : LoadedModel
        The model.
    x : torch.Tensor
        (N, C, *spatial) preprocessed inputs on the model's device; one image is N = 1.
    target : str, int or sequence
        ``"top"``, a class index or name, or one entry per input (None meaning top); see
        :func:`resolve_targets`.
    layers : sequence of str
        Layers to record; may be empty for model-agnostic explainers.
    gradients : bool
        Whether to take the gradient of each input's target logit with respect to every layer.
    versus : str or int, optional
        A class (name or index) whose logit is subtracted from the target's (a contrastive
        target).
    roi : torch.Tensor, optional
        For a segmentation model, a 0/1 mask on its output grid to sum the target over,
        instead of the pixels the model assigns to the target
        (:func:`engine.explain.targets.roi_on_grid` makes one from an image box).
    attentions : bool
        Whether to record a vision transformer's own attention probabilities (its eager path
        is used for this pass; see :mod:`engine.models.attention`).
    attention_gradients : bool
        Whether to also take, in the same backward pass, the target's gradient with respect to
        every block's attention.
    readout_gradients : bool
        Whether to take each block's read-out score's gradient with respect to its own
        attention (LeGrad's; each reaches back through one block and the head only).

    Returns
    -------
    Capture

    Notes
    -----
    The backward pass differentiates the sum of each input's target logit: in evaluation mode
    inputs do not interact, so each input's gradient is the one a single-input pass gives. Only
    ``torch.autograd.grad`` on the recorded activations is used, so no parameter ``.grad`` is
    written.
    """
    layers = list(dict.fromkeys(layers))
    layout = find_attention(model.module) if attentions or attention_gradients or \
        readout_gradients else None
    attention_gradients = attention_gradients and layout is not None
    readout_gradients = readout_gradients and layout is not None
    backward = (gradients and bool(layers)) or attention_gradients
    want_grad = backward or readout_gradients
    x = x.detach()
    ctx = contextlib.nullcontext() if layout is None else recording_attention(model.module,
                                                                             layout)
    with ctx as record:
        logits, recorded, forward_ms = hooked_forward(model, x, layers, want_grad)
    n = x.shape[0]
    if logits.ndim not in (2, 4) or logits.shape[0] != n:
        raise ModelError(f"model output has shape {tuple(logits.shape)}, expected ({n}, K)")
    scores = class_scores(model, logits.detach())
    targets = resolve_targets(model, target, logits)
    region = target_regions(logits, targets, roi)
    versus = None if versus is None else int(model.resolve_target(versus))
    if versus is not None and bool((targets == versus).any()):
        raise UsageError(f"--versus {model.classes[versus]} is the target itself",
                         fix="name two different classes")
    missing = [name for name in layers if name not in recorded]
    if missing:
        raise ModelError(
            f"layer {missing[0]} did not run in the forward pass",
            fix="pick a layer that `python main.py layers` lists",
        )
    parts = {} if layout is None else _attention_parts(layout, record, x)
    raw_grads: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    if want_grad:
        if readout_gradients:
            parts["readout"] = _readout_gradients(layout, record, targets, versus)
    if backward:
        grad_layers = layers if gradients else []
        wrt = [recorded[n] for n in grad_layers] + (record.probs if attention_gradients else [])
        picked = objective(logits, targets.to(logits.device), versus, region).sum()
        found = torch.autograd.grad(picked, wrt, allow_unused=True)
        found = [torch.zeros_like(w) if g is None else g.detach()  # a part not feeding the logits
                 for w, g in zip(wrt, found, strict=True)]
        raw_grads = dict(zip(grad_layers, found, strict=False))
        if attention_gradients:
            parts["target"] = found[len(grad_layers):]
    backward_ms = (time.perf_counter() - start) * 1000.0
    grads = {name: _as_maps(model, name, g) for name, g in raw_grads.items()}
    activations = {name: _as_maps(model, name, recorded[name].detach()) for name in layers}
    cap = Capture(
        model=model,
        input=x,
        logits=logits.detach(),
        scores=scores,
        targets=targets,
        activations=activations,
        gradients=grads,
        timings_ms={"forward": forward_ms / n, "backward": backward_ms / n},
        versus=versus,
        region=region,
    )
    cap._attention = {k: v if k == "grid" else [t.detach() for t in v] for k, v in parts.items()}
    return cap


def _attention_parts(layout: AttentionLayout, record: Any, x: torch.Tensor) -> dict[str, Any]:
    """The recorded probabilities (graph kept for the gradients) and the token grid."""
    blocks = len(layout.attention)
    if len(record.probs) != blocks or len(record.tokens) != blocks:
        raise ModelError(f"the model ran {len(record.probs)} attention passes for its {blocks} "
                         "blocks", fix="use a CAM method on this model")
    h, w = layout.grid(int(record.probs[0].shape[-1]), tuple(x.shape[-2:]))
    return {"probs": list(record.probs), "grid": (layout.prefix_tokens, h, w)}


def _readout_gradients(layout: AttentionLayout, record: Any, targets: torch.Tensor,
                       versus: int | None) -> list[torch.Tensor]:
    """Each block's read-out score differentiated with respect to its own attention only.

    The graph from block l's attention to its read-out is block l's second half and the head,
    so the L gradients together cost about one backward pass through the network.
    """
    if layout.readout is None:
        return []
    out = []
    for probs, tokens in zip(record.probs, record.tokens, strict=True):
        score = objective(layout.readout(tokens.mean(1)), targets.to(tokens.device), versus)
        (grad,) = torch.autograd.grad(score.sum(), probs, retain_graph=True, allow_unused=True)
        out.append(torch.zeros_like(probs) if grad is None else grad.detach())
    return out


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
