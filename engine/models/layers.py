"""Finding a model's candidate layers for activation- and gradient-based maps.

A dry forward pass with a hook on every submodule records each output. Spatial layers have
outputs (N, C, H, W) with H, W > 1, or (N, C, D, H, W) in 3-D models (H, W > 1; D may have
pooled down to 1) (channels-last (N, H, W, C) outputs, as Swin's stages give,
are recognised too); token layers have outputs (N, T, C) with T = h*w or P + h*w and are
reshaped to (N, C, h, w): the P leading tokens (class, register and distillation tokens) are
dropped. P is read off the model's patch embedding (its ``num_patches``, as timm and Hugging Face
ViTs, DeiTs, DINOv2 and Swin state it), else a class token is assumed when the rest is a grid.

Which dimensions are spatial is measured, not guessed: a second pass at a larger input shows
which dimensions grow. Models that only accept one input size fall back to shape rules.
A backward pass from the logits tells which layers influence the output at their spatial
positions; the default layer is the last of those in execution order, skipping adaptive pooling
(which only resamples the layer before it). For CNNs that is the last spatial layer before global
pooling; for a ViT, whose final tokens reach the output only through the class token, it is the
last block's first norm, whose patch tokens still feed the class token through attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from engine.core.errors import ModelError
from engine.models.adapters import adapt_output

#: Modules that only resample their input; a map on them says nothing the layer before does not.
_RESAMPLERS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d,
               nn.AdaptiveMaxPool3d, nn.Identity, nn.Dropout, nn.Dropout3d)


@dataclass(frozen=True)
class LayerInfo:
    """One candidate layer.

    Attributes
    ----------
    name : str
        Qualified submodule name (``model.get_submodule(name)``).
    shape : tuple of int
        ``(C, h, w)`` of its activation map, after any token reshape; ``(C, d, h, w)`` in 3-D.
    kind : str
        ``"spatial"`` or ``"token"``.
    prefix_tokens : int
        Leading tokens dropped before the reshape (1 for a class token).
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    prefix_tokens: int = 0


@dataclass(frozen=True)
class Layout:
    """How to turn one layer's hook output into (N, C, h, w)."""

    order: str  # "nchw" | "nhwc" | "tokens"
    prefix_tokens: int = 0


def first_tensor(output) -> torch.Tensor | None:
    """Return the first tensor in a hook output (tensor, tuple/list or dict), else None."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


#: The most leading (class, register, distillation) tokens a patch count may account for.
MAX_PREFIX_TOKENS = 16


def token_grid(tokens: int, input_hw: tuple[int, int],
               patches: int | None = None) -> tuple[int, int, int] | None:
    """Factor a token count into ``(prefix, h, w)`` with ``h/w`` close to the input's aspect.

    Parameters
    ----------
    tokens : int
        T of an (N, T, C) output.
    input_hw : tuple of int
        Model input ``(H, W)``.
    patches : int, optional
        The model's patch count: ``tokens - patches`` leading tokens are tried first.

    Returns
    -------
    tuple of int or None
        ``(prefix_tokens, h, w)`` with ``h * w == tokens - prefix_tokens``, or None.
    """
    aspect = input_hw[0] / input_hw[1]
    prefixes = (0, 1)
    if patches is not None and 0 <= tokens - patches <= MAX_PREFIX_TOKENS:
        prefixes = (tokens - patches, *prefixes)
    for prefix in prefixes:
        n = tokens - prefix
        if n < 4:
            continue
        h = max(1, round(math.sqrt(n * aspect)))
        for cand in (h, h - 1, h + 1):
            if cand > 1 and n % cand == 0 and n // cand > 1:
                w = n // cand
                if abs(math.log((cand / w) / aspect)) < 0.35:
                    return prefix, cand, w
    return None


def to_activation_map(output, layout: Layout, input_hw: tuple[int, int]) -> torch.Tensor:
    """Reshape a hook output to (N, C, h, w) following ``layout``.

    Parameters
    ----------
    output : object
        The hook output (tuples are unwrapped to their first tensor).
    layout : Layout
        The layer's layout from discovery.
    input_hw : tuple of int
        Model input ``(H, W)``, which fixes the token grid's aspect.

    Returns
    -------
    torch.Tensor
        (N, C, h, w), still attached to the autograd graph.
    """
    t = first_tensor(output)
    if t is None:
        raise ModelError("the layer returned no tensor", fix="choose another layer")
    if layout.order == "nchw":
        return t
    if layout.order == "nhwc":
        return t.permute(0, 3, 1, 2)
    t = t[:, layout.prefix_tokens :]
    grid = token_grid(t.shape[1], input_hw)
    if grid is None or grid[0] != 0:
        raise ModelError(f"cannot arrange {t.shape[1]} tokens on a grid", fix="choose a CNN layer")
    _, h, w = grid
    return t.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)


@dataclass
class Discovery:
    """Result of :func:`discover_layers`."""

    layers: list[LayerInfo]
    layouts: dict[str, Layout]
    default: str | None


def _record(module: nn.Module, x: torch.Tensor):
    """Run one forward pass; return (ordered records, call counts, output)."""
    records: list[tuple[str, torch.Tensor]] = []
    calls: dict[str, int] = {}
    handles = []

    def hook_for(name):
        def hook(_mod, _inp, out):
            calls[name] = calls.get(name, 0) + 1
            t = first_tensor(out)
            if t is not None:
                records.append((name, t))

        return hook

    for name, sub in module.named_modules():
        if name:
            handles.append(sub.register_forward_hook(hook_for(name)))
    try:
        out = module(x)
    finally:
        for h in handles:
            h.remove()
    return records, calls, out


def patch_count(module: nn.Module) -> int | None:
    """The number of patches of a transformer's patch embedding (``num_patches``), or None."""
    for sub in module.modules():
        count = getattr(sub, "num_patches", None)
        if isinstance(count, int) and count > 0:
            return count
    return None


