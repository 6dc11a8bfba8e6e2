"""The one batched scorer's speed-ups: folded BatchNorm on a private copy, and pass sizes.

Every perturbation method (Score-CAM, occlusion, RISE, LIME, KernelSHAP, Ablation-CAM) scores its
inputs through ``Capture.forward_scores``, and the path and noise methods (Integrated Gradients,
SmoothGrad) differentiate through ``Capture.input_gradients``. Two measured changes serve them
all, and both keep the scores equal to the plain model's (checked when the copy is built):

- In evaluation mode a BatchNorm after a convolution is an affine map of its output, so it can
  be folded into the convolution's weights. That saves a pass over every activation, forward
  and backward (about 1.5x on ResNet-18 on CPU, with channels-last batches). The fold runs on a
  *private copy* (``torch.fx``'s ``fuse``), never on the user's model, and the copy is rebuilt
  when any weight of the model changes (the sanity check randomises copies in place).
- Large batches are slower on CPU than middling ones: past a few million input values per pass
  the activations stop fitting the caches and every pass allocates fresh memory. Passes are cut
  to at most :data:`PASS_VALUES` input values (16 images of 224 x 224 RGB), whatever the
  caller's ``batch_size`` (which stays the largest number of inputs per pass).

A model with hooks on its modules (Ablation-CAM's channel ablation, Guided Backprop's ReLU hooks,
a user's own) runs as it is, in the batches it was asked for: the copy would not carry them.
"""

from __future__ import annotations

import copy
import math
import threading
import weakref
from typing import Any

import torch
from torch import nn

#: Most input values (batch x channels x pixels) sent to the model in one pass.
PASS_VALUES = 16 * 3 * 224 * 224
#: Largest relative difference between the folded copy's outputs and the model's.
TOLERANCE = 1e-5

_lock = threading.Lock()
_folded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_fingerprint(module: nn.Module) -> tuple:
    """What changes when any weight of ``module`` changes: each tensor's address and version."""
    # In-place changes bump a tensor's version counter; a replaced tensor changes its address.
    return tuple((t.data_ptr(), t._version)
                 for t in (*module.parameters(), *module.buffers()))


def has_hooks(module: nn.Module) -> bool:
    """Whether any forward or backward hook is installed on ``module`` or its children."""
    from torch.nn.modules import module as base

    if base._global_forward_hooks or base._global_forward_pre_hooks or \
            base._global_backward_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
               or getattr(m, "_backward_pre_hooks", None) for m in module.modules())


def _leaves(out: Any) -> list[torch.Tensor]:
    leaves, _ = torch.utils._pytree.tree_flatten(out)
    return [t.float() for t in leaves if isinstance(t, torch.Tensor)]


def _same(a: Any, b: Any) -> bool:
    left, right = _leaves(a), _leaves(b)
    if len(left) != len(right) or not left:
        return False
    for x, y in zip(left, right, strict=True):
        if x.shape != y.shape:
            return False
        peak = float(x.abs().max()) if x.numel() else 0.0
        if x.numel() and float((x - y).abs().max()) > TOLERANCE * max(peak, 1e-12):
            return False
    return True


def _fold(module: nn.Module, example: torch.Tensor) -> nn.Module:
    from torch.fx.experimental.optimization import fuse

    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        return module
    try:
        # The copy is cached and later differentiated (input gradients): built inside a
        # caller's inference_mode, its weights would be inference tensors autograd refuses.
        with torch.inference_mode(False):
            folded = fuse(module, inplace=False)  # deep-copies first: the model is untouched
        probe = torch.cat([example[:1], example[:1].flip(-1)]).detach()
        with torch.inference_mode():
            equal = _same(module(probe), folded(probe))
    except Exception:  # noqa: BLE001 - a model torch.fx cannot trace is scored as it is
        return module
    return folded if equal else module


def fast_module(module: Any, example: torch.Tensor) -> Any:
    """Return a private copy of ``module`` with its BatchNorms folded, or ``module`` itself.

    Parameters
    ----------
    module : nn.Module or Any
        The model's network. TorchScript, training-mode and hooked modules, and modules
        without BatchNorm, come back unchanged, as does one that ``torch.fx`` cannot trace or
        whose folded copy's outputs differ from its own by more than :data:`TOLERANCE`
        (relative to the output's peak) on ``example``.
    example : torch.Tensor
        A preprocessed input (the capture's), for the equality check.

    Returns
    -------
    nn.Module
        The copy (built once per state of the weights and cached while the model lives), or
        ``module``.
    """
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule):
        return module
    if any(m.training for m in module.modules()) or has_hooks(module):
        return module
    try:
        key = weights_fingerprint(module)
    except RuntimeError:  # inference tensors carry no version counter
        return module
    with _lock:
        cached = _folded.get(module)
        if cached is not None and cached[0] == key:
            return cached[1]
        folded = _fold(module, example)
        _folded[module] = (key, folded)
    return folded


def fast_model(model: Any, example: torch.Tensor) -> Any:
    """Return ``model`` or a shallow copy of it that runs :func:`fast_module`'s copy."""
    module = getattr(model, "module", None)
    fast = fast_module(module, example)
    if fast is module:
        return model
    twin = copy.copy(model)
    object.__setattr__(twin, "module", fast)
    return twin


def pass_size(batch: torch.Tensor, batch_size: int) -> int:
    """Inputs per pass: at most ``batch_size``, at most :data:`PASS_VALUES` values, equal passes.

    Parameters
    ----------
    batch : torch.Tensor
        (M, C, *spatial) inputs to score.
    batch_size : int
        The caller's largest number of inputs per pass.
    """
    per_input = max(1, math.prod(batch.shape[1:]))
    size = max(1, min(int(batch_size), PASS_VALUES // per_input))
    count = max(1, int(batch.shape[0]))
    return math.ceil(count / math.ceil(count / size))
