"""Model cards: the TOML file next to a model that says how to build, feed and read it.

Example::

    name = "chest-resnet"
    architecture = "torchvision:resnet18"   # or "python:net.py:build", or "lucida:demo_cnn"
    weights = "chest.safetensors"           # state_dict (.pt/.pth/.safetensors), relative to card
    classes = ["normal", "nodule"]
    output = "softmax"                      # or "sigmoid" (multi-label)
    threshold = 0.5                         # optional, sigmoid: a class is a finding at or above
    output_key = "logits"                   # optional: which dict key / attribute holds logits
    task = "classification"                 # or "segmentation": (N, K, H, W) pixel logits

    [architecture_args]                     # optional keyword arguments for the builder
    num_classes = 2

    [input]
    size = [224, 224]
    channels = 3
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    window = "default"                      # or "minmax", or [center, width]
    resize = "resize"                       # or "letterbox", or "crop" (cover, centre crop)
    interpolation = "bilinear"              # or "bicubic", "nearest"
    crop_pct = 1.0                          # share kept by the centre crop (timm's crop_pct)

    [layers]
    default = "layer4"

A 3-D model states its voxel grid: ``size = [D, H, W]``, ``spacing = [z, y, x]`` in mm, an
``orientation`` (nibabel axis codes of its x, y and z axes, e.g. ``"RAS"``), a HU ``window``
and ``crop = "centre"`` or ``"roi"`` (see :mod:`engine.models.volume_preprocess`)::

    [input]
    size = [32, 64, 64]
    spacing = [5.0, 5.0, 5.0]
    orientation = "RAS"
    channels = 1
    window = [-500, 1400]

    [intended_use]                          # optional; see engine.models.intended_use
    modalities = ["CR", "DX"]
    body_parts = ["CHEST"]

Instead of ``architecture`` + ``weights``, a card may name a whole-model file with
``model = "net.pt2"`` (torch.export), a TorchScript file, or a pickled module (trusted only).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.errors import ModelError
from engine.models.findings import DEFAULT_THRESHOLD
from engine.models.intended_use import IntendedUse, parse
from engine.models.preprocess import InputSpec, normalise_spec
from engine.models.volume_preprocess import VolumeSpec, normalise_volume_spec

#: ImageNet statistics, the default for three-channel models without [input] mean/std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUTS = ("softmax", "sigmoid")
TASKS = ("classification", "segmentation")


@dataclass
class ModelCard:
    """A parsed model card; paths are absolute."""

    path: Path
    name: str
    classes: list[str] | None
    output: str = "softmax"
    output_key: str | None = None
    architecture: str | None = None
    architecture_args: dict = field(default_factory=dict)
    weights: Path | None = None
    model: Path | None = None
    input: InputSpec | None = None
    default_layer: str | None = None
    description: str = ""
    intended_use: IntendedUse | None = None
    task: str = "classification"
    #: The top-level keys the card states, so a model source knows what the card overrides.
    stated: frozenset = frozenset()
    threshold: float = DEFAULT_THRESHOLD


def default_spec(channels: int = 3, size: tuple[int, int] = (224, 224)) -> InputSpec:
    """Return the preprocessing assumed when no card states one (ImageNet-style)."""
    if channels == 3:
        return InputSpec(size=size, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return InputSpec(size=size, channels=1, mean=(0.5,), std=(0.5,))


def _fail(path: Path, message: str, fix: str) -> ModelError:
    return ModelError(message, path=path, fix=fix)


def read_card(path: str | Path, defaults: dict | None = None) -> ModelCard:
    """Read and check a model card.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file.
    defaults : dict, optional
        Fields the card may leave out (a card inside a Hugging Face folder means that folder:
        ``{"model": "."}``); they do not count as stated.

    Returns
    -------
    ModelCard

    Raises
    ------
    ModelError
        When the file is missing, is not TOML, or a field is missing or invalid.
    """
    path = Path(path).resolve()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "model card not found", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read the model card ({exc})", "check the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"the model card is not valid TOML ({exc})", "fix the syntax") from None
    card = card_from_data(path, {**(defaults or {}), **data})
    card.stated = frozenset(data)
    return card


def card_from_data(path: Path, data: dict) -> ModelCard:
    """Check the parsed TOML of a card and return it as a :class:`ModelCard`.

    Parameters
    ----------
    path : Path
        The card's absolute path: relative file names are resolved against its folder, and
        errors name it.
    data : dict
        The card as :func:`tomllib.loads` returns it.

    Returns
    -------
    ModelCard

    Raises
    ------
    ModelError
        When a field is missing or invalid.
    """
    base = path.parent

    def file_field(key: str) -> Path | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise _fail(path, f"{key} must be a file name", f'write {key} = "file"')
        return (base / value).resolve()

    classes = data.get("classes")
    if classes is not None and (
        not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes)
    ):
        raise _fail(path, "classes must be a non-empty list of names", 'write classes = ["a", "b"]')
    output = data.get("output", "softmax")
    if output not in OUTPUTS:
        raise _fail(path, f"output = {output!r} is unknown", "use 'softmax' or 'sigmoid'")
    card = ModelCard(
        path=path,
        name=str(data.get("name") or path.parent.name or path.stem),
        classes=list(classes) if classes else None,
        output=output,
        output_key=data.get("output_key"),
        architecture=data.get("architecture"),
        architecture_args=dict(data.get("architecture_args", {})),
        weights=file_field("weights"),
        model=file_field("model"),
        default_layer=(data.get("layers") or {}).get("default"),
        description=str(data.get("description", "")),
        stated=frozenset(data),
    )
    if card.architecture is None and card.model is None:
        raise _fail(
            path,
            "the card names neither an architecture nor a model file",
            'add architecture = "torchvision:resnet18" and weights = "...", or model = "net.pt2"',
        )
    if card.architecture is not None and card.weights is None:
        raise _fail(path, "the card names an architecture but no weights", 'add weights = "..."')
    if "input" in data:
        card.input = _input_spec(path, data["input"])
    if "intended_use" in data:
        card.intended_use = parse(path, data["intended_use"])
    card.threshold = _threshold(path, data.get("threshold", DEFAULT_THRESHOLD))
    card.task = str(data.get("task", "classification"))
    if card.task not in TASKS:
        raise _fail(path, f"task = {card.task!r} is unknown", "use 'classification' or "
                    "'segmentation'")
    return card


def _threshold(path: Path, value) -> float:
    """A card's ``threshold``: a probability strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise _fail(path, f"threshold = {value!r} is not a probability between 0 and 1",
                    "write e.g. threshold = 0.5")
    return float(value)


