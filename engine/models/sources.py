"""What a library architecture brings with it when the card is silent.

A ``timm:`` network knows its preprocessing (its pretrained config); an ``xrv:`` DenseNet knows
its pathology names, its preprocessing and that it is multi-label. A card field, when stated,
always wins over these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.core.errors import ModelError
from engine.models.preprocess import InputSpec


@dataclass(frozen=True)
class SourceDefaults:
    """Defaults an architecture brings; None where it brings none."""

    input: InputSpec | None = None
    classes: list[str] | None = None
    output: str | None = None


def source_defaults(arch: str | None, module: nn.Module, args: dict) -> SourceDefaults:
    """Return the defaults of architecture ``arch`` built as ``module`` with ``args``.

    Parameters
    ----------
    arch : str or None
        The architecture string (``timm:convnext_tiny``, ``xrv:densenet121-res224-all``, ...).
    module : torch.nn.Module
        The built network.
    args : dict
        The builder's keyword arguments (the card's ``[architecture_args]``).

    Returns
    -------
    SourceDefaults
    """
    kind, _, name = (arch or "").partition(":")
    if kind == "timm":
        from engine.models.timm_source import timm_input_spec

        return SourceDefaults(input=timm_input_spec(module, args))
    if kind == "xrv":
        from engine.models.xrv_source import xrv_classes, xrv_input_spec

        return SourceDefaults(input=xrv_input_spec(), classes=xrv_classes(name), output="sigmoid")
    return SourceDefaults()


def source_state(arch: str | None, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights as the built ``arch`` network takes them (see :func:`xrv_state`)."""
    if (arch or "").startswith("xrv:"):
        from engine.models.xrv_source import xrv_state

        return xrv_state(state)
    return state


#: A class count no layer of a torchvision network has by itself: the layer that takes it is the
#: head.
_PROBE_CLASSES = 7919


def torchvision_head(name: str) -> str | None:
    """The name of torchvision model ``name``'s classifier layer (``fc``, ``classifier.2``...).

    The network is built on the meta device (no memory, no initialisation) with a probe class
    count; the last layer whose weight has that many rows is the head. None when the builder
    takes no class count.
    """
    from engine.models.loaders import build_architecture

    try:
        with torch.device("meta"):
            net = build_architecture(f"torchvision:{name}", {}, _PROBE_CLASSES,
                                     base=Path.cwd(), trust=False, card=None)
    except (ModelError, TypeError, ValueError, RuntimeError, NotImplementedError):
        return None  # the build that follows names the problem
    heads = [n for n, m in net.named_modules()
             if isinstance(getattr(m, "weight", None), torch.Tensor)
             and m.weight.ndim >= 2 and m.weight.shape[0] == _PROBE_CLASSES]
    return heads[-1] if heads else None


def head_size(arch: str, state: dict[str, torch.Tensor]) -> int | None:
    """How many classes the weights ``state`` of architecture ``arch`` were trained for.

    The classifier's weight counts the classes in its rows: timm names its classifier
    (``pretrained_cfg["classifier"]``, e.g. ``head.fc``); a torchvision network's is found by
    building it (:func:`torchvision_head`). The file's key order says nothing (safetensors
    sorts its keys), so it is only the last resort: the last weight matrix. None for an xrv
    DenseNet, which has its pathologies: weights of another size do not fit it.
    """
    kind, _, name = arch.partition(":")
    if kind == "xrv":
        return None
    head = None
    if kind == "timm":
        from engine.models.timm_source import timm_classifier

        head = timm_classifier(name)
    elif kind == "torchvision":
        head = torchvision_head(name)
    key = f"{head}.weight"
    if head is not None and key in state and state[key].ndim >= 2:
        return int(state[key].shape[0])
    last = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    return int(last[-1].shape[0]) if last else None
