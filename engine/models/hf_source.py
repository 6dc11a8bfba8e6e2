"""Hugging Face folders: what ``save_pretrained`` wrote, opened offline as an image classifier.

A folder with ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, which
transformers reads with ``weights_only``) opens through ``AutoModelForImageClassification`` with
``local_files_only=True`` and the hub's offline switches on. The class names come from
``id2label``; ``problem_type = "multi_label_classification"`` means sigmoid outputs; the
preprocessing comes from ``preprocessor_config.json`` (mean, std, size, centre crop, resampling
filter, rescaling). A config whose ``auto_map`` names its own model code would run Python from
the folder, so it needs trust.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from engine.core.errors import ModelError, TrustRequired
from engine.core.hashing import sha256_file
from engine.models.card import IMAGENET_MEAN, IMAGENET_STD, default_spec
from engine.models.loaders import TRUST_FIX
from engine.models.offline import go_offline
from engine.models.preprocess import InputSpec, normalise_spec

#: The files ``save_pretrained`` writes weights to, safetensors first.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
#: PIL's resampling codes (``resample`` in a preprocessor config) as Lucida filters. torch has
#: no Lanczos, box or Hamming filter; antialiased bicubic or bilinear are the closest.
PIL_FILTERS = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear",
               5: "bilinear"}


@dataclass
class HFModel:
    """A Hugging Face classifier read from a folder."""

    module: nn.Module
    classes: list[str]
    input: InputSpec
    output: str
    files: dict[str, str]
    weights: Path


def is_hf_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``save_pretrained`` (it holds ``config.json``)."""
    return path.is_dir() and (path / "config.json").is_file()


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path.name} ({exc})", path=path,
                         fix="save the model again with save_pretrained") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path.name} is not a JSON object", path=path,
                         fix="save the model again with save_pretrained")
    return data


def _weights(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(
        "holds config.json but no weights (model.safetensors)", path=folder,
        fix="save the model with model.save_pretrained(folder), which writes model.safetensors",
    )


def _quiet(transformers) -> None:
    # Loading prints progress bars and a load report; Lucida reports problems in one line.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def read_hf_folder(folder: Path, *, trust: bool = False) -> HFModel:
    """Load the image classifier saved in ``folder``.

    Parameters
    ----------
    folder : Path
        A ``save_pretrained`` folder.
    trust : bool
        Allow a config with ``auto_map`` (model code in the folder) to run it.

    Returns
    -------
    HFModel

    Raises
    ------
    TrustRequired
        The config names its own model code and ``trust`` is False.
    ModelError
        No weights, weights that do not fit the config (a missing key, another head size),
        or a config transformers cannot build; one line naming the file and the fix.
    """
    folder = folder.resolve()
    config_path = folder / "config.json"
    config = _read_json(config_path)
    remote = "auto_map" in config
    if remote and not trust:
        raise TrustRequired(
            "names its own model code (auto_map), which runs Python from the folder",
            path=config_path, fix=TRUST_FIX,
        )
    weights = _weights(folder)
    go_offline()
    import transformers

    _quiet(transformers)
    try:
        module, info = transformers.AutoModelForImageClassification.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=weights.name.startswith("model."),
            trust_remote_code=remote, output_loading_info=True,
            # Reported below in one line, rather than raised with a table.
            ignore_mismatched_sizes=True,
        )
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for bad folders
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ModelError(
            f"transformers cannot load it as an image classifier ({type(exc).__name__}: "
            f"{detail})", path=config_path,
            fix="save an AutoModelForImageClassification with save_pretrained",
        ) from None
    _check_loading(info, weights)
    files = {str(config_path): sha256_file(config_path)}
    # The weights file, and each shard a sharded index names beside it.
    for path in [weights, *sorted(folder.glob("model-*.safetensors"))]:
        files[str(path)] = sha256_file(path)
    processor_path = folder / "preprocessor_config.json"
    processor = {}
    if processor_path.is_file():
        processor = _read_json(processor_path)
        files[str(processor_path)] = sha256_file(processor_path)
    cfg = module.config
    classes = [str(cfg.id2label.get(i, f"class_{i}")) for i in range(cfg.num_labels)]
    output = "sigmoid" if cfg.problem_type == "multi_label_classification" else "softmax"
    return HFModel(module=module.eval(), classes=classes, input=hf_input_spec(cfg, processor),
                   output=output, files=files, weights=weights)