def _input_spec(path: Path, section: dict) -> InputSpec:
    if not isinstance(section, dict):
        raise _fail(path, "[input] must be a table", "see the model card format")
    channels = int(section.get("channels", 3))
    base = default_spec(channels if channels in (1, 3) else 3)
    size = section.get("size", list(base.size))
    if isinstance(size, int):
        size = [size, size]
    try:
        if "spacing" in section or (isinstance(size, list) and len(size) == 3):
            return normalise_volume_spec(VolumeSpec(
                size=tuple(size), channels=channels,
                mean=tuple(section.get("mean", (0.5,))), std=tuple(section.get("std", (0.5,))),
                window=section.get("window", "default"),
                spacing=tuple(section.get("spacing", ())),
                orientation=str(section.get("orientation", "RAS")),
                crop=str(section.get("crop", "centre")),
            ))
        spec = InputSpec(
            size=tuple(size),
            channels=channels,
            mean=tuple(section.get("mean", base.mean)),
            std=tuple(section.get("std", base.std)),
            window=section.get("window", "default"),
            resize=section.get("resize", "resize"),
            interpolation=section.get("interpolation", "bilinear"),
            crop_pct=float(section.get("crop_pct", 1.0)),
        )
        return normalise_spec(spec)
    except ModelError as exc:
        raise ModelError(exc.message, path=path, fix=exc.fix) from None
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"[input] is invalid ({exc})", "see the model card format") from None
