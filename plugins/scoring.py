"""Logits of perturbed inputs, from the capture's one batched scorer.

``Capture.forward_scores`` returns post-softmax (or sigmoid) scores. Some perturbation methods are
defined on the logits instead: Ablation-CAM's drop of the class score, Score-CAM's softmax of the
masked inputs' logits. A softmax cannot be undone to recover a logit, so :func:`logit_objective`
scores through a view of the capture whose model leaves its logits as they are: the same
batching, ``inference_mode`` and counting as every other perturbation method. This module holds
no explainer.
"""

from __future__ import annotations

import copy

import torch


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits


def logit_view(capture):
    """Return a view of ``capture`` whose ``forward_scores(batch)`` gives (M, K) logits."""
    view = capture.view(capture.needs)
    # A shallow copy of the model whose output function is the identity: it still runs the
    # model's own module, so the scorer's folded copy of that module serves it too.
    model = copy.copy(capture.model)
    object.__setattr__(model, "scores", _identity)
    view.model = model
    return view


def logit_objective(capture, batch: torch.Tensor, target, batch_size: int) -> torch.Tensor:
    """(M,) the explained quantity of each input of ``batch``, from logits, without gradients.

    The target logit, minus the ``versus`` class's for a contrastive target; for a segmentation
    target, the mean of that over the capture's region (its sum divided by the region's size).
    """
    logits = logit_view(capture).forward_scores(batch, batch_size)
    return capture.objective(logits, target).float()
