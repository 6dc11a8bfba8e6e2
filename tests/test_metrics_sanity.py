"""Spearman correlation and the cascading randomisation test on a tiny constructed CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.metrics.sanity import (
    cascade_groups,
    cascading_randomisation,
    parameter_layers,
    rankdata,
    spearman,
)


def _tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    ).eval()


def _input_gradient(module, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(module(x)[0, 1], x)
    return grad[0, 0].abs().numpy()


def _edges(x):
    img = x[0, 0].numpy()
    return np.hypot(np.diff(img, axis=0, append=img[-1:]), np.diff(img, axis=1, append=img[:, -1:]))


def test_rankdata_averages_ties():
    np.testing.assert_allclose(rankdata(np.array([10, 20, 20, 5])), [2, 3.5, 3.5, 1])


def test_spearman_known_values():
    a = np.arange(20.0).reshape(4, 5)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.ones_like(a)) == 0.0
    # Hand-computed: ranks (1,2,3,4,5) vs (2,1,4,3,5): 1 - 6*4/(5*24) = 0.8.
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


def test_parameter_layers_follow_execution_order():
    model = _tiny_cnn()
    assert parameter_layers(model, torch.rand(1, 1, 8, 8)) == ["0", "1", "3", "7"]


def test_cascade_groups_isolate_the_top_layer_and_end_with_all():
    names = [str(i) for i in range(10)]
    groups = cascade_groups(names, 4)
    assert groups[0] == ["9"] and groups[-1] == list(reversed(names)) and len(groups) == 4
    assert cascade_groups(names[:3], 4) == [["2"], ["2", "1"], ["2", "1", "0"]]


def test_model_dependent_map_changes_and_edge_map_does_not():
    model = _tiny_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 4:10, 5:12] = 1.0
    x += 0.05 * torch.rand_like(x)
    reference = _input_gradient(model, x)
    steps = cascading_randomisation(
        model, lambda m: _input_gradient(m, x), reference, example=x, max_steps=4
    )
    assert [s.layers[0] for s in steps] == ["7"] * 4
    assert steps[-1].layers == ["7", "3", "1", "0"]
    assert steps[-1].spearman < 0.5
    edge_steps = cascading_randomisation(model, lambda m: _edges(x), _edges(x), example=x)
    assert all(s.spearman == pytest.approx(1.0) for s in edge_steps)
    # The user's model is never touched.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
