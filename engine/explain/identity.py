"""The model's part of a case's identity: the hash of what was loaded, or of the weights.

A model loaded from files is named by their SHA-256 (recorded with every result). A model built
in memory (a notebook, a test) has no file, so it is named by its weights; the digest is kept
while no weight changes, so it costs one pass over the weights per state.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import torch

from engine.core.case import bytes_digest
from engine.explain.scorer import weights_fingerprint

_lock = threading.Lock()
_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_hash(model: Any) -> str:
    """The hash that names ``model`` in a case.

    Parameters
    ----------
    model : LoadedModel
        A loaded model (``sha256`` of its files), or any object with a ``module``.

    Returns
    -------
    str
        The files' SHA-256, or a digest of the module's parameters and buffers.
    """
    digest = str(getattr(model, "sha256", "") or "")
    if digest:
        return digest
    module = getattr(model, "module", model)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"cannot name a model of type {type(module).__name__}")
    try:
        key = weights_fingerprint(module)
    except RuntimeError:  # inference tensors carry no version counter: hash every time
        key = None
    with _lock:
        cached = _digests.get(module)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
    parts: list[bytes | str] = []
    for name, tensor in (*module.named_parameters(), *module.named_buffers()):
        values = tensor.detach().cpu().contiguous()
        parts += [name, str(values.dtype), repr(tuple(values.shape)),
                  values.reshape(-1).view(torch.uint8).numpy().tobytes() if values.numel() else b""]
    digest = "weights:" + bytes_digest(type(module).__name__, *parts)
    with _lock:
        _digests[module] = (key, digest)
    return digest

