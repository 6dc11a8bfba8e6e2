"""MONAI bundles: a folder with ``configs/`` and ``models/`` opened as a Lucida model.

A bundle holds ``configs/inference.json`` (or ``.yaml``), ``configs/metadata.json`` and its
weights in ``models/model.pt`` (a state dict, read ``weights_only``), ``models/model.safetensors``
or ``models/model.ts`` (TorchScript, trusted only). The network is built from the config's
``network_def`` by MONAI's own :class:`~monai.bundle.ConfigParser`; classes come from the
metadata (``network_data_format.outputs.pred.channel_def``, else ``num_channels``), the input
spec from the bundle's transforms (:mod:`engine.models.monai_transforms`), and a ``card.toml``
in the bundle folder overrides any of them (``name``, ``classes``, ``output``, ``[input]``,
``[layers]``, ``[intended_use]``, ``task``).

Security. MONAI's parser imports whatever a ``_target_`` names and ``eval``s every ``$``
expression (and, while resolving any item, every ``$import`` in the whole config). Without trust
only ``network_def`` and the items it references reach the parser, and they must be plain data:
no ``$`` expression, no ``%`` macro, no ``_mode_``, and every ``_target_`` a
``torch.nn.Module`` class from ``monai.`` or ``torch.nn.``. Anything else raises
:class:`TrustRequired` naming the file and the key; with ``trust=True`` the whole config is
parsed as MONAI would. A ``pretrained`` argument is turned off either way: the weights come from
the bundle, and nothing is downloaded.
"""

from __future__ import annotations

import copy
import inspect
import json
import pydoc
import re
import tomllib
from pathlib import Path

import torch
from torch import nn

from engine.core.errors import ModelError, TrustRequired
from engine.core.hashing import sha256_file
from engine.models.card import DEFAULT_THRESHOLD, ModelCard, card_from_data
from engine.models.loaded import LoadedModel, _infer_classes
from engine.models.loaders import TRUST_FIX, apply_state_dict, load_whole_model, read_state_dict
from engine.models.monai_transforms import bundle_input, bundle_output
from engine.models.offline import go_offline

__all__ = ["CONFIG_NAMES", "is_bundle", "load_bundle", "network_config"]

#: The inference config a bundle may have, in the order they are looked for.
CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
#: Weight files, in the order they are looked for; the last one is TorchScript.
WEIGHT_NAMES = ("model.safetensors", "model.pt", "model.ts")
#: Where an untrusted ``_target_`` may come from.
SAFE_PREFIXES = ("monai.", "torch.nn.")
_NET = "network_def"
_REF = re.compile(r"^@([\w:#]+)$")


