"""LIME and KernelSHAP on superpixels: where the evidence is, efficiency, exact Shapley values."""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from torch import nn

from engine.explain.capture import run_capture
from engine.explain.session import ExplainRequest, Session
from plugins.baselines import baseline_input
from plugins.superpixels import (
    constrained_shapley,
    shapley_samples,
    superpixels,
    weighted_ridge,
)
from tests.explain_fixtures import TorchModel, random_image

#: The only pixels the network reads.
REGION = (slice(8, 20), slice(8, 20))
QUICK = {"samples": 200, "segments": 16}


class _RegionNet(nn.Module):
    """Class 1's logit is twice the mean of one square region: the evidence is known exactly."""

    def forward(self, x):
        evidence = x[:, :, 8:20, 8:20].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(evidence), 2.0 * evidence], dim=1)


def _script_model():
    model = TorchModel(torch.jit.script(_RegionNet()), ["background", "evidence"], size=32)
    model.kind = "torchscript"
    model.layer_methods_reason = "TorchScript models expose no submodules to hook"
    return model


def _image(seed):
    """Dim smooth background, and the region the network reads drawn bright (SLIC follows it)."""
    image = random_image(32, seed=seed)
    image.pixels *= 0.4
    image.pixels[REGION] = 0.9
    return image


def _explain(model, image, method, **params):
    result = Session(device="cpu").explain(
        ExplainRequest(image, model, [method], target="evidence",
                       params={method: {**QUICK, **params}}))
    return result.maps[(method, "input")].raw


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("method", ["lime", "kernelshap"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_attribution_lands_on_the_only_region_the_network_reads(method, seed):
    raw = _explain(_script_model(), _image(seed), method, seed=seed)
    positive = np.clip(raw, 0.0, None)
    assert positive.sum() > 0
    share = positive[REGION].sum() / positive.sum()
    assert share >= 0.9, f"{method}: {share:.2f} of the positive attribution is in the region"


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("baseline", ["black", "blur", "uniform"])
def test_kernelshap_values_sum_to_the_change_of_score(baseline):
    model = _script_model()
    image = _image(3)
    raw = _explain(model, image, "kernelshap", baseline=baseline, seed=4)
    capture = run_capture(model, model.preprocess(image), target=1, gradients=False)
    labels = superpixels(capture, QUICK["segments"], 0.3)
    phi = [raw[labels == j][0] for j in range(labels.max() + 1)]
    with torch.no_grad():
        base = baseline_input(capture, baseline, seed=4)
        change = float(torch.softmax(model.module(capture.input), 1)[0, 1]
                       - torch.softmax(model.module(base), 1)[0, 1])
    assert abs(change) > 0.01
    assert sum(phi) == pytest.approx(change, rel=0.05)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("method", ["lime", "kernelshap"])
def test_a_seed_makes_runs_repeatable(method):
    model, image = _script_model(), _image(5)
    first = _explain(model, image, method, seed=11)
    np.testing.assert_array_equal(first, _explain(model, image, method, seed=11))
    assert not np.array_equal(first, _explain(model, image, method, seed=12))


def _exact_shapley(game, m):
    phi = np.zeros(m)
    for j in range(m):
        others = [i for i in range(m) if i != j]
        for size in range(m):
            for subset in combinations(others, size):
                weight = factorial(size) * factorial(m - size - 1) / factorial(m)
                with_j = np.zeros(m, bool)
                with_j[list(subset)] = True
                without = with_j.copy()
                with_j[j] = True
                phi[j] += weight * (game(with_j) - game(without))
    return phi


def test_kernel_weights_give_the_exact_shapley_values_when_every_coalition_fits():
    rng = np.random.default_rng(0)
    m = 6
    weights = rng.normal(size=m)

    def game(z):  # not additive, so the regression has something to get wrong
        return float(np.tanh(weights @ z) + 0.3 * z[0] * z[3] - 0.2 * z[1] * z[2] * z[5])

    z, w = shapley_samples(m, 200, rng)
    assert len(z) == 2**m - 2  # every coalition but the empty and the full one, once each
    assert len({row.tobytes() for row in z}) == len(z)
    assert w.sum() == pytest.approx(1.0)
    y = np.array([game(row) for row in z])
    phi = constrained_shapley(z, y, w, game(np.zeros(m, bool)), game(np.ones(m, bool)))
    np.testing.assert_allclose(phi, _exact_shapley(game, m), atol=1e-9)


def test_sampled_coalitions_merge_repeats_and_stay_within_the_budget():
    rng = np.random.default_rng(1)
    z, w = shapley_samples(20, 300, rng)
    assert len(z) <= 300 and len({row.tobytes() for row in z}) == len(z)
    sizes = z.sum(1)
    assert sizes.min() >= 1 and sizes.max() <= 19
    # Sizes 1 and 19 hold 30% of the kernel mass (90 of 300 samples) for 40 coalitions: they
    # are enumerated, each once; size 2 (190 coalitions, ~58 samples) is sampled.
    assert (sizes == 1).sum() == 20 and (sizes == 19).sum() == 20
    assert 0 < (sizes == 2).sum() < 190
    assert w.sum() == pytest.approx(1.0)


def test_lime_fit_is_scikit_learns_weighted_ridge():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 2, size=(120, 9)).astype(float)
    y = z @ rng.normal(size=9) + 0.1 * rng.normal(size=120)
    w = rng.random(120)
    ours = weighted_ridge(z, y, w, 1.0)
    theirs = Ridge(alpha=1.0, fit_intercept=True).fit(z, y, sample_weight=w).coef_
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)
