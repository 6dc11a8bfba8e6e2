"""The explainer plugin contract: what built-in and third-party explainers implement.

This module is the whole API a plugin imports (``from engine.explain.api import ...``); plugins
import nothing else from Lucida. An explainer is a class (or any object with the same attributes)
that turns a :class:`Capture` into maps. Its ``params`` schema is all the CLI and the GUI need to
offer its settings, so neither holds explainer-specific code.

What a plugin receives
----------------------
``explain(capture, target, layers, params, progress, cancel)`` gets a :class:`Capture` of **one
image** and that image's ``target`` class index, unless the explainer sets ``batched = True``: it
then gets the capture of a whole batch and ``target`` is a (N,) ``LongTensor``, and it returns
maps with a leading batch axis. A capture holds (see :class:`engine.explain.capture.Capture`):

- ``input``: the (N, C, H, W) preprocessed input (or (N, C, D, H, W) for volumes);
- ``logits``, ``scores``: (N, K) model outputs, softmax or sigmoid per the model card;
- ``targets``: (N,) class indices; ``target`` is the same as an int when N is 1;
- ``activations[layer]``, ``gradients[layer]``: (N, C, *grid) for every requested layer, from one
  forward and one backward pass (``needs`` ``activations`` / ``gradients``);
- ``fc_weights``, ``fc_bias``: the final linear layer when it produces the logits
  (``needs`` ``fc_weights``; computed only when asked for);
- ``forward_scores(batch)``: scores of perturbed inputs, batched, under ``inference_mode``
  (``needs`` ``forward_fn``);
- ``input_gradients(inputs, targets)``: the gradient of each target's objective with respect
  to a batch of (perturbed) inputs, with optional backward hooks on the model's modules
  (``needs`` ``input_gradients``);
- ``to_pixels(x)`` / ``from_pixels(p)``: between the model's normalised space and [0, 1] pixels.

Using a part of the capture that ``needs`` does not declare raises one line naming it, so the
core never computes what nobody reads.

A minimal third-party explainer::

    from engine.explain.api import Explainer, Param

    class MeanActivation(Explainer):
        name = "meanact"
        title = "Mean activation"
        description = "Channel mean of the layer's activations."
        citation = "-"
        needs = frozenset({"activations"})
        params = (Param("power", "float", 1.0, range=(0.5, 4.0), help="exponent"),)

        def explain(self, capture, target, layers, params, progress, cancel):
            return {l: capture.activations[l][0].mean(0).clamp(min=0) ** params["power"]
                    for l in layers}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.core.cancel import Cancelled, CancelToken, ProgressFn
from engine.core.errors import ExplainerUnavailable, UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import torch

    from engine.explain.capture import Capture
    from engine.models.loaded import LoadedModel

__all__ = [
    "INPUT_LAYER", "NEEDS", "PARAM_TYPES", "Cancelled", "CancelToken", "Explainer",
    "ExplainerUnavailable", "Param", "ProgressFn", "UsageError", "is_layer_based",
    "is_segmentation", "resolve_params",
]

#: What an explainer may ask the capture for.
NEEDS = frozenset({"activations", "gradients", "input_gradients", "forward_fn", "fc_weights"})
#: Parameter types a schema may declare.
PARAM_TYPES = ("float", "int", "bool", "choice", "str")
#: The map key of model-agnostic explainers, whose maps live in model-input geometry.
INPUT_LAYER = "input"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One setting of an explainer.

    Parameters
    ----------
    name : str
        Key in the ``params`` dict and in ``--param NAME=VALUE``.
    type : str
        One of ``float``, ``int``, ``bool``, ``choice``, ``str``.
    default : Any
        Value used when the user gives none.
    range : tuple, optional
        Inclusive ``(low, high)`` bounds for numbers.
    choices : tuple, optional
        Allowed values of a ``choice``.
    help : str
        One line shown by ``methods`` and as the GUI tooltip.
    """

    name: str
    type: str
    default: Any
    range: tuple | None = None
    choices: tuple | None = None
    help: str = ""

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and checked against the schema.

        Strings (from the command line) are parsed; other values are converted.

        Raises
        ------
        UsageError
            If the value does not fit the schema.
        """
        try:
            if self.type == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in _TRUE | _FALSE:
                        raise ValueError(value)
                    out: Any = low in _TRUE
                else:
                    out = bool(value)
            elif self.type == "int":
                as_float = float(value)
                if as_float != int(as_float):
                    raise ValueError(value)
                out = int(as_float)
            elif self.type == "float":
                out = float(value)
            else:
                out = str(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"parameter {self.name}={value!r} is not a valid {self.type}",
                fix=self.describe(),
            ) from None
        if self.range is not None and not self.range[0] <= out <= self.range[1]:
            raise UsageError(
                f"parameter {self.name}={out} is outside {self.range[0]}..{self.range[1]}",
                fix=self.describe(),
            )
        if self.choices is not None and out not in self.choices:
            raise UsageError(
                f"parameter {self.name}={out!r} is not one of {', '.join(map(str, self.choices))}",
                fix=self.describe(),
            )
        return out

    def describe(self) -> str:
        """Return a one-line summary: name, type, default, bounds and help."""
        text = f"{self.name} ({self.type}, default {self.default}"
        if self.range is not None:
            text += f", {self.range[0]}..{self.range[1]}"
        if self.choices is not None:
            text += f", one of {'|'.join(map(str, self.choices))}"
        text += ")"
        return f"{text}: {self.help}" if self.help else text

    def as_dict(self) -> dict:
        """Return the schema as plain JSON-ready data."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "range": None if self.range is None else list(self.range),
            "choices": None if self.choices is None else list(self.choices),
            "help": self.help,
        }