def _looks_nhwc(shape, input_hw) -> bool:
    """Without a second pass: whether only the channels-last reading has the input's aspect.

    A fixed-size Swin (timm) gives (N, h, w, C) stages, e.g. (1, 4, 4, 48), whose channels-first
    reading would be a 4 x 48 grid.
    """
    aspect = input_hw[0] / input_hw[1]

    def fits(h, w) -> bool:
        return abs(math.log((h / w) / aspect)) < 0.35

    return fits(shape[1], shape[2]) and not fits(shape[2], shape[3])


def _classify(shape_a, shape_b, input_hw, volumetric=False,
              patches: int | None = None) -> tuple[Layout, tuple] | None:
    """Decide whether one output is spatial or token-shaped; return its layout and (C, *grid)."""
    grows = None
    if shape_b is not None and len(shape_b) == len(shape_a):
        grows = {i for i in range(len(shape_a)) if shape_a[i] != shape_b[i]}
    if volumetric:
        # (N, C, d, h, w): the grid grows with the input (d may be pooled down to 1).
        if len(shape_a) == 5 and (grows is None or (grows and grows <= {2, 3, 4})) \
                and shape_a[3] > 1 and shape_a[4] > 1:
            return Layout("nchw"), tuple(shape_a[1:])
        return None
    if len(shape_a) == 4:
        if (grows == {1, 2} or (grows is None and _looks_nhwc(shape_a, input_hw))) \
                and shape_a[1] > 1 and shape_a[2] > 1:
            return Layout("nhwc"), (shape_a[3], shape_a[1], shape_a[2])
        if (grows is None or grows == {2, 3}) and shape_a[2] > 1 and shape_a[3] > 1:
            return Layout("nchw"), (shape_a[1], shape_a[2], shape_a[3])
        return None
    if len(shape_a) == 3 and (grows is None or grows == {1}):
        grid = token_grid(shape_a[1], input_hw, patches)
        if grid is not None:
            prefix, h, w = grid
            return Layout("tokens", prefix), (shape_a[2], h, w)
    return None


