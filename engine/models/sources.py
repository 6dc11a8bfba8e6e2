"""What a library architecture brings with it when the card is silent.

A ``timm:`` network knows its preprocessing (its pretrained config); an ``xrv:`` DenseNet knows
its pathology names, its preprocessing and that it is multi-label. A card field, when stated,
always wins over these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

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