def _config_file(folder: Path) -> Path | None:
    return next((folder / "configs" / n for n in CONFIG_NAMES
                 if (folder / "configs" / n).is_file()), None)


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a MONAI bundle folder (an inference config and ``metadata.json``)."""
    folder = Path(path)
    return folder.is_dir() and _config_file(folder) is not None and \
        (folder / "configs" / "metadata.json").is_file()


def _read(file: Path) -> dict:
    go_offline()
    from monai.bundle import ConfigParser

    try:
        data = ConfigParser.load_config_file(file)  # json.load or yaml.safe_load: no code
    except Exception as exc:  # noqa: BLE001 - json and yaml raise their own errors
        raise ModelError(f"cannot read the bundle config ({type(exc).__name__}: {exc})",
                         path=file, fix="check the file's JSON/YAML syntax") from None
    if not isinstance(data, dict):
        raise ModelError("the bundle config is not a mapping", path=file,
                         fix="check the bundle's configs folder")
    return data


def _refuse(file: Path, key: str, what: str) -> TrustRequired:
    return TrustRequired(f"{key} {what}, which runs code when MONAI parses it", path=file,
                         fix=TRUST_FIX)


def _check_target(target, key: str, file: Path, locator) -> None:
    from monai.bundle.config_item import ConfigComponent

    if not isinstance(target, str):
        raise _refuse(file, key, "has a _target_ that is not a name")
    name = ConfigComponent({"_target_": target}, locator=locator).resolve_module_name()
    if not str(name).startswith(SAFE_PREFIXES):
        raise _refuse(file, key, f"names _target_ {target!r}, outside MONAI and torch.nn")
    obj = pydoc.locate(name)  # imports a monai / torch.nn module: installed library code only
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        raise _refuse(file, key, f"names _target_ {target!r}, which is not a network class")


def _vet(node, key: str, file: Path, locator, refs: list[str]) -> None:
    """Refuse anything in ``node`` that would run code; collect the ids it references."""
    if isinstance(node, str):
        if node.startswith(("$", "%")):
            kind = "is a $ expression" if node[0] == "$" else "is a % macro (reads another file)"
            raise _refuse(file, key, kind)
        if node.startswith("@"):
            match = _REF.match(node)
            if match is None or match.group(1).startswith(("#", ":")):
                raise _refuse(file, key, f"has a reference {node!r} that cannot be checked")
            refs.append(match.group(1).replace("#", "::"))
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            _vet(item, f"{key}::{i}", file, locator, refs)
        return
    if not isinstance(node, dict):
        return
    if "_mode_" in node and node["_mode_"] != "default":
        raise _refuse(file, key, f"has _mode_ {node['_mode_']!r}")
    if "_target_" in node:
        _check_target(node["_target_"], key, file, locator)
    for sub, item in node.items():
        if sub != "_target_":
            _vet(item, f"{key}::{sub}", file, locator, refs)


def network_config(config: dict, file: Path, *, trust: bool) -> dict:
    """The part of ``config`` that building ``network_def`` reads, checked unless trusted.

    Parameters
    ----------
    config : dict
        The bundle's inference config as read (nothing evaluated).
    file : Path
        The config file, for messages.
    trust : bool
        Whether the whole config may be parsed as MONAI would (imports and expressions).

    Returns
    -------
    dict
        The whole config (trusted), or ``network_def`` and the items it references, with
        every ``pretrained`` argument set to False.

    Raises
    ------
    ModelError
        The config has no ``network_def``.
    TrustRequired
        Untrusted, and building the network would run code (the file and key are named).
    """
    from monai.bundle import ConfigParser

    if _NET not in config:
        raise ModelError(f"the bundle config has no {_NET}", path=file,
                         fix="give a bundle whose inference config defines network_def")
    if trust:
        subset = copy.deepcopy(config)
    else:
        locator = ConfigParser().locator
        subset, todo = {}, [_NET]
        while todo:
            ref = todo.pop()
            top = ref.split("::")[0]
            if top in subset:
                continue
            if top not in config:
                raise ModelError(f"{_NET} refers to @{ref}, which the config does not define",
                                 path=file, fix="fix the bundle's inference config")
            refs: list[str] = []
            _vet(config[top], top, file, locator, refs)
            subset[top] = copy.deepcopy(config[top])
            todo.extend(refs)
    _no_downloads(subset.get(_NET))
    return subset


def _no_downloads(node) -> None:
    """Turn off ``pretrained`` (a download) in every component: the bundle has the weights."""
    if isinstance(node, dict):
        if "pretrained" in node:
            node["pretrained"] = False
        for item in node.values():
            _no_downloads(item)
    elif isinstance(node, list):
        for item in node:
            _no_downloads(item)


def _build(subset: dict, file: Path, folder: Path) -> nn.Module:
    from monai.bundle import ConfigParser

    parser = ConfigParser(subset)
    if "bundle_root" not in subset:
        parser["bundle_root"] = str(folder)
    try:
        net = parser.get_parsed_content(_NET)
    except Exception as exc:  # noqa: BLE001 - a bundle's network can fail in any way
        raise ModelError(f"cannot build {_NET} ({type(exc).__name__}: {exc})", path=file,
                         fix="check network_def in the bundle's inference config") from None
    if not isinstance(net, nn.Module):
        raise ModelError(f"{_NET} built a {type(net).__name__}, not a torch.nn.Module",
                         path=file, fix="check network_def in the bundle's inference config")
    return net


def _metadata(folder: Path) -> tuple[Path, dict]:
    file = folder / "configs" / "metadata.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the bundle metadata ({exc})", path=file,
                         fix="check the file's JSON syntax") from None
    return file, data if isinstance(data, dict) else {}


def _section(meta: dict, kind: str, key: str) -> dict:
    node = (meta.get("network_data_format") or {}).get(kind) or {}
    node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _classes(pred: dict) -> list[str] | None:
    names = pred.get("channel_def")
    if isinstance(names, dict) and names:
        try:
            ordered = sorted(names.items(), key=lambda kv: int(kv[0]))
        except ValueError:
            ordered = list(names.items())
        return [str(v) for _, v in ordered]
    count = pred.get("num_channels")
    return [f"class_{i}" for i in range(count)] if isinstance(count, int) and count > 0 else None


def _dims(image: dict, network: nn.Module, config: dict) -> tuple[int, tuple | None]:
    """Spatial dimensions (2 or 3) and the metadata's spatial shape, when it is plain numbers."""
    shape = image.get("spatial_shape")
    plain = isinstance(shape, list) and len(shape) in (2, 3) and \
        all(isinstance(s, int) and s > 0 for s in shape)
    if plain:
        return len(shape), tuple(shape)
    net_def = config.get(_NET)
    dims = net_def.get("spatial_dims") if isinstance(net_def, dict) else None
    if dims not in (2, 3):
        dims = 3 if any(isinstance(m, nn.Conv3d) for m in network.modules()) else 2
    return dims, None


