"""Turning whatever a model's forward returns into one (N, K) logits tensor.

Supported outputs: a plain tensor; a tuple or list (its first element, as torchvision's
auxiliary-head models return the main logits first); a dict (the card's ``output_key``, else
``logits``); and an object with a ``.logits`` attribute (as Hugging Face models return).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engine.core.errors import ModelError


def adapt_output(out, key: str | None = None, task: str = "classification") -> torch.Tensor:
    """Return the logits tensor inside a model output.

    Parameters
    ----------
    out : object
        What the model's forward returned.
    key : str, optional
        The dict key (or attribute) holding the logits, from the card's ``output_key``.
    task : {"classification", "segmentation"}
        A segmentation model returns (N, K, H, W) pixel logits, plain or in a dict such as
        torchvision's ``{"out": ..., "aux": ...}`` (key ``out`` by default).

    Returns
    -------
    torch.Tensor
        Logits of shape (N, K) (a (N,) output becomes (N, 1)), or (N, K, H, W) for
        segmentation.

    Raises
    ------
    ModelError
        When no logits tensor can be found; the message says what the model returned.
    """
    if task == "segmentation":
        found = _find(out, key or ("out" if isinstance(out, Mapping) else None))
        if found.ndim != 4:
            raise ModelError(
                f"the segmentation model returned shape {tuple(found.shape)}, expected "
                "(batch, classes, height, width)",
                fix='set task = "classification" in the card, or return per-pixel logits',
            )
        return found
    found = _find(out, key)
    if found.ndim == 1:
        found = found[:, None]
    if found.ndim != 2:
        raise ModelError(
            f"the model returned logits of shape {tuple(found.shape)}, expected (batch, classes)",
            fix="make the model end in a classification head, or wrap it to return (N, K) logits",
        )
    return found


def _find(out, key: str | None) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        name = key or "logits"
        if name in out and isinstance(out[name], torch.Tensor):
            return out[name]
        raise ModelError(
            f"the model returned a dict without a tensor under {name!r} "
            f"(keys: {', '.join(map(str, out)) or 'none'})",
            fix="set output_key in the model card to the key that holds the logits",
        )
    attr = key or "logits"
    if hasattr(out, attr) and isinstance(getattr(out, attr), torch.Tensor):
        return getattr(out, attr)
    if isinstance(out, (tuple, list)) and out:
        return _find(out[0], key)
    raise ModelError(
        f"the model returned {type(out).__name__}, which holds no logits tensor",
        fix="return a tensor, a tuple, a dict with 'logits', or an object with .logits",
    )