def _check_loading(info: dict, weights: Path) -> None:
    """Refuse weights that left part of the model at random init."""
    mismatched = sorted(info.get("mismatched_keys") or [], key=str)
    missing = sorted(info.get("missing_keys") or [])
    if not (mismatched or missing):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if mismatched:
        first = mismatched[0]
        if isinstance(first, (tuple, list)) and len(first) == 3:
            first = f"{first[0]}: file {tuple(first[1])} vs model {tuple(first[2])}"
        parts.append(f"{len(mismatched)} with other shapes (e.g. {first})")
    raise ModelError(
        f"the weights do not fit config.json: {'; '.join(parts)}", path=weights,
        fix="make config.json's id2label and sizes match the weights, or save the model again "
        "with save_pretrained",
    )


def _pair(value, default: int) -> tuple[int, int] | None:
    """A processor size (``{"height", "width"}``, ``{"shortest_edge"}`` or an int) as (h, w)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    if "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    edge = int(value.get("shortest_edge", default))
    return edge, edge


def hf_input_spec(config, processor: dict) -> InputSpec:
    """The preprocessing of ``preprocessor_config.json`` as an :class:`InputSpec`.

    ``size`` as height and width stretches; ``size`` as a shortest edge keeps the aspect
    ratio; ``do_center_crop`` then keeps ``crop_size`` (``crop_pct`` = crop / size). ConvNeXt's
    processor crops ``crop_pct`` of a shortest edge below 384. Lucida scales images to [0, 1],
    so ``rescale_factor`` (1/255 by default) and ``image_mean``/``image_std`` fold into the
    spec's mean and std. Without a processor config: the config's ``image_size`` with
    ImageNet statistics.
    """
    channels = int(getattr(config, "num_channels", 3) or 3)
    image_size = getattr(config, "image_size", 224)
    image_size = image_size if isinstance(image_size, int) else int(image_size[0])
    if not processor:
        return normalise_spec(default_spec(channels if channels in (1, 3) else 3,
                                           (image_size, image_size)))
    mean = processor.get("image_mean", IMAGENET_MEAN)
    std = processor.get("image_std", IMAGENET_STD)
    if not processor.get("do_normalize", True):
        mean, std = (0.0,), (1.0,)
    mean = [float(m) for m in (mean if isinstance(mean, (list, tuple)) else [mean])]
    std = [float(s) for s in (std if isinstance(std, (list, tuple)) else [std])]
    if channels == 1 and len(mean) > 1:
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    # The model sees (255 x * factor - mean) / std for x in [0, 1]: mean and std in [0, 1] units.
    scale = 255.0 * float(processor.get("rescale_factor", 1 / 255)) \
        if processor.get("do_rescale", True) else 255.0
    mean, std = [m / scale for m in mean], [s / scale for s in std]
    size_field = processor.get("size") if processor.get("do_resize", True) else None
    size = _pair(size_field, image_size) or (image_size, image_size)
    shortest = isinstance(size_field, int) or (isinstance(size_field, dict)
                                                and "shortest_edge" in size_field)
    crop = _pair(processor.get("crop_size"), image_size) if processor.get("do_center_crop") \
        else None
    resize, crop_pct, target = ("crop" if shortest else "resize"), 1.0, size
    if crop is not None:
        target, crop_pct = crop, min(1.0, crop[0] / size[0])
    elif shortest and "crop_pct" in processor and size[0] < 384:
        crop_pct = float(processor["crop_pct"])
    return normalise_spec(InputSpec(
        size=target, channels=channels, mean=tuple(mean), std=tuple(std), resize=resize,
        interpolation=PIL_FILTERS.get(int(processor.get("resample", 2)), "bilinear"),
        crop_pct=crop_pct,
    ))