class Explainer:
    """Base class of explainers; subclass it, or provide the same attributes on any object.

    Attributes
    ----------
    name : str
        Registry key (``gradcam``).
    title : str
        Display name.
    description : str
        One line.
    citation : str
        The paper that defines the method.
    needs : frozenset of str
        Subset of :data:`NEEDS` this explainer reads from the capture. Without ``activations``
        the explainer is model-agnostic and returns one map under the key ``"input"``.
    params : tuple of Param
        The settings schema.
    batched : bool
        Whether :meth:`explain` takes a whole batch at once (``target`` a (N,) tensor, maps
        (N, ...)). False (the default) gives it one image at a time.
    signed : bool
        Whether the maps keep their sign (attributions); unsigned maps are clipped at 0.
    units : str
        What a raw map value measures, shown on the colour bar of the absolute scale.
    """

    name: str = ""
    title: str = ""
    description: str = ""
    citation: str = ""
    needs: frozenset[str] = frozenset()
    params: tuple[Param, ...] = ()
    batched: bool = False
    signed: bool = False
    units: str = "a.u."

    def unavailable_reason(self, model: LoadedModel) -> str | None:
        """Return one line saying why this explainer cannot run on ``model``, or None.

        The default refuses layer-based explainers on models whose layers cannot be hooked.
        """
        if {"activations", "gradients"} & set(self.needs):
            return getattr(model, "layer_methods_reason", None)
        return None

    def explain(
        self,
        capture: Capture,
        target: int,
        layers: list[str],
        params: dict,
        progress: ProgressFn,
        cancel: CancelToken,
    ) -> dict[str, np.ndarray | torch.Tensor]:
        """Return one float32 (h, w) map per layer, not normalised.

        Parameters
        ----------
        capture : Capture
            The forward (and backward) pass of one image through the model (of a batch when
            ``batched``).
        target : int or torch.Tensor
            Class index to explain ((N,) indices when ``batched``).
        layers : list of str
            Layers to explain (ignored by model-agnostic explainers).
        params : dict
            Values for every :class:`Param` in ``params``, already checked.
        progress : callable
            ``progress(fraction, message)``.
        cancel : CancelToken
            Polled between batches.
        """
        raise NotImplementedError


def is_segmentation(model: Any) -> bool:
    """Whether a loaded model's card declares ``task = "segmentation"`` (its logits are per
    pixel, and a target is a class over a region)."""
    return getattr(model, "task", "classification") == "segmentation"


def is_layer_based(explainer: Any) -> bool:
    """Whether an explainer makes one map per layer (rather than one map of the input)."""
    return bool({"activations", "gradients"} & set(getattr(explainer, "needs", ())))


def resolve_params(explainer: Any, given: dict | None) -> dict:
    """Return the complete, checked parameter dict of an explainer.

    Parameters
    ----------
    explainer : Explainer
        Whose schema applies.
    given : dict, optional
        Values set by the user (strings are parsed); the rest take their defaults.

    Raises
    ------
    UsageError
        For an unknown name or a value that does not fit the schema.
    """
    schema = {p.name: p for p in getattr(explainer, "params", ())}
    given = dict(given or {})
    unknown = sorted(set(given) - set(schema))
    if unknown:
        valid = ", ".join(schema) or "none"
        raise UsageError(
            f"{explainer.name} has no parameter {', '.join(unknown)}",
            fix=f"its parameters are: {valid}",
        )
    return {
        name: p.coerce(given[name]) if name in given else p.default for name, p in schema.items()
    }
