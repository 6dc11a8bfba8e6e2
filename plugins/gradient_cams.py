"""Gradient-weighted class activation maps: Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM.

All five read the same capture: the activations ``A`` (C, h, w) of a layer and the gradient
``G = dy_c / dA`` of the target logit ``y_c``. Each is a reduction of those two tensors, so every
method for every captured layer costs no further model pass.
"""

from __future__ import annotations

import torch

from engine.explain.api import Explainer, Param


class _GradientCAM(Explainer):
    """Shared loop over layers; subclasses define :meth:`reduce`."""
    units = "logit gradient x activation"

    needs = frozenset({"activations", "gradients"})
    # Reductions over a batch axis cost what one image costs: the audit explains a batch at once.
    batched = True

    def reduce(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Return the (N, *grid) maps of one layer from (N, C, *grid) activations and gradients."""
        raise NotImplementedError

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ReLU-ed (N, *grid) maps per layer (see the class docstring for the formula)."""
        maps = {}
        # A counterfactual map (where the schema offers one) follows the negated gradient.
        sign = -1.0 if params.get("counterfactual", False) else 1.0
        for i, layer in enumerate(layers):
            cancel.check()
            acts = capture.activations[layer].float()
            grads = sign * capture.gradients[layer].float()
            maps[layer] = torch.relu(self.reduce(acts, grads))
            progress((i + 1) / len(layers), f"{self.title}: {layer}")
        return maps


def _spatial(t: torch.Tensor) -> tuple[int, ...]:
    """The grid axes of an (N, C, *grid) tensor: (h, w), or (d, h, w) for volumes."""
    return tuple(range(2, t.ndim))


def _weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """Sum (N, C) channel weights times (N, C, *grid) activations over channels."""
    shape = weights.shape + (1,) * (acts.ndim - 2)
    return (weights.reshape(shape) * acts).sum(dim=1)


class GradCAM(_GradientCAM):
    """Grad-CAM: channel weights are the spatial means of the gradients.

    ``alpha_k = mean_ij G_kij``; ``map = ReLU(sum_k alpha_k A_k)`` (Selvaraju et al., eq. 1-2).
    With ``counterfactual`` the gradients are negated, so the map shows the regions whose
    evidence lowers the class score (section 5.3 of the paper).
    """

    name = "gradcam"
    title = "Grad-CAM"
    description = "Activations weighted by the spatially averaged gradient of the target logit."
    citation = (
        "Selvaraju RR, Cogswell M, Das A, Vedantam R, Parikh D, Batra D. Grad-CAM: Visual "
        "Explanations from Deep Networks via Gradient-based Localization. ICCV 2017. "
        "arXiv:1610.02391"
    )
    params = (
        Param("counterfactual", "bool", False,
              help="negate the gradients: show what lowers the class score"),
    )

    def reduce(self, acts, grads):
        return _weighted_sum(grads.mean(dim=_spatial(grads)), acts)


class GradCAMPlusPlus(_GradientCAM):
    """Grad-CAM++: pixel-wise weighting of positive gradients.

    ``a_kij = G^2 / (2 G^2 + sum_ab A_kab G^3)`` (the closed form of Chattopadhay et al., eq. 19,
    for an exponential output), ``w_k = sum_ij a_kij ReLU(G_kij)``, ``map = ReLU(sum_k w_k A_k)``.
    Only positive gradients contribute, and for those ``a_kij ReLU(G_kij)`` simplifies to
    ``G / (2 + sum_ab A_kab G)``, which is what is computed (one pass, no cubes to overflow).
    Where the denominator vanishes the coefficient is 0.
    """

    name = "gradcampp"
    title = "Grad-CAM++"
    description = "Grad-CAM with pixel-wise weights on positive gradients."
    citation = (
        "Chattopadhay A, Sarkar A, Howlader P, Balasubramanian VN. Grad-CAM++: Generalized "
        "Gradient-based Visual Explanations for Deep Convolutional Networks. WACV 2018. "
        "arXiv:1710.11063"
    )

    def reduce(self, acts, grads):
        positive = torch.relu(grads)
        denom = 2.0 + acts.sum(dim=_spatial(acts), keepdim=True) * positive
        terms = torch.where(denom != 0, positive / torch.where(denom != 0, denom, 1.0), 0.0)
        return _weighted_sum(terms.sum(dim=_spatial(terms)), acts)


class XGradCAM(_GradientCAM):
    """XGrad-CAM: gradients weighted by the normalised activations.

    ``w_k = sum_ij (A_kij / sum_ab A_kab) G_kij``; ``map = ReLU(sum_k w_k A_k)`` (Fu et al., eq. 9).
    Channels whose activations sum to 0 get weight 0.
    """

    name = "xgradcam"
    title = "XGrad-CAM"
    description = "Axiom-based Grad-CAM: gradients weighted by normalised activations."
    citation = (
        "Fu R, Hu Q, Dong X, Guo Y, Gao Y, Li B. Axiom-based Grad-CAM: Towards Accurate "
        "Visualization and Explanation of CNNs. BMVC 2020. arXiv:2008.02312"
    )

    def reduce(self, acts, grads):
        total = acts.sum(dim=_spatial(acts))
        weights = (grads * acts).sum(dim=_spatial(acts))
        weights = torch.where(total != 0, weights / torch.where(total != 0, total, 1.0), 0.0)
        return _weighted_sum(weights, acts)


class LayerCAM(_GradientCAM):
    """LayerCAM: every location weighted by its own positive gradient.

    ``map = ReLU(sum_k ReLU(G_k) * A_k)`` (Jiang et al., eq. 5-6); reliable in shallow layers too.
    """

    name = "layercam"
    title = "LayerCAM"
    description = "Element-wise positive gradients times activations; sharp maps in early layers."
    citation = (
        "Jiang P-T, Zhang C-B, Hou Q, Cheng M-M, Wei Y. LayerCAM: Exploring Hierarchical Class "
        "Activation Maps for Localization. IEEE Trans. Image Process. 30:5875-5888, 2021. "
        "doi:10.1109/TIP.2021.3089943"
    )

    def reduce(self, acts, grads):
        return (torch.relu(grads) * acts).sum(dim=1)


class HiResCAM(_GradientCAM):
    """HiResCAM: element-wise gradient times activation, summed over channels.

    ``map = ReLU(sum_k G_k * A_k)`` (Draelos and Carin, eq. 4). Unlike Grad-CAM it does not
    average the gradients first, so the map shows the locations the logit actually used.
    """

    name = "hirescam"
    title = "HiResCAM"
    description = "Element-wise gradients times activations; faithful to the locations used."
    citation = (
        "Draelos RL, Carin L. Use HiResCAM instead of Grad-CAM for faithful explanations of "
        "convolutional neural networks. arXiv:2011.08891, 2020"
    )

    def reduce(self, acts, grads):
        return (grads * acts).sum(dim=1)


EXPLAINERS = (GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM)
