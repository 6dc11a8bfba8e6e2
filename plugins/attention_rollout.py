"""Attention rollout: how much of each patch reaches the class token through every block."""

from __future__ import annotations

import torch

from engine.explain.api import Explainer, Param, class_token_map

#: How the heads of one block are fused into one attention matrix.
_FUSIONS = ("mean", "max", "min")


def fuse_heads(attention: torch.Tensor, fusion: str) -> torch.Tensor:
    """Fuse (N, heads, T, T) attention over its heads into (N, T, T)."""
    if fusion == "mean":
        return attention.mean(1)
    return attention.amax(1) if fusion == "max" else attention.amin(1)


def discard_lowest(fused: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the lowest ``ratio`` share of each (T, T) matrix, never a token's attention to
    itself (so every row keeps a path through the block)."""
    if ratio <= 0.0:
        return fused
    n, t, _ = fused.shape
    eye = torch.eye(t, dtype=torch.bool, device=fused.device)
    off = fused.masked_fill(eye, float("inf")).flatten(1)
    count = min(int(t * t * ratio), t * t - t)
    if count == 0:
        return fused
    lowest = off.topk(count, dim=1, largest=False).indices
    return fused.flatten(1).scatter(1, lowest, 0.0).view(n, t, t)


class AttentionRollout(Explainer):
    """Attention rollout (Abnar & Zuidema 2020, eq. for "attention rollout").

    Per block l the heads are fused (mean, max or min) into ``A_l``, the lowest ``discard_ratio``
    share of its entries is zeroed, and the residual connection is accounted for as
    ``Â_l = (A_l + I) / 2`` with rows renormalised to sum to 1. The rollout is the product
    ``Â_L ... Â_2 Â_1``; the map is its class-token row over the patch tokens (the mean of the
    patch rows for a model without a class token). It does not depend on the target class.
    """

    name = "rollout"
    title = "Attention rollout"
    description = ("How much attention flows from each patch to the class token, multiplied "
                   "through every block with the residual path (class-independent).")
    citation = ("Abnar S, Zuidema W. Quantifying Attention Flow in Transformers. ACL 2020. "
                "arXiv:2005.00928")
    caveats = ("The same map for every class: it shows where attention flows, not the evidence "
               "for a class, and the randomisation check flags it (it never reads the "
               "classifier). With nothing discarded the residual path makes it nearly flat; a "
               "discard ratio near 0.9 with max fusion sharpens it. Not for windowed "
               "transformers (Swin).")
    needs = frozenset({"attentions"})
    batched = True
    units = "attention share"
    params = (
        Param("head_fusion", "choice", "mean", choices=_FUSIONS,
              help="how the heads of a block are combined"),
        Param("discard_ratio", "float", 0.0, range=(0.0, 0.99),
              help="share of each block's weakest attention entries set to zero"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return the (N, h, w) rollout of the class token over the patch grid."""
        attentions = capture.attentions
        rollout = None
        for i, attention in enumerate(attentions):
            cancel.check()
            fused = discard_lowest(fuse_heads(attention.float(), params["head_fusion"]),
                                   params["discard_ratio"])
            eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
            step = (fused + eye) / 2
            step = step / step.sum(-1, keepdim=True)
            rollout = step if rollout is None else step @ rollout
            progress((i + 1) / len(attentions), f"{self.title}: block {i + 1}")
        return {"input": class_token_map(capture, rollout)}


EXPLAINERS = (AttentionRollout,)
