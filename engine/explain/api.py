"""The explainer plugin contract: what built-in and third-party explainers implement.

This module is the whole API a plugin imports (``from engine.explain.api import ...``); plugins
import nothing else from Lucida. An explainer is a class (or any object with the same attributes)
that turns a :class:`Capture` into maps. Its ``params`` schema is all the CLI and the GUI need to
offer its settings, so neither holds explainer-specific code.

What a plugin receives
----------------------
``explain(capture, target, layers, params, progress, cancel)`` gets a :class:`Capture` of **one
image** and that image's ``target`` class index, unless the explainer sets ``batched = True``: it
then gets the capture of a whole batch and ``target`` is a (N,) ``LongTensor``.

What it returns
---------------
A dict with one float map per layer (or one under ``"input"``), a tensor or array shaped
**(N, *grid), batch first** whether the explainer is batched or not: N is ``len(capture)``
(1 for an unbatched explainer, which sees one image), and ``grid`` is (h, w) for 2-D model
inputs or (d, h, w) for 3-D ones, at the layer's or the input's resolution. The core checks
every map against the capture: a map whose N is not the batch size, or whose grid has another
rank, fails that method for that input with one line (:class:`PluginError`) and the other
methods go on. Maps are not normalised; the core finishes them.

What it reads
-------------
A capture holds (see :class:`engine.explain.capture.Capture`):

- ``input``: the (N, C, H, W) preprocessed input (or (N, C, D, H, W) for volumes);
- ``logits``, ``scores``: (N, K) model outputs, softmax or sigmoid per the model card;
- ``targets``: (N,) class indices; ``target`` is the same as an int when N is 1;
- ``activations[layer]``, ``gradients[layer]``: (N, C, *grid) for every requested layer, from one
  forward and one backward pass (``needs`` ``activations`` / ``gradients``);
- ``fc_weights``, ``fc_bias``: the final linear layer when it produces the logits
  (``needs`` ``fc_weights``; computed only when asked for);
- ``attentions``: a vision transformer's own post-softmax attention probabilities, one
  (N, heads, T, T) tensor per block in execution order, recorded on the library's eager path in
  the same forward pass; ``token_grid`` is ``(prefix, h, w)``: ``prefix`` class, register or
  distillation tokens, then an h x w grid of patches (``needs`` ``attentions``; the model's
  attention is found automatically, see :mod:`engine.models.attention`);
- ``attention_gradients``: per block, the gradient of the target objective with respect to that
  attention (``needs`` ``attention_gradients``; taken in the capture's one backward pass), and
  ``readout_gradients``: per block, the gradient with respect to its own attention of the score
  the model's final norm and classifier give to the block's mean token (``needs``
  ``readout_gradients``). An explainer that needs any of these is not layer-based: its one map
  per input goes under ``"input"``, at the patch grid's resolution, and in the GUI one capture
  serves every such method;
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
            # (N, C, h, w) activations -> (N, h, w) maps, batch first.
            return {l: capture.activations[l].mean(1).clamp(min=0) ** params["power"]
                    for l in layers}

A parameter schema is checked when it is built (:class:`Param`): an unknown type, a range with
min > max, or a default outside its own range or choices raises :class:`PluginError` at import,
and the registry reports the plugin in one line naming the parameter and leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.core.cancel import Cancelled, CancelToken, ProgressFn, no_progress
from engine.core.errors import ExplainerUnavailable, LucidaError, UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import torch

    from engine.explain.capture import Capture
    from engine.models.loaded import LoadedModel

__all__ = [
    "ATTENTION_NEEDS", "INPUT_LAYER", "NEEDS", "PARAM_ALIASES", "PARAM_TYPES", "Cancelled",
    "CancelToken",
    "Explainer", "ExplainerUnavailable", "Param", "PluginError", "ProgressFn", "UsageError",
    "check_params", "class_token_map", "is_layer_based", "is_segmentation", "no_progress",
    "patch_map", "resolve_params",
]

#: What an explainer may ask the capture for.
NEEDS = frozenset({"activations", "gradients", "input_gradients", "forward_fn", "fc_weights",
                   "attentions", "attention_gradients", "readout_gradients"})
#: The needs that read a vision transformer's attention (see :mod:`engine.models.attention`).
ATTENTION_NEEDS = frozenset({"attentions", "attention_gradients", "readout_gradients"})
#: Parameter types a schema may declare.
PARAM_TYPES = ("float", "int", "bool", "choice", "str")
#: The map key of model-agnostic explainers, whose maps live in model-input geometry.
INPUT_LAYER = "input"

#: Other spellings of the parameter types, accepted and stored as the name they stand for.
PARAM_ALIASES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class PluginError(LucidaError):
    """A plugin that breaks the explainer contract: a bad parameter schema, a map of the wrong
    shape. The message names the parameter or the map."""


@dataclass(frozen=True)
class Param:
    """One setting of an explainer.

    The schema is checked when the parameter is built: an unknown type, bounds that are not
    ``low <= high``, a ``choice`` without choices, or a default that its own :meth:`coerce`
    refuses raise :class:`PluginError`, so a broken plugin fails at import, where the registry
    reports it, and not when a user first runs it. The stored default is the coerced one.

    Parameters
    ----------
    name : str
        Key in the ``params`` dict and in ``--param NAME=VALUE``.
    type : str
        One of ``float``, ``int``, ``bool``, ``choice``, ``str`` (``number``, ``integer``,
        ``boolean`` and ``string`` are accepted and stored as those).
    default : Any
        Value used when the user gives none.
    range : tuple, optional
        Inclusive ``(low, high)`` bounds for numbers.
    choices : tuple, optional
        Allowed values of a ``choice``.
    help : str
        One line shown by ``methods`` and as the GUI tooltip.
    advanced : bool
        Whether the GUI keeps the setting under "Advanced" (a step count, a batch size), so
        that the form leads with what the user decides (a tolerance, a time budget).

    Raises
    ------
    PluginError
        For a schema that cannot work, naming the parameter.
    """

    name: str
    type: str
    default: Any
    range: tuple | None = None
    choices: tuple | None = None
    help: str = ""
    advanced: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(
                c.isspace() or c in "=," for c in self.name):
            raise PluginError(f"parameter name {self.name!r} is not a word",
                              fix="name it with letters, digits and '_'")
        kind = PARAM_ALIASES.get(self.type, self.type) if isinstance(self.type, str) else None
        if kind not in PARAM_TYPES:
            raise PluginError(f"parameter {self.name} has unknown type {self.type!r}",
                              fix=f"use one of {', '.join(PARAM_TYPES)}")
        # Frozen: the canonical type and the coerced default are set once, here.
        object.__setattr__(self, "type", kind)
        self._check_range()
        self._check_choices()
        try:
            default = self.coerce(self.default)
        except UsageError as exc:
            raise PluginError(f"parameter {self.name} has a bad default: {exc.message}",
                              fix="give a default that fits its own type, range and choices"
                              ) from None
        object.__setattr__(self, "default", default)

    def _check_range(self) -> None:
        if self.range is None:
            return
        if self.type not in ("int", "float"):
            raise PluginError(f"parameter {self.name} is a {self.type} and cannot have a range",
                              fix="give range only to int and float parameters")
        try:
            low, high = (float(b) for b in self.range)
        except (TypeError, ValueError):
            raise PluginError(f"parameter {self.name} has range {self.range!r}",
                              fix="give range as two numbers (low, high)") from None
        if not low <= high:
            raise PluginError(f"parameter {self.name} has range {self.range!r} with min > max",
                              fix="give range as (low, high) with low <= high")

    def _check_choices(self) -> None:
        if self.type != "choice":
            if self.choices is not None:
                raise PluginError(f"parameter {self.name} is a {self.type} and cannot have "
                                  "choices", fix="declare it as type 'choice'")
            return
        choices = tuple(self.choices or ())
        if not choices:
            raise PluginError(f"parameter {self.name} is a choice without choices",
                              fix="list the allowed values in choices=(...)")
        # Values are told apart by their text on the command line and in the GUI.
        if len({str(c) for c in choices}) != len(choices):
            raise PluginError(f"parameter {self.name} repeats a choice in {choices!r}",
                              fix="list every allowed value once")
        object.__setattr__(self, "choices", choices)

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type and checked against the schema.

        Strings (from the command line) are parsed: ``int`` and ``float`` as numbers (an
        ``int`` must be whole), ``bool`` from true/false, 1/0, yes/no or on/off, a ``choice``
        as the text of one of its choices (which keeps the choice's own type). Other values
        are converted; a ``bool`` is not taken for a number, nor a number other than 0 or 1
        for a ``bool``.

        Returns
        -------
        int, float, bool, str or one of the choices
            As the parameter's type says.

        Raises
        ------
        UsageError
            If the value does not fit the schema.
        """
        try:
            out = self._convert(value)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(
                f"parameter {self.name}={value!r} is not a valid {self.type}",
                fix=self.describe(),
            ) from None
        if self.range is not None and not self.range[0] <= out <= self.range[1]:
            raise UsageError(
                f"parameter {self.name}={out} is outside {self.range[0]}..{self.range[1]}",
                fix=self.describe(),
            )
        return out

    def _convert(self, value: Any) -> Any:
        if self.type == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError(value)
                return low in _TRUE
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if self.type in ("int", "float"):
            if isinstance(value, bool):
                raise TypeError(value)
            number = float(value.strip() if isinstance(value, str) else value)
            if number != number:  # NaN fits no schema and compares false with every bound
                raise ValueError(value)
            if self.type == "float":
                return number
            if number != int(number):
                raise ValueError(value)
            return int(number)
        if self.type == "choice":
            for choice in self.choices:
                if value == choice and type(value) is type(choice):
                    return choice
            text = str(value).strip()
            for choice in self.choices:
                if str(choice) == text:
                    return choice
            raise UsageError(
                f"parameter {self.name}={value!r} is not one of "
                f"{', '.join(map(str, self.choices))}",
                fix=self.describe(),
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(value)
        return str(value)

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
            "advanced": self.advanced,
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
        Whether :meth:`explain` takes a whole batch at once (``target`` a (N,) tensor). False
        (the default) gives it one image at a time. Either way its maps are (N, *grid).
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

        The default refuses layer-based explainers on models whose layers cannot be hooked,
        attention explainers on models whose attention cannot be found (one line saying why:
        not a vision transformer, a windowed one), and input-gradient explainers on models that
        give no gradients (an ONNX graph run by onnxruntime).
        """
        if ATTENTION_NEEDS & set(self.needs):
            from engine.models.attention import unavailable_reason

            return unavailable_reason(model)
        if {"activations", "gradients"} & set(self.needs):
            reason = getattr(model, "layer_methods_reason", None)
            if reason:
                return reason
        if "input_gradients" in self.needs:
            return getattr(model, "gradient_methods_reason", None)
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
        """Return one float32 (N, *grid) map per layer, batch first, not normalised.

        N is ``len(capture)`` (1 unless ``batched``); ``grid`` is (h, w), or (d, h, w) for
        3-D model inputs. Model-agnostic explainers return one map under ``"input"``.

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


def check_params(explainer: Any) -> None:
    """Check an explainer's ``params`` schema as a whole (each :class:`Param` checks itself).

    Raises
    ------
    PluginError
        For a schema that is not a sequence of :class:`Param`, or that names a parameter twice.
    """
    name = getattr(explainer, "name", "?")
    declared = getattr(explainer, "params", ())
    params = () if isinstance(declared, (str, bytes)) else declared
    try:
        params = tuple(params)
    except TypeError:
        params = ()
    if not all(isinstance(p, Param) for p in params) or (declared and not params):
        raise PluginError(f"explainer {name!r} has params that are not engine.explain.api.Param",
                          fix="declare params as a tuple of Param(...)")
    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            raise PluginError(f"explainer {name!r} declares parameter {p.name} twice",
                              fix="give every parameter its own name")
        seen.add(p.name)


def is_segmentation(model: Any) -> bool:
    """Whether a loaded model's card declares ``task = "segmentation"`` (its logits are per
    pixel, and a target is a class over a region)."""
    return getattr(model, "task", "classification") == "segmentation"


def is_layer_based(explainer: Any) -> bool:
    """Whether an explainer makes one map per layer (rather than one map of the input)."""
    return bool({"activations", "gradients"} & set(getattr(explainer, "needs", ())))


def patch_map(capture: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Lay a per-token score out on the capture's patch grid.

    Parameters
    ----------
    capture : Capture
        A capture with attentions (its ``token_grid`` says how the tokens are laid out).
    tokens : torch.Tensor
        (N, T) one value per token, prefix tokens first.

    Returns
    -------
    torch.Tensor
        (N, h, w) float32: the patch tokens' values, the prefix tokens dropped.
    """
    prefix, h, w = capture.token_grid
    return tokens[:, prefix:].float().reshape(tokens.shape[0], h, w)


def class_token_map(capture: Any, matrix: torch.Tensor) -> torch.Tensor:
    """Return the class token's row of an (N, T, T) token-to-token matrix on the patch grid.

    A model without a class token (global average pooling over patches) reads out the mean of
    its patch rows instead, as its pooling does.
    """
    prefix = capture.token_grid[0]
    row = matrix[:, 0] if prefix else matrix.mean(1)
    return patch_map(capture, row)


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
