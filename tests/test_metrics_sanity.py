"""Spearman correlation and the cascading randomisation test on a tiny constructed CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.metrics.sanity import (
    CascadeStep,
    cascade_groups,
    cascading_randomisation,
    decision_end_verdict,
    parameter_layers,
    rankdata,
    spearman,
    ssim,
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
    assert all(s.ssim == pytest.approx(1.0) for s in edge_steps)
    assert not decision_end_verdict(edge_steps).passed
    # The user's model is never touched.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_ssim_of_a_map_with_itself_is_one_and_a_sign_flip_is_not_similar():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(16, 16))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 3.0 * a) == pytest.approx(1.0)  # scaled by the peak |value|
    # SSIM multiplies a luminance by a structure term, so a sign flip, negative in both, scores
    # low but positive; the rank correlation is what catches it, and the stage takes the smaller.
    flipped = CascadeStep(["0"], spearman=spearman(a, -a), ssim=ssim(a, -a))
    assert flipped.ssim < 0.5 and flipped.similarity == pytest.approx(-1.0)
    # A CAM layer as coarse as 4 x 4 still fits a narrowed window; 2 x 2 does not.
    assert ssim(a[:4, :4], a[:4, :4]) == pytest.approx(1.0)
    assert np.isnan(ssim(a[:2, :2], a[:2, :2]))


def test_verdict_reads_only_the_decision_end():
    names = [str(i) for i in range(8)]
    groups = cascade_groups(names, 4)  # 1, 3, 6 and 8 of the 8 layers, top first

    def cascade(*values):
        return [CascadeStep(g, spearman=v, ssim=v) for g, v in zip(groups, values, strict=True)]

    late_change = cascade(0.9, 0.7, 0.2, 0.1)
    early_change = cascade(0.2, 0.1, 0.9, 1.0)
    stays = decision_end_verdict(late_change)
    assert stays.stages == 2 and stays.similarity == pytest.approx(0.8) and not stays.passed
    changes = decision_end_verdict(early_change)
    assert changes.similarity == pytest.approx(0.15) and changes.passed
    # High rank correlation with a different structure is not "unchanged": the smaller measure.
    blob = [CascadeStep(g, spearman=0.8, ssim=0.3) for g in groups]
    assert decision_end_verdict(blob).similarity == pytest.approx(0.3)
    # Maps too coarse for SSIM fall back on the rank correlation.
    coarse = [CascadeStep(g, spearman=0.6) for g in groups]
    verdict = decision_end_verdict(coarse)
    assert verdict.similarity == pytest.approx(0.6) and np.isnan(verdict.ssim)
    with pytest.raises(ValueError, match="no stages"):
        decision_end_verdict([])
