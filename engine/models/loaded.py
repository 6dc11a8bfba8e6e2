"""A loaded, preprocessing-aware classifier: :func:`load_model` and :class:`LoadedModel`.

``load_model`` accepts ``demo`` / ``demo-biased``, a model card (``.toml`` or a folder holding
``card.toml``), a bare ``torchvision:<name>@<weights>``, ``timm:<name>@<weights>`` or
``xrv:<weights name>@<weights>``, a Hugging Face ``save_pretrained`` folder, a timm hub
folder (``save_for_hf``), a ``torch.export``
``.pt2`` file, a TorchScript file, and (with ``trust=True`` only) a pickled full ``nn.Module``.
The SHA-256 of every file read is recorded in :attr:`LoadedModel.files`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from engine.core.device import resolve_device
from engine.core.errors import ModelError, UsageError
from engine.core.hashing import sha256_file
from engine.core.resources import MODELS
from engine.models.adapters import adapt_output
from engine.models.card import ModelCard, default_spec, read_card
from engine.models.findings import DEFAULT_THRESHOLD
from engine.models.hf_source import is_hf_folder, read_hf_folder
from engine.models.intended_use import IntendedUse, UseCheck, check_input
from engine.models.layers import Discovery, LayerInfo, discover_layers
from engine.models.layers import to_activation_map as _to_map
from engine.models.loaders import (
    apply_state_dict,
    build_architecture,
    load_whole_model,
    read_state_dict,
)
from engine.models.preprocess import InputSpec, map_to_image, normalise_spec, prepare_array
from engine.models.sources import head_size, source_defaults, source_state
from engine.models.timm_source import is_timm_folder, read_timm_folder
from engine.models.volume_preprocess import (
    is_volume_spec,
    model_grid,
    normalise_volume_spec,
    prepare_volume,
)

if TYPE_CHECKING:
    from engine.studies.image import Image

__all__ = ["DEMO_MODELS", "InputSpec", "LayerInfo", "LoadedModel", "load_model", "model_dir"]


DEMO_MODELS = ("demo", "demo-biased", "demo-seg", "demo-3d", "demo-vit", "demo-vit-biased")
TORCHSCRIPT_REASON = (
    "TorchScript models expose no Python submodules to hook, so activation and gradient "
    "methods cannot run; use a model-agnostic method (occlusion, rise) or load the model "
    "from a card with its architecture and weights"
)


def model_dir(name: str) -> Path:
    """Return the folder of a built-in demo model (``demo`` or ``demo-biased``)."""
    return MODELS / name


class LoadedModel:
    """A classifier ready for explanation: module, classes, preprocessing and layers.

    Build one with :func:`load_model`, or wrap an in-memory module with :meth:`from_module`.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        classes: list[str],
        input: InputSpec,
        output: str = "softmax",
        kind: str = "module",
        device: torch.device | str = "cpu",
        files: dict[str, str] | None = None,
        sha256: str = "",
        card_path: str | None = None,
        output_key: str | None = None,
        card_default_layer: str | None = None,
        intended_use: IntendedUse | None = None,
        task: str = "classification",
        threshold: float = DEFAULT_THRESHOLD,
        notes: list[str] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.name = name
        self.classes = list(classes)
        self.input = normalise_volume_spec(input) if is_volume_spec(input) else \
            normalise_spec(input)
        self.output = output
        self.kind = kind
        self.files = dict(files or {})
        self.sha256 = sha256
        self.card_path = card_path
        self.output_key = output_key
        self._card_default_layer = card_default_layer
        self.intended_use = intended_use
        self.task = task
        #: Sigmoid (multi-label) models: the probability at or above which a class is a finding.
        self.threshold = float(threshold)
        #: One line each about how the model was read that the user should know (a bundle
        #: transform Lucida could not map, say); shown when the model loads.
        self.notes = list(notes or [])
        self.layer_methods_reason = TORCHSCRIPT_REASON if kind == "torchscript" else None
        #: Why no input gradients can be taken (an ONNX graph run by onnxruntime), or None.
        self.gradient_methods_reason: str | None = None

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        classes: list[str],
        input: InputSpec,
        name: str = "model",
        output: str = "softmax",
        device: str = "cpu",
        output_key: str | None = None,
        task: str = "classification",
        threshold: float = DEFAULT_THRESHOLD,
    ) -> LoadedModel:
        """Wrap an in-memory module (tests, notebooks); no files are recorded."""
        return cls(
            module, name=name, classes=classes, input=input, output=output, device=device,
            output_key=output_key, task=task, threshold=threshold,
        )

    # --- layers -----------------------------------------------------------------------------
    @cached_property
    def _discovery(self) -> Discovery:
        if self.layer_methods_reason is not None:
            return Discovery(layers=[], layouts={}, default=None)
        shape = (self.input.channels, *self.input.size)
        return discover_layers(self.module, shape, self.device, self.output_key, self.task)

    def layers(self) -> list[LayerInfo]:
        """Candidate layers in execution order, found by a dry forward pass (cached)."""
        return list(self._discovery.layers)

    @property
    def default_layer(self) -> str | None:
        """The card's ``[layers] default``, else the last spatial layer before global pooling."""
        if self._card_default_layer:
            return self._card_default_layer
        return self._discovery.default

    def submodule(self, name: str) -> nn.Module:
        """Return the submodule called ``name``; UsageError listing candidates otherwise."""
        try:
            return self.module.get_submodule(name)
        except AttributeError:
            names = ", ".join(info.name for info in self.layers()[-8:])
            raise UsageError(
                f"model {self.name} has no layer {name!r}",
                fix=f"use one of the candidate layers (python main.py layers), e.g. {names}",
            ) from None

    def to_activation_map(self, name: str, output) -> torch.Tensor:
        """Turn a forward-hook output of layer ``name`` into (N, C, h, w).

        Token layers are reshaped to their grid (a class token dropped); channels-last outputs
        are permuted; tuples are unwrapped to their first tensor.
        """
        layout = self._discovery.layouts.get(name)
        if layout is None:
            raise UsageError(
                f"{name!r} is not a spatial or token layer of model {self.name}",
                fix="list candidate layers with: python main.py layers --model ...",
            )
        return _to_map(output, layout, self.input.size)

    # --- prediction ---------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on (N, C, H, W) and return (N, K) logits (output adapter applied).

        A segmentation model returns (N, K, H', W') pixel logits.
        """
        out = adapt_output(self.module(x.to(self.device)), self.output_key, self.task)
        if out.shape[1] != len(self.classes):
            raise ModelError(
                f"model {self.name} returned {out.shape[1]} outputs but its card lists "
                f"{len(self.classes)} classes",
                path=self.card_path,
                fix="make classes in the model card match the model's outputs",
            )
        return out

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (single-label) or sigmoid (multi-label) per the card."""
        # The class axis is 1 for (N, K) logits and for (N, K, H, W) pixel logits alike.
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.softmax(logits, dim=1)

    @property
    def is_volumetric(self) -> bool:
        """Whether the model reads volumes (its card states a 3-D ``[input]`` grid)."""
        return is_volume_spec(self.input)

    def preprocess(self, image: Image, frame: int = 0) -> torch.Tensor:
        """Return ``image`` as model input: (1, C, H, W) float32 on :attr:`device`.

        The image is windowed per the card (DICOM), scaled to [0, 1], matched to the model's
        channels (grey repeated to RGB; RGB to grey by luminance), resized or letterboxed, and
        normalised with the card's mean and std. A 3-D model takes a volume and returns
        (1, C, D, H, W): oriented, resampled to the card's spacing, windowed and cropped or
        padded (see :mod:`engine.models.volume_preprocess`).

        Raises
        ------
        UsageError
            A 2-D image for a 3-D model, or a volume for a 2-D model.
        """
        volume = getattr(image, "kind", None) == "volume"
        if self.is_volumetric or volume:
            if not (self.is_volumetric and volume):
                raise UsageError(
                    f"model {self.name} reads {'volumes' if self.is_volumetric else '2-D images'}"
                    f" but {getattr(image, 'path', 'the input')} is "
                    f"{'a volume' if volume else 'a 2-D image'}",
                    fix="give a 3-D model a series folder or NIfTI file" if self.is_volumetric
                    else "explain the volume slice by slice (--slices all)")
            return prepare_volume(image, self.input)[0].to(self.device)
        arr = image.model_input(frame, window=self.input.window)
        return prepare_array(arr, self.input).to(self.device)

    def model_grid(self, volume):
        """Where this 3-D model's input lies in ``volume`` (:class:`ModelGrid`)."""
        return model_grid(volume.affine, volume.shape, self.input)

    def map_to_image(self, heat: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
        """Bring an (h, w) map over the model input back to the image's (H, W) grid."""
        return map_to_image(heat, self.input, image_shape)

    def resolve_target(self, target: str | int, logits: torch.Tensor | None = None) -> int:
        """Turn ``"top"``, an index, or a class name into a class index.

        ``"top"`` is the argmax of ``logits`` (not of the probabilities, which tie when
        saturated), so it needs them.

        Raises
        ------
        UsageError
            Naming the valid choices when ``target`` matches none.
        """
        if isinstance(target, str) and target.strip().lower() == "top":
            if logits is None:
                raise UsageError("target top needs the model's output")
            return int(torch.as_tensor(logits).reshape(-1).argmax())
        if isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        try:
            index = int(target)
        except (TypeError, ValueError):
            index = None
        if index is not None and 0 <= index < len(self.classes):
            return index
        raise UsageError(
            f"target {target!r} is not a class of model {self.name}",
            fix=f"use top, an index 0..{len(self.classes) - 1}, or one of: "
            + ", ".join(self.classes),
        )

    def final_linear(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Return the weights and bias of the last linear layer if it produces the logits.

        Whether the layer really reads globally average-pooled features is checked per layer
        by the CAM explainer, against the captured logits. Not cached: the metrics swap
        ``module`` for randomised copies.
        """
        if self.kind == "torchscript":
            return None, None
        last = None
        for sub in self.module.modules():
            if isinstance(sub, nn.Linear):
                last = sub
        if last is None or last.out_features != len(self.classes):
            return None, None
        bias = None if last.bias is None else last.bias.detach()
        return last.weight.detach(), bias

    def check_use(self, image: Image, frame: int = 0, x: torch.Tensor | None = None) -> UseCheck:
        """Check ``image`` against the card's intended use (see :mod:`engine.models.intended_use`).

        The model input (``x`` when the caller already has it) is compared with the training
        statistics only when the card has them.
        """
        use = self.intended_use
        if use is not None and use.input_mean is not None and x is None:
            x = self.preprocess(image, frame)
        return check_input(use, image, x, self.input)

    def describe(self) -> dict:
        """Identity of the model for results: name, hashes, classes, output, threshold, task,
        kind, card and the load notes."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "files": dict(self.files),
            "classes": list(self.classes),
            "output": self.output,
            "threshold": self.threshold,
            "task": self.task,
            "kind": self.kind,
            "card": self.card_path,
            "notes": list(self.notes),
        }


def load_model(spec: str | Path, *, trust: bool = False, device: str = "cpu") -> LoadedModel:
    """Load a model for explanation.

    Parameters
    ----------
    spec : str or Path
        ``demo`` | ``demo-biased`` | a card (``.toml``, or a folder with ``card.toml``) |
        ``torchvision:<name>@<weights file>`` | ``timm:<name>@<weights file>`` |
        ``xrv:<weights name>@<weights file>`` | a Hugging Face ``save_pretrained`` folder (a
        ``card.toml`` inside overrides what the folder says) | a timm hub folder (``config.json``
        naming an ``architecture``, as ``save_for_hf`` writes it) | a ``.pt2`` torch.export file |
        a TorchScript file | a pickled ``nn.Module`` (needs ``trust``).
    trust : bool
        Allow files that run Python code when loaded (pickles, ``python:`` architectures, a
        Hugging Face config with ``auto_map``).
    device : str
        ``cpu``, ``cuda``, ``cuda:1``, ``mps``, ..., or ``auto`` (see
        :func:`engine.core.device.resolve_device`).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        The file or card cannot be loaded; one line naming the file and the fix.
    TrustRequired
        The file would run code and ``trust`` is False.
    """
    dev = resolve_device(device)
    text = str(spec)
    if text in DEMO_MODELS:
        return _from_card(read_card(model_dir(text) / "card.toml"), trust, dev)
    if text.startswith(BARE_KINDS) and not Path(text).exists():
        return _bare_architecture(text, trust, dev)
    path = Path(spec)
    if is_hf_folder(path):
        inner = path / "card.toml"
        card = read_card(inner, defaults={"model": "."}) if inner.is_file() else None
        if card is not None and "architecture" in card.stated:
            # The card builds its own network (from weights that may sit in the folder).
            return _from_card(read_card(inner), trust, dev)
        if is_timm_folder(path):
            return _from_timm_folder(path, trust, dev)
        return _from_hf(path, card, trust, dev)
    from engine.models import monai_bundle, onnx_model  # they build LoadedModel: import late

    if monai_bundle.is_bundle(path):
        return monai_bundle.load_bundle(path, trust=trust, device=dev)
    if path.suffix == ".onnx":
        return onnx_model.load_onnx(path, device=dev)
    if path.is_dir() and (path / "card.toml").is_file():
        path = path / "card.toml"
    if not path.exists():
        raise ModelError(
            "model not found", path=path,
            fix="give demo, demo-biased, a model card (.toml), a .pt2/.pt file, a Hugging Face "
            "folder, or torchvision:/timm:/xrv:<name>@<weights>",
        )
    if path.suffix == ".toml":
        return _from_card(read_card(path), trust, dev)
    module, kind, input_shape = load_whole_model(path.resolve(), trust=trust, device=dev)
    digest = sha256_file(path)
    spec_in = (
        default_spec(input_shape[0], input_shape[1:])
        if input_shape and input_shape[0] in (1, 3)
        else default_spec()
    )
    return LoadedModel(
        module, name=path.stem, classes=_infer_classes(module, spec_in, dev, None),
        input=spec_in, kind=kind, device=dev, files={str(path.resolve()): digest}, sha256=digest,
    )


def _infer_classes(module, spec: InputSpec, device, output_key,
                   task: str = "classification") -> list[str]:
    """Name classes ``class_0..`` after the number of outputs of a dry run."""
    x = torch.zeros((1, spec.channels, *spec.size), device=device)
    try:
        with torch.inference_mode():
            k = adapt_output(module.eval()(x), output_key, task).shape[1]
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model rejected the assumed input
        raise ModelError(
            f"a dry run on a {spec.channels}x{spec.size[0]}x{spec.size[1]} input failed "
            f"({type(exc).__name__}: {exc})",
            fix="write a model card with [input] size and channels and classes",
        ) from None
    return [f"class_{i}" for i in range(k)]


#: Architecture kinds that open bare, as ``<kind>:<name>@<weights file>``.
BARE_KINDS = ("torchvision:", "timm:", "xrv:")


def _bare_architecture(text: str, trust: bool, device) -> LoadedModel:
    arch, _, weights = text.partition("@")
    if not weights:
        raise UsageError(
            f"{arch} needs weights", fix=f"write {arch}@path/to/weights.pth or use a model card"
        )
    wpath = Path(weights).resolve()
    state = source_state(arch, read_state_dict(wpath, trust=trust))
    num_classes = head_size(arch, state)
    module = build_architecture(arch, {}, num_classes, base=Path.cwd(), trust=trust, card=None)
    apply_state_dict(module, state, wpath, arch)
    digest = sha256_file(wpath)
    found = source_defaults(arch, module, {})
    spec = found.input or default_spec()
    classes = found.classes or (
        [f"class_{i}" for i in range(num_classes)]
        if num_classes
        else _infer_classes(module, spec, device, None)
    )
    return LoadedModel(
        module, name=arch.partition(":")[2], classes=classes, input=spec,
        output=found.output or "softmax", kind="module", device=device,
        files={str(wpath): digest}, sha256=digest,
    )


def _from_timm_folder(folder: Path, trust: bool, device) -> LoadedModel:
    """A timm hub folder (``config.json`` naming an ``architecture``, and its weights)."""
    found = read_timm_folder(folder, trust=trust)
    files = {str(p): sha256_file(p) for p in (folder / "config.json", found.weights)}
    return LoadedModel(
        found.module, name=folder.resolve().name, classes=found.classes, input=found.input,
        kind="module", device=device, files=files, sha256=files[str(found.weights)],
    )


def _from_hf(folder: Path, card: ModelCard | None, trust: bool, device) -> LoadedModel:
    """A Hugging Face folder, with what a card states taking precedence."""
    hf = read_hf_folder(folder, trust=trust)
    stated = card.stated if card is not None else frozenset()
    files = dict(hf.files)
    if card is not None:
        files[str(card.path)] = sha256_file(card.path)
    model = LoadedModel(
        hf.module, name=card.name if "name" in stated else folder.resolve().name,
        classes=card.classes if "classes" in stated else hf.classes,
        input=card.input if "input" in stated else hf.input,
        output=card.output if "output" in stated else hf.output, kind="module", device=device,
        files=files, sha256=files[str(hf.weights)],
        card_path=str(card.path) if card is not None else None,
        output_key=card.output_key if card is not None else None,
        card_default_layer=card.default_layer if card is not None else None,
        intended_use=card.intended_use if card is not None else None,
        threshold=card.threshold if card is not None else DEFAULT_THRESHOLD,
    )
    if model._card_default_layer:
        model.submodule(model._card_default_layer)  # a typo in the card fails here
    return model


def _from_card(card: ModelCard, trust: bool, device) -> LoadedModel:
    if card.model is not None and is_hf_folder(card.model):
        return _from_hf(card.model, card, trust, device)
    if card.model is not None and card.model.suffix == ".onnx":
        from engine.models.onnx_model import load_onnx  # it builds LoadedModel: import late

        return load_onnx(card.model, device=device, card=card)
    files = {str(card.path): sha256_file(card.path)}
    found = None
    if card.model is not None:
        module, kind, input_shape = load_whole_model(card.model, trust=trust, device=device)
        target = card.model
    else:
        state = None
        if card.classes:
            n = len(card.classes)
        elif card.architecture.startswith(("timm:", "xrv:")):
            # A library architecture without classes in the card takes its head size from the
            # weights (xrv: from its pathologies), as a bare timm:NAME@weights does.
            state = source_state(card.architecture, read_state_dict(card.weights, trust=trust))
            n = head_size(card.architecture, state)
        else:
            n = None
        module = build_architecture(
            card.architecture, card.architecture_args, n, base=card.path.parent, trust=trust,
            card=card.path,
        )
        if state is None:
            state = source_state(card.architecture, read_state_dict(card.weights, trust=trust))
        apply_state_dict(module, state, card.weights, card.architecture)
        kind, input_shape, target = "module", None, card.weights
        found = source_defaults(card.architecture, module, card.architecture_args)
    digest = sha256_file(target)
    files[str(target)] = digest
    spec = card.input or (found.input if found is not None else None)
    if spec is None:
        spec = default_spec(*(
            (input_shape[0], input_shape[1:]) if input_shape and input_shape[0] in (1, 3) else ()
        ))
    module = module.to(device).eval()
    classes = card.classes or (found.classes if found is not None else None) or _infer_classes(
        module, spec, device, card.output_key, card.task)
    output = card.output
    if "output" not in card.stated and found is not None and found.output:
        output = found.output
    model = LoadedModel(
        module, name=card.name, classes=classes, input=spec, output=output, kind=kind,
        device=device, files=files, sha256=digest, card_path=str(card.path),
        output_key=card.output_key, card_default_layer=card.default_layer,
        intended_use=card.intended_use, task=card.task, threshold=card.threshold,
    )
    if card.default_layer and model.layer_methods_reason is None:
        model.submodule(card.default_layer)  # a typo in the card fails here, not mid-explain
    return model
