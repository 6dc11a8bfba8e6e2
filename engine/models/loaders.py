"""Building architectures and reading model files without trusting them blindly.

Safe by default: state_dicts load with ``torch.load(weights_only=True)`` or from safetensors,
TorchScript and ``torch.export`` archives hold no arbitrary Python. Two things run the user's
Python and therefore need explicit trust (``--trust-model`` or the GUI's confirmation): a pickled
full ``nn.Module`` and a card whose architecture is ``python:file.py:fn``. Untrusted pickles are
recognised by reading their opcodes with :mod:`pickletools`, which never executes them.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from engine.core.errors import ModelError, TrustRequired
from engine.demo.arch import DEMO_ARCHITECTURES

TRUST_FIX = "pass --trust-model (or confirm in the GUI) only if you trust where it came from"


#: The torchvision model families a card can name: their builders take ``num_classes``.
TORCHVISION_FAMILIES = ("", "segmentation", "video")


def known_architectures() -> list[str]:
    """The architecture strings :func:`build_architecture` builds without user code.

    The demo architectures, then ``torchvision:<name>`` for every classification,
    segmentation and video builder of the installed torchvision, ``xrv:<weights name>`` for
    TorchXRayVision's DenseNets and ``timm:<name>`` for every timm model, each sorted. A card
    may also name ``python:<file.py>:<function>``, which is not listed: any file can hold one.

    Returns
    -------
    list of str
        E.g. ``["lucida:demo_cnn", ..., "torchvision:resnet18", ..., "timm:convnext_tiny"]``.
    """
    import torchvision

    from engine.models.timm_source import timm_names
    from engine.models.xrv_source import xrv_names

    names = set()
    for family in TORCHVISION_FAMILIES:
        module = getattr(torchvision.models, family) if family else torchvision.models
        names.update(torchvision.models.list_models(module=module))
    return [*DEMO_ARCHITECTURES, *(f"torchvision:{name}" for name in sorted(names)),
            *(f"xrv:{name}" for name in xrv_names()), *(f"timm:{name}" for name in timm_names())]


def build_architecture(
    spec: str, args: dict, num_classes: int | None, *, base: Path, trust: bool, card: Path | None
) -> nn.Module:
    """Build an untrained network from an architecture string.

    Parameters
    ----------
    spec : str
        ``lucida:demo_cnn``, ``torchvision:<name>``, ``timm:<name>``, ``xrv:<weights name>``
        or ``python:<file.py>:<function>``.
    args : dict
        Keyword arguments for the builder (the card's ``[architecture_args]``).
    num_classes : int or None
        Used as ``num_classes`` when ``args`` does not give it.
    base : Path
        Folder that a relative ``python:`` file is resolved against.
    trust : bool
        Whether running the user's Python file is allowed.
    card : Path or None
        The card, for error messages.

    Returns
    -------
    torch.nn.Module
    """
    kind, _, rest = spec.partition(":")
    if spec in DEMO_ARCHITECTURES:
        builder = DEMO_ARCHITECTURES[spec]
    elif kind == "torchvision" and rest:
        builder = _torchvision(rest, card)
    elif kind == "python" and rest:
        return _python_builder(rest, args, num_classes, base, trust, card)
    elif kind == "timm" and rest:
        from engine.models.timm_source import build_timm

        return build_timm(rest, args, num_classes, card)
    elif kind == "xrv" and rest:
        from engine.models.xrv_source import build_xrv

        return build_xrv(rest, args, num_classes, card)
    else:
        raise ModelError(
            f"unknown architecture {spec!r}",
            path=card,
            fix="use torchvision:<name>, timm:<name>, xrv:<name>, python:<file.py>:<function> "
            "or one of "
            + ", ".join(DEMO_ARCHITECTURES),
        )
    args = _builder_args(builder, args, num_classes)
    try:
        return builder(**args)
    except TypeError as exc:
        raise ModelError(
            f"cannot build {spec} with arguments {args} ({exc})",
            path=card,
            fix="check [architecture_args] in the model card",
        ) from None


def _builder_args(builder, args: dict, num_classes: int | None) -> dict:
    """``args`` plus ``num_classes`` when it is known and the builder can take it."""
    args = dict(args)
    if num_classes is None or "num_classes" in args:
        return args
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        # No signature to read (a builtin): offer the count, as a builder usually wants it.
        params = None
    if params is None or any(
        (p.name == "num_classes" and p.kind is not p.POSITIONAL_ONLY) or p.kind is p.VAR_KEYWORD
        for p in params
    ):
        args["num_classes"] = num_classes
    return args


def _torchvision(name: str, card: Path | None):
    import torchvision

    if name not in torchvision.models.list_models():
        raise ModelError(
            f"torchvision has no model named {name!r}",
            path=card,
            fix="use a name from torchvision.models.list_models(), e.g. resnet18",
        )
    # Random init only: weights come from the user's file, never from a download.
    builder = torchvision.models.get_model_builder(name)
    defaults = {}
    if "weights_backbone" in inspect.signature(builder).parameters:
        # Segmentation and detection builders fetch an ImageNet backbone unless told not to;
        # Lucida never downloads: the card's weights replace everything.
        defaults["weights_backbone"] = None

    def build(**args) -> nn.Module:
        # weights=None is fixed, not a default: a card's own "weights" argument is refused.
        return builder(weights=None, **{**defaults, **args})

    return build


def _python_builder(rest: str, args: dict, num_classes: int | None, base: Path, trust: bool,
                    card: Path | None):
    file_part, _, fn_name = rest.rpartition(":")
    if not file_part or not fn_name:
        raise ModelError(
            f"python:{rest} must be python:<file.py>:<function>", path=card, fix="fix the card"
        )
    file = (base / file_part).resolve()
    if not trust:
        raise TrustRequired(
            f"the card runs Python code from {file.name} to build the model", path=card,
            fix=TRUST_FIX,
        )
    if not file.is_file():
        raise ModelError(f"{file} not found", path=card, fix="check the python: path in the card")
    spec = importlib.util.spec_from_file_location(f"lucida_user_model_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code can fail in any way
        raise ModelError(
            f"{file.name} failed to import ({type(exc).__name__}: {exc})", path=card,
            fix="run that file on its own to debug it",
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ModelError(f"{file.name} has no function {fn_name!r}", path=card, fix="fix the card")
    args = _builder_args(fn, args, num_classes)
    try:
        built = fn(**args)
    except Exception as exc:  # noqa: BLE001 - user code can fail in any way
        raise ModelError(
            f"{file.name}:{fn_name} failed to build the model ({type(exc).__name__}: {exc})",
            path=card, fix="check [architecture_args] in the card, or run the builder on its own",
        ) from None
    if not isinstance(built, nn.Module):
        raise ModelError(
            f"{file.name}:{fn_name} returned {type(built).__name__}, not a torch.nn.Module",
            path=card, fix="return the network from the builder function",
        )
    return built


def file_format(path: Path) -> str:
    """Classify a model file: ``safetensors`` | ``export`` | ``torchscript`` | ``torch``."""
    if path.suffix == ".safetensors":
        return "safetensors"
    if zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError):
            return "torch"
        if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
            return "export"
        if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
    if path.suffix == ".pt2":
        return "export"
    return "torch"


def _is_pickle(path: Path) -> bool:
    """Whether the file is a well-formed pickle stream (zipped or bare), read without running."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                entry = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if entry is None:
                    return False
                data = zf.read(entry)
        else:
            data = path.read_bytes()
        for _op in pickletools.genops(io.BytesIO(data)):
            pass
        return True
    except Exception:  # noqa: BLE001 - anything unparsable is simply not a pickle
        return False


def read_torch_file(path: Path, *, trust: bool):
    """Load a ``torch.save`` file: tensors only unless trusted.

    Returns
    -------
    object
        A state_dict (or checkpoint dict) when safe; any object when ``trust`` is True.

    Raises
    ------
    TrustRequired
        When the file is a pickle of Python objects and ``trust`` is False.
    ModelError
        When the file is not a readable torch file (random bytes, truncated).
    """
    try:
        with warnings.catch_warnings():
            # torch warns about bare pickles before refusing them; the refusal says it all.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_pickle(path):
            raise _unreadable(path, exc) from None
        if not trust:
            raise TrustRequired(
                "is a pickled Python object that can run code when loaded", path=path,
                fix=TRUST_FIX,
            ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        raise _unreadable(path, exc) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - the trusted pickle itself failed
        raise ModelError(
            f"the trusted pickle failed to load ({type(exc).__name__}: {exc})", path=path,
            fix="load it in Python to debug; classes it needs must be importable",
        ) from None


def _unreadable(path: Path, exc: Exception) -> ModelError:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        # torch's preamble about weights_only says nothing about this file; keep its cause.
        cause = [ln for ln in lines[1:] if not ln.startswith(("Please file", "Check the doc"))]
        lines = cause or [type(exc).__name__]
    detail = lines[0][:120] if lines else type(exc).__name__
    return ModelError(
        f"not a readable PyTorch/safetensors file ({detail})", path=path,
        fix="the file is corrupt or truncated; download or save it again",
    )


def read_state_dict(path: Path, *, trust: bool = False) -> dict[str, torch.Tensor]:
    """Read weights as a flat ``name -> tensor`` dict.

    Checkpoint dicts that wrap the weights under ``state_dict`` / ``model_state_dict`` /
    ``model`` are unwrapped, and a ``module.`` prefix (from DataParallel) is removed.
    """
    if not path.is_file():
        raise ModelError("weights file not found", path=path, fix="check the card's weights path")
    if file_format(path) == "safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type
            raise _unreadable(path, exc) from None
    else:
        state = read_torch_file(path, trust=trust)
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(
            "does not hold a state_dict (a mapping of names to tensors)", path=path,
            fix="save model.state_dict() with torch.save or safetensors",
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def apply_state_dict(module: nn.Module, state: dict, path: Path, arch: str) -> None:
    """Load ``state`` into ``module`` strictly, explaining any mismatch in one line."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise ModelError(
            f"the weights do not fit {arch}: {'; '.join(parts)}", path=path,
            fix="check the card's architecture, [architecture_args] and number of classes",
        )
    module.load_state_dict(state, strict=True)


def load_whole_model(path: Path, *, trust: bool, device: torch.device):
    """Load a file that holds a whole model.

    Returns
    -------
    tuple
        ``(module, kind, input_shape)``; kind is ``torchscript`` | ``export`` | ``pickle``;
        ``input_shape`` is ``(C, H, W)`` when the file records it (torch.export), else None.
    """
    if not path.is_file():
        raise ModelError("model file not found", path=path, fix="check the path")
    fmt = file_format(path)
    if fmt in ("torchscript", "export") and not trust:
        # PyTorch's security policy counts both archive formats as code: loading runs
        # serialised programs (and torch.export archives may unpickle constants).
        raise TrustRequired(
            f"is a {'TorchScript' if fmt == 'torchscript' else 'torch.export'} archive, which "
            "PyTorch counts as code", path=path, fix=TRUST_FIX,
        )
    if fmt == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
                return torch.jit.load(str(path), map_location=device), "torchscript", None
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, exc) from None
    if fmt == "export":
        return _load_export(path, device)
    if fmt == "safetensors":
        raise ModelError(
            "holds weights only", path=path,
            fix="write a model card naming the architecture and these weights",
        )
    obj = read_torch_file(path, trust=trust)
    if isinstance(obj, nn.Module):
        return obj.to(device), "pickle", None
    raise ModelError(
        "holds weights (a state_dict), not a whole model", path=path,
        fix="write a model card naming the architecture, or use torchvision:<name>@" + path.name,
    )


def _load_export(path: Path, device: torch.device):
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, exc) from None
    input_shape = None
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" else None
        if node.name in user_inputs and val is not None and len(val.shape) == 4:
            input_shape = tuple(int(s) for s in val.shape[1:])
            break
    # Unflattening restores the submodule tree, so hooks and layer discovery work.
    try:
        module = torch.export.unflatten(program)
    except Exception:  # noqa: BLE001 - fall back to the flat graph (no layer hooks)
        module = program.module()
    return module.to(device), "export", input_shape