def _weights(folder: Path, network: nn.Module, trust: bool, device) -> tuple[nn.Module, Path, str]:
    found = next((folder / "models" / n for n in WEIGHT_NAMES
                  if (folder / "models" / n).is_file()), None)
    if found is None:
        raise ModelError("the bundle has no weights", path=folder / "models",
                         fix="put model.pt (a state dict) or model.safetensors in models/")
    if found.suffix == ".ts":
        module, _kind, _shape = load_whole_model(found, trust=trust, device=device)
        return module, found, "torchscript"
    apply_state_dict(network, read_state_dict(found, trust=trust), found, "the bundle's "
                     "network_def")
    return network, found, "module"


def _card(folder: Path) -> tuple[ModelCard | None, dict]:
    """The card beside the bundle, read as a card whose model is the bundle itself."""
    path = (folder / "card.toml").resolve()
    if not path.is_file():
        return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read the model card ({exc})", path=path,
                         fix="fix the card's TOML") from None
    if "architecture" in data or "weights" in data:
        raise ModelError("a card beside a MONAI bundle cannot name an architecture or weights",
                         path=path, fix="remove them: the bundle's network_def and models/ "
                         "are used")
    return card_from_data(path, {**data, "model": "."}), data


def load_bundle(folder: str | Path, *, trust: bool = False,
                device: torch.device | str = "cpu") -> LoadedModel:
    """Load a MONAI bundle folder.

    Parameters
    ----------
    folder : str or Path
        The bundle: ``configs/inference.json|yaml``, ``configs/metadata.json``, ``models/``.
    trust : bool
        Parse the whole config as MONAI would (imports, ``$`` expressions, any ``_target_``),
        and allow TorchScript or pickled weights.
    device : torch.device or str
        Where the model runs.

    Returns
    -------
    LoadedModel
        ``kind`` is ``module`` (or ``torchscript``); a 3-D bundle gives a volume model. A
        transform that cannot be mapped is named in :attr:`LoadedModel.notes` (one line each,
        with the fix), which ``describe()`` records, the CLI prints as ``warning:`` lines and
        the window shows when the model loads.

    Raises
    ------
    ModelError
        A file is missing or unreadable, or the weights do not fit the network.
    TrustRequired
        Untrusted, and the network's config would run code; or the weights are TorchScript.
    """
    folder = Path(folder).resolve()
    file = _config_file(folder)
    if file is None:
        raise ModelError("not a MONAI bundle (no configs/inference.json or .yaml)", path=folder,
                         fix="give the bundle's root folder")
    config = _read(file)
    network = _build(network_config(config, file, trust=trust), file, folder)
    meta_file, meta = _metadata(folder)
    image, pred = _section(meta, "inputs", "image"), _section(meta, "outputs", "pred")
    dims, shape = _dims(image, network, config)
    channels = image.get("num_channels") if isinstance(image.get("num_channels"), int) else 1
    spec, lines = bundle_input(config, dims=dims, channels=channels, size=shape, file=file)
    card, raw = _card(folder)
    if card is not None and card.input is not None:
        spec, lines = card.input, []
    module, weights, kind = _weights(folder, network, trust, device)
    task = "segmentation" if pred.get("format") == "segmentation" else "classification"
    files = {str(p): sha256_file(p) for p in (file, meta_file, weights)}
    if card is not None:
        files[str(card.path)] = sha256_file(card.path)
    classes = (card and card.classes) or _classes(pred) or _infer_classes(
        module.to(device), spec, device, None, task)
    return LoadedModel(
        module, name=card.name if card else str(meta.get("name") or folder.name),
        classes=classes, input=spec,
        output=card.output if card and "output" in raw else bundle_output(config), kind=kind,
        device=device, files=files, sha256=files[str(weights)],
        card_path=str(card.path) if card else None,
        card_default_layer=card.default_layer if card else None,
        intended_use=card.intended_use if card else None,
        task=card.task if card and "task" in raw else task,
        threshold=card.threshold if card else DEFAULT_THRESHOLD, notes=lines,
    )
