"""Finding a vision transformer's own attention, and recording it in one pass.

Attention-based explanations (rollout, gradient-weighted relevance, LeGrad) need, for every
transformer block, the post-softmax attention probabilities (N, heads, T, T) that the model
multiplies into its values, and which of the T tokens are patches. Nothing here is configured:

- **timm** ViT, DeiT, EVA and their kin: the attention modules are those with a ``fused_attn``
  switch and an ``attn_drop`` module (the eager path applies it to the probabilities); prefix
  tokens are the model's ``num_prefix_tokens`` (class, register and distillation tokens); the
  patch size is its ``patch_embed``'s.
- **Hugging Face** ViT, DeiT, DINOv2 (with registers) and BEiT: the attention modules are the
  classes the model itself declares in ``_can_record_outputs["attentions"]``; they return the
  probabilities beside their output on the eager path. Prefix tokens are the class token, the
  config's ``num_register_tokens`` and DeiT's distillation token.
- **torchvision** ``VisionTransformer``: its ``nn.MultiheadAttention`` blocks, which never give
  back per-head probabilities from the fused kernel, are run by an eager replica of the same
  arithmetic for the capture.

Where the library fuses attention (``scaled_dot_product_attention``), the capture switches the
model to its eager path for that pass only; the logits agree with the fused ones (tested to
1e-5). The patch grid at an input of any size is (H // patch, W // patch), checked against the
token count of every captured pass. Windowed transformers (Swin) are refused in one line: their
attention is local to shifted windows, so a product of attention matrices over the image does
not exist.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from engine.core.errors import ModelError

#: The layer methods that work on windowed transformers, named in their refusal.
CAM_METHODS_FOR_WINDOWS = "Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM or Score-CAM"


@dataclass(frozen=True)
class AttentionLayout:
    """Where a vision transformer's attention is and how its tokens are laid out.

    Attributes
    ----------
    family : str
        ``"timm"``, ``"hf"`` or ``"torchvision"``.
    attention : tuple of str
        Qualified names of the attention modules, in execution order (one per block).
    blocks : tuple of str
        The block holding each attention module, whose output tokens LeGrad reads out.
    prefix_tokens : int
        Leading non-patch tokens: class, register and distillation tokens.
    patch : tuple of int
        Patch height and width in input pixels.
    readout : callable or None
        ``readout(tokens)`` maps (N, C) pooled tokens to (N, K) logits with the model's own final
        norm and classifier (None when the model's head cannot be read that way).
    """

    family: str
    attention: tuple[str, ...]
    blocks: tuple[str, ...]
    prefix_tokens: int
    patch: tuple[int, int]
    readout: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, compare=False)

    def grid(self, tokens: int, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Return the (h, w) patch grid of a pass over an input of ``input_hw`` pixels.

        Raises
        ------
        ModelError
            When the tokens after the prefix are not that grid (a patch embedding with padding
            or overlap the layout does not describe).
        """
        h, w = input_hw[0] // self.patch[0], input_hw[1] // self.patch[1]
        if h * w + self.prefix_tokens != tokens:
            raise ModelError(
                f"the attention has {tokens} tokens, not {self.prefix_tokens} prefix tokens plus "
                f"a {h} x {w} grid of {self.patch[0]} x {self.patch[1]} patches",
                fix="use a layer method (Grad-CAM) on this model")
        return h, w


_LAYOUTS: weakref.WeakKeyDictionary[nn.Module, AttentionLayout | str] = \
    weakref.WeakKeyDictionary()


def find_attention(module: nn.Module) -> AttentionLayout:
    """Return the attention layout of a vision transformer (cached per module).

    Raises
    ------
    ModelError
        One line saying why the model's attention cannot be read (not a transformer, a
        windowed transformer, an attention the capture does not know).
    """
    found = _LAYOUTS.get(module)
    if found is None:
        try:
            found = _find(module)
        except ModelError as exc:
            found = exc.one_line()
        _LAYOUTS[module] = found
    if isinstance(found, str):
        raise ModelError(found)
    return found


def unavailable_reason(model) -> str | None:
    """Return one line saying why attention methods cannot run on ``model``, or None."""
    if getattr(model, "task", "classification") != "classification":
        return "attention methods explain classifiers; this model segments"
    if getattr(model, "is_volumetric", False):
        return "attention methods read 2-D vision transformers; this model reads volumes"
    module = getattr(model, "module", None)
    if not isinstance(module, nn.Module) or getattr(model, "layer_methods_reason", None):
        return getattr(model, "layer_methods_reason", None) or "the model is not a torch module"
    try:
        find_attention(module)
    except ModelError as exc:
        return exc.message
    return None


def _windowed(module: nn.Module) -> bool:
    return any("Swin" in type(m).__name__ or type(m).__name__.startswith("Window")
               for m in module.modules())


def _find(module: nn.Module) -> AttentionLayout:
    if _windowed(module):
        raise ModelError(
            "attention methods cannot read a windowed transformer (Swin): its attention is "
            "local to shifted windows, so attention rollout and relevance do not follow it "
            f"across the image; use {CAM_METHODS_FOR_WINDOWS} on a stage layer")
    if hasattr(type(module), "_can_record_outputs"):
        return _hf(module)
    if hasattr(module, "num_prefix_tokens") and hasattr(module, "patch_embed"):
        return _timm(module)
    encoder = getattr(module, "encoder", None)
    if hasattr(module, "class_token") and isinstance(getattr(encoder, "layers", None),
                                                     nn.Module):
        return _torchvision(module)
    raise ModelError(
        f"attention methods need a vision transformer (timm, Hugging Face or torchvision ViT); "
        f"{type(module).__name__} has no attention they can read; use a CAM method")


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = tuple(value)[:2]
    return int(a), int(b)


def _timm(module: nn.Module) -> AttentionLayout:
    names = [n for n, m in module.named_modules()
             if hasattr(m, "fused_attn") and isinstance(getattr(m, "attn_drop", None), nn.Dropout)]
    if not names:
        raise ModelError(f"the timm model {type(module).__name__} has no attention module with "
                         "an eager path (attn_drop) to record; use a CAM method")
    readout = None
    if getattr(module, "attn_pool", None) is None and isinstance(
            getattr(module, "head", None), nn.Module):
        norm = getattr(module, "norm", None) or nn.Identity()
        fc_norm = getattr(module, "fc_norm", None) or nn.Identity()
        heads = [h for h in (module.head, getattr(module, "head_dist", None))
                 if isinstance(h, nn.Module)]

        def readout(pooled, norm=norm, fc_norm=fc_norm, heads=heads):
            x = fc_norm(norm(pooled))
            # A distilled DeiT averages its class and distillation heads, as its forward does.
            return sum(h(x) for h in heads) / len(heads)

    return AttentionLayout(
        family="timm", attention=tuple(names), blocks=tuple(n.rsplit(".", 1)[0] for n in names),
        prefix_tokens=int(module.num_prefix_tokens),
        patch=_pair(module.patch_embed.patch_size), readout=readout)


def _declared(module: nn.Module, key: str) -> type | None:
    recorder = type(module)._can_record_outputs.get(key)
    cls = getattr(recorder, "target_class", recorder)
    return cls if isinstance(cls, type) else None


def _hf(module: nn.Module) -> AttentionLayout:
    attn_cls = _declared(module, "attentions")
    block_cls = _declared(module, "hidden_states")
    config = getattr(module, "config", None)
    names = [n for n, m in module.named_modules() if attn_cls and isinstance(m, attn_cls)]
    blocks = [n for n, m in module.named_modules() if block_cls and isinstance(m, block_cls)]
    if not names or len(names) != len(blocks) or config is None or not hasattr(
            config, "patch_size"):
        raise ModelError(f"{type(module).__name__} declares no per-block attention and patch "
                         "size that attention methods can read; use a CAM method")
    base = getattr(module, "base_model", module)
    embeddings = getattr(base, "embeddings", None)
    prefix = 1 if getattr(embeddings, "cls_token", None) is not None else 0
    prefix += int(getattr(config, "num_register_tokens", 0) or 0)
    prefix += 1 if getattr(embeddings, "distillation_token", None) is not None else 0
    return AttentionLayout(
        family="hf", attention=tuple(names), blocks=tuple(blocks), prefix_tokens=prefix,
        patch=_pair(config.patch_size), readout=_hf_readout(module, base, config))


def _hf_readout(module, base, config) -> Callable | None:
    norm = getattr(base, "layernorm", None)
    pooler_norm = getattr(getattr(base, "pooler", None), "layernorm", None)
    if isinstance(norm, nn.Identity) and isinstance(pooler_norm, nn.Module):
        norm = pooler_norm  # BEiT with mean pooling normalises after pooling
    if not isinstance(norm, nn.Module):
        return None
    heads = [getattr(module, n) for n in ("classifier", "cls_classifier", "distillation_classifier")
             if isinstance(getattr(module, n, None), nn.Linear)]
    if not heads:
        return None
    hidden = int(config.hidden_size)

    def readout(pooled):
        x = norm(pooled)
        outs = [h(torch.cat([x, x], -1) if h.in_features == 2 * hidden else x) for h in heads]
        # DeiT with a teacher averages its class and distillation heads, as its forward does.
        return sum(outs) / len(outs)

    return readout


def _torchvision(module: nn.Module) -> AttentionLayout:
    names, blocks = [], []
    for name, block in module.encoder.layers.named_children():
        mha = getattr(block, "self_attention", None)
        if not isinstance(mha, nn.MultiheadAttention) or not mha.batch_first or \
                not mha._qkv_same_embed_dim or mha.bias_k is not None:
            raise ModelError(f"block {name} of {type(module).__name__} has an attention the "
                             "capture cannot replay; use a CAM method")
        blocks.append(f"encoder.layers.{name}")
        names.append(f"encoder.layers.{name}.self_attention")
    heads, norm = getattr(module, "heads", None), getattr(module.encoder, "ln", None)
    readout = None
    if isinstance(heads, nn.Module) and isinstance(norm, nn.Module):
        def readout(pooled, heads=heads, norm=norm):
            return heads(norm(pooled))
    return AttentionLayout(family="torchvision", attention=tuple(names), blocks=tuple(blocks),
                           prefix_tokens=1, patch=_pair(module.patch_size), readout=readout)


def _eager_mha(mha: nn.MultiheadAttention, record: Callable[[torch.Tensor], torch.Tensor],
               query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
               average_attn_weights=True, is_causal=False):
    """``nn.MultiheadAttention`` self-attention written out, with the probabilities recorded."""
    if key_padding_mask is not None or attn_mask is not None or is_causal or \
            query is not key or key is not value:
        raise ModelError("the capture replays unmasked self-attention only",
                         fix="use a CAM method on this model")
    n, t, c = query.shape
    heads = mha.num_heads
    qkv = F.linear(query, mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.reshape(n, t, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = record(torch.softmax((q * (c // heads) ** -0.5) @ k.transpose(-2, -1), dim=-1))
    out = mha.out_proj((attn @ v).transpose(1, 2).reshape(n, t, c))
    weights = None if not need_weights else attn.mean(1) if average_attn_weights else attn
    return out, weights


@dataclass
class AttentionRecord:
    """What one pass recorded: per block, the probabilities and the block's output tokens."""

    probs: list[torch.Tensor] = field(default_factory=list)
    tokens: list[torch.Tensor] = field(default_factory=list)


@contextlib.contextmanager
def recording_attention(module: nn.Module, layout: AttentionLayout) -> Iterator[AttentionRecord]:
    """Run the model's eager attention and record it, for the passes inside the block.

    The recorded probabilities are the tensors the model multiplies into its values, so
    gradients taken with respect to them are the gradients of the attention itself. Every
    switch and hook is restored on exit, whatever happens.
    """
    record = AttentionRecord()
    undo: list[Callable[[], None]] = []

    def keep(probs: torch.Tensor) -> torch.Tensor:
        record.probs.append(probs)
        return probs

    def keep_tokens(_module, _inputs, output):
        record.tokens.append(output[0] if isinstance(output, tuple | list) else output)

    try:
        for name in layout.attention:
            attn = module.get_submodule(name)
            if layout.family == "timm":
                fused = attn.fused_attn
                attn.fused_attn = False
                undo.append(lambda a=attn, f=fused: setattr(a, "fused_attn", f))
                # Dropout is the identity in evaluation; the clone is what flows on.
                handle = attn.attn_drop.register_forward_hook(
                    lambda _m, _i, out: keep(out.clone()))
            elif layout.family == "hf":
                handle = attn.register_forward_hook(_keep_weights(keep))
            else:
                attn.forward = lambda *a, m=attn, **k: _eager_mha(m, keep, *a, **k)
                undo.append(lambda a=attn: a.__dict__.pop("forward", None))
                handle = None
            if handle is not None:
                undo.append(handle.remove)
        for name in layout.blocks:
            undo.append(module.get_submodule(name).register_forward_hook(keep_tokens).remove)
        if layout.family == "hf":
            undo.append(_hf_eager(module))
        yield record
    finally:
        for step in reversed(undo):
            step()


def _keep_weights(keep: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """A hook keeping the probabilities a Hugging Face attention returns beside its output."""
    def hook(_module, _inputs, output):
        keep(output[1])
    return hook


def _hf_eager(module: nn.Module) -> Callable[[], None]:
    """Switch a Hugging Face model to eager attention; return what switches it back."""
    before = module.config._attn_implementation
    module.set_attn_implementation("eager")
    return lambda: module.set_attn_implementation(before or "eager")
