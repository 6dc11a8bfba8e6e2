"""Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021), the encoder case."""

from __future__ import annotations

import torch

from engine.explain.api import Explainer, class_token_map


class AttentionRelevance(Explainer):
    """Relevance propagated through self-attention with gradient-weighted attention.

    Starting from ``R = I`` (T x T), each block l in execution order updates
    ``R <- R + mean_h((dy_t/dA_l ⊙ A_l)^+) · R``, with ``A_l`` the block's attention probabilities,
    ``dy_t/dA_l`` the gradient of the target logit with respect to them, ``^+`` the positive part
    and the mean over heads (Chefer, Gur & Wolf 2021, eq. 5-6, self-attention encoder). The map
    is the class token's row of ``R`` over the patch tokens.
    """

    name = "attnrelevance"
    title = "Attention relevance (Chefer)"
    description = ("Relevance of each patch to the target class, propagated through every "
                   "block's attention weighted by its gradient (class-specific).")
    citation = ("Chefer H, Gur S, Wolf L. Generic Attention-model Explainability for Interpreting "
                "Bi-Modal and Encoder-Decoder Transformers. ICCV 2021. arXiv:2103.15679")
    caveats = ("Positive relevance only: it cannot show evidence against the class. Not for "
               "windowed transformers (Swin).")
    needs = frozenset({"attentions", "attention_gradients"})
    batched = True
    units = "relevance"

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return the (N, h, w) class-token relevance over the patch grid."""
        attentions, gradients = capture.attentions, capture.attention_gradients
        relevance = None
        for i, (attention, grad) in enumerate(zip(attentions, gradients, strict=True)):
            cancel.check()
            weighted = (grad.float() * attention.float()).clamp(min=0).mean(1)
            if relevance is None:
                relevance = torch.eye(weighted.shape[-1], dtype=weighted.dtype,
                                      device=weighted.device).expand_as(weighted)
            relevance = relevance + weighted @ relevance
            progress((i + 1) / len(attentions), f"{self.title}: block {i + 1}")
        return {"input": class_token_map(capture, relevance)}


EXPLAINERS = (AttentionRelevance,)
