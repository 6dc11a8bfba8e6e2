"""Trying a model card before it is written: build, load the weights, one forward pass.

A card that names the wrong architecture, a number of classes the weights do not have or an
input the network cannot take fails here, in one line, instead of being saved and failing on
every later load. Weights are read as tensors only (``weights_only``); a whole-model file that
can run code is loaded only when it was trusted.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

import torch

from engine.core.errors import ModelError, TrustRequired
from engine.models.adapters import adapt_output
from engine.models.card import ModelCard, card_from_data, default_spec
from engine.models.card_writer import card_toml
from engine.models.loaders import (
    apply_state_dict,
    build_architecture,
    load_whole_model,
    read_state_dict,
)


def dry_run_card(path: str | Path, fields: Mapping, *, trust: bool = False) -> ModelCard | None:
    """Check that the card ``fields`` would load and run, before it is written to ``path``.

    Parameters
    ----------
    path : str or Path
        Where the card is to be written; its file names are relative to this folder.
    fields : Mapping
        The card as :func:`~engine.models.card_writer.write_card` takes it.
    trust : bool
        Whether code in the model may run (a ``python:`` architecture, a pickled module, a
        TorchScript or ``torch.export`` archive).

    Returns
    -------
    ModelCard or None
        The card as it will be read; None when the model can run code and was not trusted,
        so it could not be tried (loading the written card asks for that trust).

    Raises
    ------
    ModelError
        One line naming the file: the weights do not fit the architecture, the file holds
        weights but no architecture was named, or the forward pass fails or gives another
        number of outputs than the card has classes.
    """
    path = Path(path).resolve()
    card = card_from_data(path, tomllib.loads(card_toml(fields)))
    try:
        if card.model is not None:
            module = _whole_model(card.model, trust)
        else:
            module = build_architecture(card.architecture, card.architecture_args,
                                        len(card.classes) if card.classes else None,
                                        base=path.parent, trust=trust, card=path)
            apply_state_dict(module, read_state_dict(card.weights), card.weights,
                             card.architecture)
    except TrustRequired:
        return None
    _forward(module.eval(), card)
    return card


def _whole_model(path: Path, trust: bool) -> torch.nn.Module:
    try:
        return load_whole_model(path, trust=trust, device=torch.device("cpu"))[0]
    except TrustRequired:
        raise
    except ModelError as exc:
        if exc.message.startswith("holds weights"):
            # A state_dict needs the network it belongs to; the card is where it is named.
            raise ModelError("holds weights only, not a whole model", path=path,
                             fix="choose its architecture, e.g. torchvision:resnet18") from None
        raise


def _forward(module: torch.nn.Module, card: ModelCard) -> None:
    """One forward pass on zeros of the card's input; the outputs must match its classes."""
    spec = card.input or default_spec()
    shape = (1, spec.channels, *spec.size)
    try:
        with torch.no_grad():
            out = adapt_output(module(torch.zeros(shape)), card.output_key, card.task)
    except ModelError as exc:
        raise ModelError(exc.message, path=card.path, fix=exc.fix) from None
    except Exception as exc:  # noqa: BLE001 - a network can fail on its input in any way
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ModelError(
            f"the model fails on a {'×'.join(map(str, shape[1:]))} input "
            f"({type(exc).__name__}: {detail})", path=card.path,
            fix="check the architecture, the input size and the channels") from None
    if card.classes and out.shape[1] != len(card.classes):
        raise ModelError(
            f"the model gives {out.shape[1]} outputs but the card lists "
            f"{len(card.classes)} classes", path=card.path,
            fix="list one class name per output of the model")
