"""timm models: ``timm:<name>`` architectures built offline, preprocessed as timm evaluates.

The network comes from ``timm.create_model(name, pretrained=False, ...)``: timm never fetches
weights, which come from the user's file. When a card states no ``[input]``, the preprocessing
is the model's own pretrained config (``timm.data.resolve_model_data_config``): mean, std,
input size, resampling filter and centre crop.
"""

from __future__ import annotations

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
