"""Estimators that say how accurate they are: adaptive Integrated Gradients, KernelSHAP's error
bars, LIME's fit.

Checked against closed forms (a linear and a polynomial network, additive games), exact Shapley
values by enumeration, and scikit-learn's weighted R^2.
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pytest
import torch
import torchvision
from sklearn.metrics import r2_score
from torch import nn

from engine.core.cancel import CancelToken, no_progress
from engine.explain.api import resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from engine.models.loaded import load_model
from plugins.baselines import baseline_input
from plugins.path_quadrature import START_PANELS
from plugins.shapley_estimation import Z95, estimate_shapley
from plugins.superpixels import superpixels, weighted_ridge
from tests.explain_fixtures import TorchModel, random_image


def _direct(name, capture, **params):
    """Run an explainer on a view of the capture, as the core does: maps and notes."""
    explainer = registry().get(name)
    view = capture.view(explainer.needs)
    maps = explainer.explain(view, view.targets, [], resolve_params(explainer, params),
                             no_progress, CancelToken())
    return maps["input"], view.notes[name]


class _Power(nn.Module):
    """Logit 1 is ``(w . p)^k`` of the [0, 1] pixels ``p`` (the fixtures normalise (p-0.5)/0.25)."""

    def __init__(self, power, size=8):
        super().__init__()
        torch.manual_seed(0)
        self.w = nn.Parameter(torch.rand(3 * size * size) / (3 * size * size))
        self.power = power

    def forward(self, x):
        pixels = (x * 0.25 + 0.5).flatten(1)
        value = (pixels @ self.w) ** self.power
        return torch.stack([torch.zeros_like(value), value], 1)


def _capture(module, size=8, seed=0):
    model = TorchModel(module, ["a", "b"], size=size)
    return model, run_capture(model, model.preprocess(random_image(size, seed=seed)), target=1,
                              gradients=False)


def test_completeness_gap_is_exactly_zero_on_a_linear_model():
    _, capture = _capture(_Power(1))
    attr, (note,) = _direct("intgrad", capture)
    record = note["completeness"]
    assert note["quadrature"]["passes"] == START_PANELS + 1  # nothing to refine
    assert note["quadrature"]["stopped_by"] == "tolerance"
    assert abs(record["gap"]) <= 1e-6 * abs(record["expected"])
    pixels = capture.to_pixels(capture.input)[0]
    w = capture.model.module.w.detach().view(3, 8, 8)
    # IG from black of a linear function is (p - 0) * w, summed over channels.
    torch.testing.assert_close(attr[0], (pixels * w).sum(0), rtol=1e-4, atol=1e-7)


def test_completeness_gap_has_its_closed_form_on_a_polynomial_model():
    # f = (w . p)^2: the path integrand is linear in alpha, so every rule is exact and each
    # pixel's attribution is p_i w_i 2 (w . p) / 2 = p_i w_i (w . p).
    _, capture = _capture(_Power(2))
    attr, (note,) = _direct("intgrad", capture)
    pixels = capture.to_pixels(capture.input)[0]
    w = capture.model.module.w.detach().view(3, 8, 8)
    s = float((pixels * w).sum())
    torch.testing.assert_close(attr[0], (pixels * w).sum(0) * s, rtol=1e-4, atol=1e-8)
    assert abs(note["completeness"]["gap"]) <= 1e-5 * s**2
    # f = (w . p)^3: g(alpha) = 3 alpha^2 F, and the trapezoid on n equal points is off by
    # F h^2 / 2 with h = 1 / (n - 1): the reported relative gap is h^2 / 2 exactly.
    _, capture = _capture(_Power(3))
    for steps in (3, 5, 9):
        _, (note,) = _direct("intgrad", capture, method="riemann_trapezoid", steps=steps)
        h = 1.0 / (steps - 1)
        assert note["completeness"]["relative_gap"] == pytest.approx(h * h / 2, rel=1e-3)
        assert note["completeness"]["gap"] > 0
    # The adaptive rule measures the same error per panel and refines until it is small.
    _, (note,) = _direct("intgrad", capture, tolerance=1e-3)
    assert note["completeness"]["relative_gap"] <= 1e-3
    assert note["quadrature"]["passes"] > START_PANELS + 1


def _independent_gap(model, capture, attr):
    """|sum(attr) - (f(x) - f(black))| / |f(x) - f(black)|, by running the network directly."""
    black = baseline_input(capture, "black")
    with torch.no_grad():
        t = capture.target
        change = float(model.module(capture.input)[0, t] - model.module(black)[0, t])
    return abs(float(attr.sum()) - change) / abs(change)


@pytest.mark.parametrize("which", ["resnet18", "demo"])
def test_adaptive_integrated_gradients_meets_its_tolerance(which):
    if which == "resnet18":
        torch.manual_seed(0)
        net = torchvision.models.resnet18(num_classes=4)
        model = TorchModel(net, list("abcd"), size=32)
    else:
        model = load_model("demo")
    image = random_image(64, seed=1)
    if which == "demo":
        image.pixels = image.pixels.mean(-1)  # the demo model reads grey images
    capture = run_capture(model, model.preprocess(image), "top", [], gradients=False)
    attr, (note,) = _direct("intgrad", capture, tolerance=0.01, max_steps=1024)
    assert note["quadrature"]["stopped_by"] == "tolerance"
    assert note["quadrature"]["passes"] < 1024
    assert _independent_gap(model, capture, attr) <= 0.01
    assert note["completeness"]["relative_gap"] == pytest.approx(
        _independent_gap(model, capture, attr), rel=1e-2, abs=1e-4)


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


def _run(game, m, seed, passes, sampling="kernel"):
    empty = game(np.zeros(m, bool))
    return estimate_shapley(lambda z: np.array([game(r) for r in z]) - empty, m,
                            game(np.ones(m, bool)) - empty, np.random.default_rng(seed),
                            tolerance=1e-9, max_passes=passes, sampling=sampling)


@pytest.mark.parametrize("sampling", ["kernel", "leverage"])
def test_paired_kernelshap_is_exact_with_no_error_on_an_additive_game(sampling):
    rng = np.random.default_rng(0)
    w = rng.normal(size=12)
    found = _run(lambda z: 0.3 + w @ z, 12, 1, 65, sampling)
    np.testing.assert_allclose(found.values, w, atol=1e-9)
    np.testing.assert_allclose(found.standard_errors, 0.0, atol=1e-9)


def _interactions(z):
    """Three players with a pair and a triple interaction (Shapley values by hand below)."""
    return float(1.0 * z[0] + 2.0 * z[1] - 0.5 * z[2] + 3.0 * z[0] * z[1]
                 - 2.0 * z[0] * z[1] * z[2])


@pytest.mark.parametrize("sampling", ["kernel", "leverage"])
def test_paired_kernelshap_is_unbiased_and_its_error_bars_cover_at_their_rate(sampling):
    # Shapley: each interaction is split equally among its players.
    truth = np.array([1 + 1.5 - 2 / 3, 2 + 1.5 - 2 / 3, -0.5 - 2 / 3])
    np.testing.assert_allclose(_exact_shapley(_interactions, 3), truth)
    runs = [_run(_interactions, 3, seed, 2 * 40 + 1, sampling) for seed in range(400)]
    values = np.array([r.values for r in runs])
    errors = np.array([r.standard_errors for r in runs])
    spread = values.std(0) / np.sqrt(len(runs))
    assert np.all(np.abs(values.mean(0) - truth) <= 4 * spread + 1e-3)
    # The errors match the spread of the estimates, and 95 % intervals cover about 95 %.
    np.testing.assert_allclose(errors.mean(0), values.std(0), rtol=0.2)
    covered = (np.abs(values - truth) <= Z95 * errors).mean()
    assert 0.90 <= covered <= 0.99, covered


def test_error_bars_cover_exact_shapley_values_of_a_ten_player_game():
    rng = np.random.default_rng(3)
    w, pairs = rng.normal(size=10), rng.normal(size=(10, 10)) * 0.4

    def game(z):
        zf = z.astype(float)
        return float(np.tanh(w @ zf) + zf @ np.triu(pairs, 1) @ zf)

    truth = _exact_shapley(game, 10)
    runs = [_run(game, 10, seed, 2 * 64 + 1) for seed in range(150)]
    values = np.array([r.values for r in runs])
    errors = np.array([r.standard_errors for r in runs])
    covered = (np.abs(values - truth) <= Z95 * errors).mean()
    assert 0.88 <= covered <= 0.99, covered


def test_kernelshap_stops_at_its_tolerance_and_notes_standard_errors():
    # (w . p)^2 through a softmax: far from additive in the superpixels.
    module = _Power(2, size=32)
    with torch.no_grad():
        module.w.mul_(4.0)
    model = TorchModel(module, ["a", "b"], size=32)
    capture = run_capture(model, model.preprocess(random_image(32, seed=2)), target=1,
                          gradients=False)
    _, (loose,) = _direct("kernelshap", capture, segments=16, tolerance=0.2, samples=4000)
    _, (tight,) = _direct("kernelshap", capture, segments=16, tolerance=0.02, samples=4000)
    for note in (loose, tight):
        assert note["stopped_by"] == "tolerance"
        assert len(note["standard_errors"]) == note["superpixels"]
    assert loose["passes"] < tight["passes"] <= 4000
    assert max(tight["standard_errors"]) < max(loose["standard_errors"])


def test_lime_notes_the_weighted_r2_of_its_surrogate():
    # A linear network is linear in the superpixels shown; through a softmax of a small logit
    # the score is nearly so, and the surrogate fits it almost perfectly.
    module = _Power(1, size=32)
    with torch.no_grad():
        module.w.mul_(0.5)
    model = TorchModel(module, ["a", "b"], size=32)
    capture = run_capture(model, model.preprocess(random_image(32, seed=4)), target=1,
                          gradients=False)
    _, (note,) = _direct("lime", capture, segments=12, samples=300, seed=5)
    labels = superpixels(capture, 12, 0.3)
    m = int(labels.max()) + 1
    # The same samples LIME draws, scored here directly, and scikit-learn's weighted R^2.
    z = np.random.default_rng(5).integers(0, 2, size=(300, m)).astype(bool)
    z[0] = True
    x, black = capture.input, baseline_input(capture, "black")
    keep = torch.as_tensor(z)[:, torch.as_tensor(labels)]
    with torch.no_grad():
        y = torch.softmax(model.module(torch.where(keep[:, None], x, black)), 1)[:, 1]
    y = y.double().numpy()
    present = z.sum(1)
    w = np.exp(-((1.0 - np.sqrt(present / m)) ** 2) / 0.25**2)
    coef = weighted_ridge(z.astype(float), y, w, 1.0)
    intercept = (w @ y) / w.sum() - ((w @ z) / w.sum()) @ coef
    expected = r2_score(y, intercept + z @ coef, sample_weight=w)
    assert note["r2"] == pytest.approx(expected, rel=1e-9)
    assert note["r2"] > 0.98
