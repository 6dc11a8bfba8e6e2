"""Integrated Gradients, its baselines and quadrature, and the batched gradient methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.core.cancel import CancelToken, no_progress
from engine.explain.api import INPUT_LAYER, resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from plugins.baselines import baseline_input, gaussian_blur
from plugins.gradients import quadrature
from tests.explain_fixtures import TorchModel, gapnet_model, random_image


def _direct(name, capture, **params):
    """Run an explainer on a view of the capture, as the core does: maps and notes."""
    explainer = registry().get(name)
    view = capture.view(explainer.needs)
    maps = explainer.explain(view, view.targets, [], resolve_params(explainer, params),
                             no_progress, CancelToken())
    return maps[INPUT_LAYER], getattr(view, "notes", {})


def _linear_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    return TorchModel(net, ["a", "b"], size=8)


def test_quadrature_rules_integrate_what_they_should_exactly():
    alphas, weights = quadrature(5, "riemann_trapezoid")
    np.testing.assert_allclose(alphas, np.linspace(0, 1, 5))
    assert weights.sum() == pytest.approx(1.0)
    assert (weights * alphas).sum() == pytest.approx(0.5)  # linear integrand: exact
    alphas, weights = quadrature(4, "gausslegendre")
    for degree in range(8):  # Gauss-Legendre on n points is exact up to degree 2n - 1
        assert (weights * alphas**degree).sum() == pytest.approx(1 / (degree + 1))


def test_black_baseline_is_black_in_pixel_space_whatever_the_normalisation():
    # For a linear model, IG from black equals input x gradient in pixel space exactly; a
    # baseline of zero in the normalised space (pixel value 0.5 here) would not.
    model = _linear_model()
    capture = run_capture(model, model.preprocess(random_image(8)), target=1, gradients=False)
    black = baseline_input(capture, "black")
    torch.testing.assert_close(capture.to_pixels(black), torch.zeros_like(black))
    ig, _ = _direct("intgrad", capture, steps=3, baseline="black")
    ixg, _ = _direct("inputxgrad", capture)
    torch.testing.assert_close(ig, ixg, rtol=1e-4, atol=1e-6)
    weights = model.module[1].weight[1].detach().view(3, 8, 8) / 0.25  # d logit / d pixel
    torch.testing.assert_close(ixg[0], (capture.to_pixels(capture.input)[0] * weights).sum(0),
                               rtol=1e-4, atol=1e-6)


def test_completeness_gap_is_reported_and_shrinks_with_steps():
    model = gapnet_model()
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [],
                          gradients=False)
    gaps = {}
    for steps in (2, 64):
        attr, notes = _direct("intgrad", capture, steps=steps, method="riemann_trapezoid")
        (entry,) = notes["intgrad"]
        record = entry["completeness"]
        assert record["sum"] == pytest.approx(float(attr.sum()), rel=1e-4, abs=1e-6)
        with torch.no_grad():
            x = capture.input
            black = baseline_input(capture, "black")
            t = capture.target
            expected = float(model.module(x)[0, t] - model.module(black)[0, t])
        assert record["expected"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
        gaps[steps] = abs(record["gap"])
    assert gaps[64] < gaps[2]
    assert gaps[64] <= 0.02 * abs(expected)


@pytest.mark.parametrize("kind", ["blur", "uniform"])
def test_other_baselines_are_pixel_images_the_same_for_every_input(kind):
    model = gapnet_model()
    x = torch.cat([model.preprocess(random_image(48, seed=s)) for s in (0, 1)])
    capture = run_capture(model, x, "top", [], gradients=False)
    base = capture.to_pixels(baseline_input(capture, kind, seed=3))
    assert base.shape == x.shape
    if kind == "uniform":
        assert 0.0 <= float(base.min()) and float(base.max()) <= 1.0
        torch.testing.assert_close(base[0], base[1])
        torch.testing.assert_close(base, capture.to_pixels(baseline_input(capture, kind, seed=3)))
    else:
        pixels = capture.to_pixels(x)
        # A blur keeps the mean and lowers the variation.
        assert float(base.diff(dim=-1).abs().mean()) < float(pixels.diff(dim=-1).abs().mean())
        torch.testing.assert_close(base.mean(dim=(2, 3)), pixels.mean(dim=(2, 3)), rtol=0.02,
                                   atol=1e-3)


def test_gaussian_blur_keeps_constant_images_and_works_on_volumes():
    flat = torch.full((1, 2, 9, 11), 0.4)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)
    volume = torch.zeros(1, 1, 15, 15, 15)
    volume[0, 0, 7, 7, 7] = 1.0
    blurred = gaussian_blur(volume, 1.0)
    assert blurred.shape == volume.shape
    assert float(blurred.sum()) == pytest.approx(1.0, rel=1e-4)  # far from the borders
    assert float(blurred[0, 0, 7, 7, 6]) == pytest.approx(float(blurred[0, 0, 6, 7, 7]))
    assert float(blurred[0, 0, 7, 7, 7]) < 0.1


@pytest.mark.parametrize("name,params", [
    ("saliency", {}), ("inputxgrad", {}), ("intgrad", {"steps": 4, "baseline": "uniform"}),
    ("smoothgrad", {"samples": 3, "base": "inputxgrad"}), ("guidedbackprop", {}),
])
def test_batched_maps_equal_the_maps_of_each_input_alone(name, params):
    model = gapnet_model()
    x = torch.cat([model.preprocess(random_image(48, seed=s)) for s in (0, 1, 2)])
    capture = run_capture(model, x, [0, 1, 2], [], gradients=False)
    together, _ = _direct(name, capture, batch_size=5, **params)
    assert together.shape == (3, 48, 48)
    for i in range(3):
        alone, _ = _direct(name, capture.select(i), **params)
        torch.testing.assert_close(together[i], alone[0], rtol=1e-4, atol=1e-6)