def discover_layers(
    module: nn.Module,
    input_shape: tuple[int, int, int],
    device: torch.device | str = "cpu",
    output_key: str | None = None,
    task: str = "classification",
) -> Discovery:
    """List a model's candidate layers by dry forward passes with hooks.

    Parameters
    ----------
    module : torch.nn.Module
        The model, in eval mode.
    input_shape : tuple of int
        ``(C, H, W)`` of the model input, or ``(C, D, H, W)`` for a 3-D model.
    device : torch.device or str
        Where the module lives.
    output_key : str, optional
        Passed to the output adapter for the backward pass.
    task : str
        ``segmentation`` for models with (N, K, H, W) pixel logits.

    Returns
    -------
    Discovery
        Candidate layers in execution order, their layouts, and the default layer.
    """
    c, *grid = input_shape
    h, w = grid[-2:]
    volumetric = len(grid) == 3
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((1, *input_shape), generator=gen).to(device)
    with torch.enable_grad():
        try:
            records, calls, out = _record(module, x)
        except Exception as exc:  # noqa: BLE001 - any failure here means the input does not fit
            raise ModelError(
                f"a dry run on a {'x'.join(str(v) for v in input_shape)} input failed "
                f"({type(exc).__name__}: {exc})",
                fix="check [input] size and channels in the model card",
            ) from exc
        shapes_b = _second_pass(module, tuple(input_shape), device)
        # Keep one name per distinct tensor: containers and in-place ops hand on the same
        # tensor object, and the last module to finish with it names it best.
        # ``records`` keeps every tensor alive, so ids stay unique.
        last_name = {id(t): name for name, t in records}
        patches = patch_count(module)
        chosen = []
        for name, t in records:
            if last_name[id(t)] != name or calls.get(name, 0) != 1:
                continue
            kind = _classify(tuple(t.shape), shapes_b.get(name) if shapes_b else None, (h, w),
                             volumetric, patches)
            if kind is not None:
                chosen.append((name, t, *kind))
        influence = _influence(out, output_key, chosen, task)
    layers, layouts, default = [], {}, None
    informative = any(inf == "spatial" for inf in influence)
    for (name, _t, layout, shape), inf in zip(chosen, influence, strict=True):
        if inf == "unused":
            continue  # does not reach the output at all (an unused auxiliary head)
        kind = "spatial" if layout.order != "tokens" else "token"
        layers.append(LayerInfo(name, tuple(int(s) for s in shape), kind, layout.prefix_tokens))
        layouts[name] = layout
        eligible = inf == "spatial" or not informative
        if eligible and not isinstance(module.get_submodule(name), _RESAMPLERS):
            default = name
    if default is None and layers:
        default = layers[-1].name
    if task == "segmentation" and layers:
        # A segmentation net's last layers are its head, at output resolution; the layer
        # that sees most context is the deepest one at the coarsest grid (the encoder's end,
        # pytorch-grad-cam's choice for its segmentation examples).
        spatial = [lay for lay in layers if lay.kind == "spatial"] or layers
        cells = [math.prod(lay.shape[1:]) for lay in spatial]
        default = [lay for lay, n in zip(spatial, cells, strict=True) if n == min(cells)][-1].name
    return Discovery(layers=layers, layouts=layouts, default=default)


def _second_pass(module, input_shape, device) -> dict[str, tuple] | None:
    """Output shapes at a larger input, or None when the model takes one size only."""
    c, *grid = input_shape
    x = torch.zeros((1, c, *(g + 32 for g in grid)), device=device)
    try:
        with torch.inference_mode():
            records, _calls, _out = _record(module, x)
    except Exception:  # noqa: BLE001 - fixed-size models (ViT) reject other sizes
        return None
    shapes: dict[str, tuple] = {}
    for name, t in records:
        shapes.setdefault(name, tuple(t.shape))
    return shapes


def _influence(out, output_key, chosen, task="classification") -> list[str]:
    """Per layer: ``spatial`` if its spatial positions reach the logits, ``blind`` if they get
    no gradient, ``unused`` if the layer does not reach the logits at all, ``unknown`` when no
    gradients are available. A zero-initialised head makes every gradient zero; the caller
    then ignores this information."""
    tensors = [t for _n, t, _l, _s in chosen]
    needs = [t.requires_grad for t in tensors]
    try:
        logits = adapt_output(out, output_key, task)
        if not logits.requires_grad or not any(needs):
            return ["unknown"] * len(tensors)
        grads = iter(
            torch.autograd.grad(
                logits.sum(), [t for t in tensors if t.requires_grad], allow_unused=True
            )
        )
    except Exception:  # noqa: BLE001 - discovery still lists layers without gradient information
        return ["unknown"] * len(tensors)
    result = []
    for (_n, _t, layout, _s), need in zip(chosen, needs, strict=True):
        g = next(grads) if need else None
        if not need:
            result.append("unknown")
        elif g is None:
            result.append("unused")
        else:
            spatial = g[:, layout.prefix_tokens :] if layout.order == "tokens" else g
            result.append("spatial" if bool(spatial.abs().sum() > 0) else "blind")
    return result
