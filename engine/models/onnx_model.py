"""ONNX files: a model handed over as ``model.onnx``, run with onnxruntime or as converted torch.

Which path serves forward passes is decided once, when the file is loaded:

- **Converted** (the usual case): onnx2torch turns the graph into a ``torch.fx`` module, which is
  checked against onnxruntime on a dry input, one image and a batch of two (the outputs agree
  within :data:`TOLERANCE` of the output's peak). The converted module then serves *every*
  forward pass: predictions, captures (hooks, gradients) and the perturbation scorer. One
  network for all methods means a map's baseline score and its perturbed scores come from the
  same numbers, and the scorer's batching and devices apply as to any torch model.
- **onnxruntime** (when onnx2torch cannot convert the graph, or the converted module disagrees
  with onnxruntime): :class:`OnnxRuntimeModule` runs the file with onnxruntime on the CPU, and
  only the model-agnostic methods (occlusion, RISE, LIME, KernelSHAP) can run.
  :attr:`LoadedModel.layer_methods_reason` and :attr:`LoadedModel.gradient_methods_reason`
  say why in one line, and every activation or input-gradient method is refused with it up
  front (``Explainer.unavailable_reason``), before anything runs.

Exporters share equal weights through ``Identity`` nodes, which onnx2torch cannot read as a
convolution's weights; they are folded away first. ONNX files hold no Python, so no path needs
trust. The graph's input names the model's channels and size: (N, C, H, W) with C 1 or 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.core.errors import ModelError
from engine.core.hashing import sha256_file
from engine.models.card import DEFAULT_THRESHOLD, ModelCard, default_spec
from engine.models.loaded import LoadedModel

__all__ = ["TOLERANCE", "OnnxRuntimeModule", "load_onnx"]

#: Largest difference between the converted module and onnxruntime, relative to the output's
#: peak (at least 1), for the converted module to serve forward passes.
TOLERANCE = 1e-4
#: The opset onnx2torch reads best; newer graphs are converted down to it when it fails on them.
CONVERT_OPSET = 17
_INPUT_FIX = ("export the model with one image input (N, C, H, W), C = 1 or 3, e.g. "
              "torch.onnx.export(model, torch.zeros(1, 3, 224, 224), 'model.onnx')")


class OnnxRuntimeModule(nn.Module):
    """An ONNX file run by onnxruntime, as a module with no layers and no gradients.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        The file's session.
    input_name : str
        The graph's image input.
    batch : int or None
        The fixed batch size of the graph, or None when it takes any.
    reason : str
        Why gradients cannot be taken (raised when a pass needs them).
    """

    def __init__(self, session, input_name: str, batch: int | None, reason: str) -> None:
        super().__init__()
        self.session = session
        self.input_name = input_name
        self.batch = batch
        self.reason = reason

    def __deepcopy__(self, memo):
        # The weights live inside onnxruntime's session: a copy could not be randomised, and a
        # randomisation check on an unchanged copy would wrongly fail the map.
        raise ModelError("the model runs with onnxruntime, whose weights Lucida cannot copy or "
                         "randomise", fix="the randomisation check needs a model onnx2torch "
                         "converts, or the torch original")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the graph's first output for (N, C, H, W) ``x``, on ``x``'s device."""
        if x.requires_grad and torch.is_grad_enabled():
            raise ModelError(self.reason)
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        step = self.batch or max(1, arr.shape[0])
        outs = [self.session.run(None, {self.input_name: arr[i : i + step]})[0]
                for i in range(0, arr.shape[0], step)]
        return torch.from_numpy(np.concatenate(outs, 0)).to(x.device)


def _read(path: Path):
    import onnx

    try:
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise many types
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else \
            type(exc).__name__
        raise ModelError(f"not a readable ONNX model ({detail})", path=path,
                         fix="the file is corrupt or not ONNX; export or download it again") \
            from None
    return graph


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are not the user's to act on
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        detail = str(exc).strip().splitlines()[0][:160]
        raise ModelError(f"onnxruntime cannot run the model ({detail})", path=path,
                         fix="export the model again with a supported opset") from None


