"""Eigen-CAM: the first principal component of a layer's activations."""

from __future__ import annotations

import torch

from engine.explain.api import Explainer, Param


class EigenCAM(Explainer):
    """Eigen-CAM: project the activations onto their first right singular vector.

    The activations are arranged as a (h*w, C) matrix ``M`` (optionally with each channel's
    mean removed, which makes the singular vector a principal component), ``M = U S V^T``, and the
    map is ``ReLU(M v_1)`` (Muhammad and Yeasin, eq. 3-4). A singular vector's sign is arbitrary;
    it is chosen so that the map correlates positively with the channel-summed activation, so that
    strongly activated regions come out high. It needs no gradients and does not depend on the
    target class.
    """

    name = "eigencam"
    title = "Eigen-CAM"
    description = "First principal component of the activations; class-agnostic, no gradients."
    citation = (
        "Muhammad MB, Yeasin M. Eigen-CAM: Class Activation Map using Principal Components. "
        "IJCNN 2020. arXiv:2008.00299"
    )
    needs = frozenset({"activations"})
    units = "activation projection"
    params = (
        Param(
            "center",
            "bool",
            True,
            help="remove each channel's mean before the SVD (principal components)",
        ),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return one (1, h, w) map per layer ((1, d, h, w) for volumes)."""
        maps = {}
        for i, layer in enumerate(layers):
            cancel.check()
            acts = torch.nan_to_num(capture.activations[layer][0].float())
            c, grid = acts.shape[0], acts.shape[1:]
            matrix = acts.reshape(c, -1).T
            if params.get("center", True):
                matrix = matrix - matrix.mean(dim=0, keepdim=True)
            _, _, vh = torch.linalg.svd(matrix, full_matrices=False)
            projection = (matrix @ vh[0]).reshape(grid)
            reference = acts.sum(dim=0)
            corr = ((projection - projection.mean()) * (reference - reference.mean())).sum()
            if corr < 0:
                projection = -projection
            maps[layer] = torch.relu(projection)[None]
            progress((i + 1) / len(layers), f"{self.title}: {layer}")
        return maps


EXPLAINERS = (EigenCAM,)
