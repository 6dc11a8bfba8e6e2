"""timm models: ``timm:<name>`` architectures built offline, preprocessed as timm evaluates.

The network comes from ``timm.create_model(name, pretrained=False, ...)``: timm never fetches
weights, which come from the user's file. When a card states no ``[input]``, the preprocessing
is the model's own pretrained config (``timm.data.resolve_model_data_config``): mean, std,
input size, resampling filter and centre crop.

A **timm hub folder** (what ``timm.models.push_to_hf_hub`` / ``save_for_hf`` write:
``config.json`` naming the ``architecture``, with its ``model_args`` and ``pretrained_cfg``, and
``model.safetensors`` or ``pytorch_model.bin``) opens as ``--model FOLDER``: the network is
built from the config offline, the weights come from the folder, the class names from
``label_names`` and the preprocessing from the folder's ``pretrained_cfg``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from engine.core.errors import ModelError
from engine.models.offline import go_offline
from engine.models.preprocess import INTERPOLATIONS, InputSpec, normalise_spec

#: Keyword arguments of ``timm.create_model`` that would read or fetch weights other than the
#: user's file; a card may not pass them.
REFUSED_ARGS = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path")

#: timm's eval crop modes as Lucida resize modes. ``border`` (scale the longest edge, pad)
#: is a letterbox; timm also trims a little for crop_pct < 1 there, which is ignored.
_CROP_MODES = {"center": "crop", "squash": "resize", "border": "letterbox"}


def _timm():
    go_offline()
    import timm

    return timm


def timm_names() -> list[str]:
    """Every architecture name the installed timm can build, sorted."""
    return sorted(_timm().list_models())


def timm_classifier(name: str) -> str | None:
    """The name of timm model ``name``'s classifier layer (``head.fc``, ``fc``, ...), or None.

    A distilled model names two heads; the first is the classifier.
    """
    timm = _timm()
    try:
        classifier = timm.models.get_pretrained_cfg_value(name, "classifier")
    except (RuntimeError, ValueError, KeyError):
        return None
    return classifier[0] if isinstance(classifier, (tuple, list)) else classifier


def build_timm(name: str, args: dict, num_classes: int | None, card: Path | None) -> nn.Module:
    """Build ``timm.create_model(name, pretrained=False, num_classes=..., **args)``.

    Parameters
    ----------
    name : str
        A timm model name, optionally with a pretrained tag (``convnext_tiny.fb_in1k``), whose
        config then sets the preprocessing.
    args : dict
        The card's ``[architecture_args]`` (e.g. ``img_size``, ``depth``, ``in_chans``).
    num_classes : int or None
        The head size when ``args`` does not give one.
    card : Path or None
        The card, for error messages.

    Raises
    ------
    ModelError
        Unknown name, refused or invalid arguments.
    """
    timm = _timm()
    arch = name.partition(".")[0]
    if not timm.is_model(arch):
        raise ModelError(
            f"timm has no model named {arch!r}", path=card,
            fix="use a name from timm.list_models(), e.g. timm:convnext_tiny",
        )
    refused = [key for key in REFUSED_ARGS if key in args]
    if refused:
        raise ModelError(
            f"[architecture_args] {refused[0]} would load weights other than the card's",
            path=card, fix=f"remove {refused[0]}; the weights come from the card's file",
        )
    kwargs = dict(args)
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise ModelError(
            f"cannot build timm:{name} with arguments {kwargs} ({type(exc).__name__}: {exc})",
            path=card, fix="check [architecture_args] in the model card",
        ) from None


def timm_input_spec(module: nn.Module, args: dict) -> InputSpec:
    """The preprocessing timm evaluates ``module`` with, as an :class:`InputSpec`.

    The size is the built model's when a card changed it (``img_size``), since the pretrained
    config still names the original size; a one-channel model (``in_chans = 1``) gets the mean
    of the config's three statistics.
    """
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(module)
    channels, h, w = (int(v) for v in cfg["input_size"])
    built = args.get("img_size") or getattr(getattr(module, "patch_embed", None), "img_size", None)
    if built:
        h, w = (built, built) if isinstance(built, int) else (int(built[0]), int(built[1]))
    channels = int(args.get("in_chans", channels))
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if channels == 1:
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    interpolation = cfg.get("interpolation")
    mode = _CROP_MODES.get(cfg.get("crop_mode") or "center", "crop")
    crop_pct = float(cfg.get("crop_pct") or 1.0) if mode != "letterbox" else 1.0
    return normalise_spec(InputSpec(
        size=(h, w), channels=channels, mean=mean, std=std, resize=mode,
        # timm's "random" filter is for training; evaluation uses bicubic.
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bicubic",
        crop_pct=crop_pct,
    ))


#: The weights files a timm hub folder may hold, safetensors first.
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class TimmFolder:
    """A timm model read from a hub folder: network, weights file, classes and input."""

    module: nn.Module
    weights: Path
    classes: list[str]
    input: InputSpec


def is_timm_folder(path: Path) -> bool:
    """Whether ``path`` is a timm hub folder: its ``config.json`` names an ``architecture``.

    A Hugging Face ``transformers`` config names ``architectures`` and a ``model_type``
    instead.
    """
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # the Hugging Face reader names the unreadable file
    return isinstance(data, dict) and isinstance(data.get("architecture"), str) \
        and "model_type" not in data


def read_timm_folder(folder: Path, *, trust: bool = False) -> TimmFolder:
    """Build the network a timm hub folder describes and load its weights, offline.

    Parameters
    ----------
    folder : Path
        The folder holding ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``,
        read ``weights_only`` unless trusted).
    trust : bool
        Allow a pickled weights file to run code.

    Returns
    -------
    TimmFolder

    Raises
    ------
    ModelError
        An unreadable config, an unknown architecture, no weights, or weights that do not fit.
    """
    from engine.models.loaders import apply_state_dict, read_state_dict

    timm = _timm()
    from timm.models._hub import load_model_config_from_path

    config = folder / "config.json"
    try:
        pretrained_cfg, name, model_args = load_model_config_from_path(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read timm's config ({type(exc).__name__}: {exc})",
                         path=config, fix="save the model again with timm's save_for_hf") \
            from None
    # The folder is the weights' only source: nothing names a file or hub to fetch them from.
    for key in ("file", "source", "hf_hub_id", "url"):
        pretrained_cfg.pop(key, None)
    weights = next((folder / n for n in FOLDER_WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        raise ModelError("the timm folder holds no weights", path=folder,
                         fix="save the model with save_for_hf(..., safe_serialization=True), "
                         "which writes model.safetensors")
    if not timm.is_model(name.partition(".")[0]):
        raise ModelError(f"timm has no model named {name!r}", path=config,
                         fix="the folder was written by a newer timm; update timm")
    try:
        module = timm.create_model(name, pretrained=False, pretrained_cfg=pretrained_cfg,
                                   **model_args)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise ModelError(f"cannot build timm:{name} with {model_args} ({type(exc).__name__}: "
                         f"{exc})", path=config, fix="check model_args in config.json") from None
    apply_state_dict(module, read_state_dict(weights, trust=trust), weights, f"timm:{name}")
    labels = pretrained_cfg.get("label_names")
    classes = [str(c) for c in labels] if isinstance(labels, list | tuple) and \
        len(labels) == module.num_classes else [f"class_{i}" for i in range(module.num_classes)]
    return TimmFolder(module.eval(), weights, classes, timm_input_spec(module, model_args))