def _image_input(session, path: Path) -> tuple[str, int | None, int, tuple | None]:
    """The image input: name, fixed batch (or None), channels and (H, W) when fixed."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelError(f"the ONNX model has {len(inputs)} inputs ({names}), not one image",
                         path=path, fix=_INPUT_FIX)
    item = inputs[0]
    shape = list(item.shape)
    channels = shape[1] if len(shape) == 4 else None
    if len(shape) != 4 or channels not in (1, 3) or "float" not in item.type:
        raise ModelError(
            f"the ONNX model's input {item.name!r} is {item.type} of shape "
            f"{[s if isinstance(s, int) else str(s) for s in shape]}, not an image "
            "(N, C, H, W) with 1 or 3 channels", path=path, fix=_INPUT_FIX)
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    size = tuple(shape[2:]) if all(isinstance(s, int) and s > 0 for s in shape[2:]) else None
    return item.name, batch, int(channels), size


def _fold_shared_weights(graph) -> None:
    """Replace ``Identity`` nodes that copy an initializer with the initializer itself."""
    inits = {i.name for i in graph.graph.initializer}
    outputs = {o.name for o in graph.graph.output}
    alias, kept = {}, []
    for node in graph.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    if not alias:
        return
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.graph.node[:]
    graph.graph.node.extend(kept)


def _convert(graph) -> nn.Module:
    from onnx import version_converter
    from onnx2torch import convert

    _fold_shared_weights(graph)
    try:
        return convert(graph)
    except NotImplementedError:
        opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
                    default=CONVERT_OPSET)
        if opset <= CONVERT_OPSET:
            raise
        return convert(version_converter.convert_version(graph, CONVERT_OPSET))


def _why_not(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:160] or type(exc).__name__
    return (f"onnx2torch cannot convert this ONNX graph ({text}), so it runs with onnxruntime "
            "and activation and gradient methods cannot run; use occlusion, rise, lime or "
            "kernelshap")


def _agrees(module: nn.Module, session, name: str, x: np.ndarray) -> str | None:
    """None when ``module`` gives onnxruntime's outputs on ``x``, else why it does not."""
    with torch.inference_mode():
        ours = module(torch.from_numpy(x))
    ours = ours[0] if isinstance(ours, tuple | list) else ours
    theirs = session.run(None, {name: x})[0]
    if not isinstance(ours, torch.Tensor) or tuple(ours.shape) != theirs.shape:
        return "its output has another shape than onnxruntime's"
    gap = float(np.abs(ours.float().numpy() - theirs).max())
    if gap > TOLERANCE * max(1.0, float(np.abs(theirs).max())):
        return f"its outputs differ from onnxruntime's by {gap:.2g}"
    return None


def _torch_path(graph, session, name: str, batch: int | None, x: np.ndarray):
    """The converted module, or None and the one-line reason it cannot serve."""
    try:
        module = _convert(graph).eval()
        problem = _agrees(module, session, name, x[:1])
        if problem is None and batch is None:
            problem = _agrees(module, session, name, x)
    except Exception as exc:  # noqa: BLE001 - the converter or the converted graph can fail
        return None, _why_not(exc)
    if problem is not None:
        return None, _why_not(ValueError(f"the converted module disagrees: {problem}"))
    return module, None


def load_onnx(path: str | Path, *, device: torch.device | str = "cpu",
              card: ModelCard | None = None) -> LoadedModel:
    """Load an ONNX image classifier.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    device : torch.device or str
        Where the converted module runs (onnxruntime runs on the CPU).
    card : ModelCard, optional
        A card naming the file (``model = "x.onnx"``): its name, classes, output, ``[input]``,
        layers and intended use are used.

    Returns
    -------
    LoadedModel
        ``kind`` is ``onnx``; ``layer_methods_reason`` and ``gradient_methods_reason`` are set
        when the graph runs with onnxruntime only.

    Raises
    ------
    ModelError
        The file is not readable ONNX, or its input is not an image (N, C, H, W).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ModelError("model file not found", path=path, fix="check the path")
    graph = _read(path)
    session = _session(path)
    name, batch, channels, size = _image_input(session, path)
    spec = card.input if card is not None and card.input is not None else \
        default_spec(channels, size or (224, 224))
    if spec.channels != channels or (size is not None and tuple(spec.size) != size):
        fixed = f"{channels} x {size[0]} x {size[1]}" if size else f"{channels} channels"
        raise ModelError(f"the card's [input] ({spec.channels} x {spec.size[0]} x "
                         f"{spec.size[1]}) does not fit the ONNX model's input ({fixed})",
                         path=card.path, fix="make the card's [input] channels and size match "
                         "the model's input")
    dry = np.random.default_rng(0).standard_normal(
        (1 if batch else 2, channels, *spec.size)).astype(np.float32)
    module, reason = _torch_path(graph, session, name, batch, dry)
    if module is None:
        module = OnnxRuntimeModule(session, name, batch, reason)
    digest = sha256_file(path)
    files = {str(path): digest}
    if card is not None:
        files[str(card.path)] = sha256_file(card.path)
    with torch.inference_mode():
        outputs = module(torch.from_numpy(dry[:1]))
    if outputs.ndim != 2:
        raise ModelError(f"the ONNX model's output has shape {list(outputs.shape)}, not "
                         "(N, classes)", path=path, fix="export a classifier's logits")
    classes = (card.classes if card is not None else None) or \
        [f"class_{i}" for i in range(int(outputs.shape[1]))]
    model = LoadedModel(
        module, name=card.name if card is not None else path.stem, classes=classes, input=spec,
        output=card.output if card is not None else "softmax", kind="onnx", device=device,
        files=files, sha256=digest, card_path=str(card.path) if card is not None else None,
        card_default_layer=card.default_layer if card is not None and reason is None else None,
        intended_use=card.intended_use if card is not None else None,
        threshold=card.threshold if card is not None else DEFAULT_THRESHOLD,
    )
    # Layers cannot be hooked and no input gradient can be taken: both kinds of method are
    # refused before they run, with the same line.
    model.layer_methods_reason = model.gradient_methods_reason = reason
    return model
