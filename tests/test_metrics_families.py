"""The metric families on closed-form cases: a linear model whose map is exactly its input
weights (or their contribution), a constant map, and a map independent of the model; then the
battery end to end through the explain core on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_fixtures import fake_result, nodule_phantom, write_png
from skimage.metrics import structural_similarity
from torch import nn

from engine.core.cancel import Cancelled, CancelToken
from engine.explain.core import explain_one
from engine.metrics import case_metrics
from engine.metrics.case import map_function
from engine.metrics.complexity import complexity, sparseness
from engine.metrics.correlation import faithfulness_correlation
from engine.metrics.families import FAMILIES, judge, metric_families
from engine.metrics.localisation import relevance_mass_accuracy, relevance_rank_accuracy
from engine.metrics.randomisation import map_ssim, random_logit, random_logit_class
from engine.metrics.road import road
from engine.metrics.robustness import (
    batch_explainer,
    input_perturbations,
    local_lipschitz,
    sensitivity,
)
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from engine.studies.image import open_image

H = W = 12


class Linear(nn.Module):
    """``f_c(x) = sum(w_c * x)``: its gradient is ``w_c`` whatever the input."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(weights)

    def forward(self, x):
        return (x.flatten(1)[:, None, :] * self.w.flatten(1)[None]).sum(-1)


@pytest.fixture
def linear():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 1, H, W, generator=g)
    x = torch.rand(1, 1, H, W, generator=g) * 0.8 + 0.1
    return Linear(w), w, x


def gradient_map(model, target):
    def explain(xs):
        xs = xs.clone().requires_grad_(True)
        model(xs)[:, target].sum().backward()
        return xs.grad[:, 0].numpy()

    return explain


def test_robustness_is_zero_for_a_map_that_is_the_input_weights(linear):
    model, w, x = linear
    explain = gradient_map(model, 1)
    ref = explain(x)[0]
    np.testing.assert_allclose(ref, w[1, 0].numpy(), atol=1e-6)
    s = sensitivity(explain, x, ref, samples=5)
    assert s["max_sensitivity"] == pytest.approx(0.0, abs=1e-6)
    assert s["avg_sensitivity"] == pytest.approx(0.0, abs=1e-6)
    assert local_lipschitz(explain, x, ref, samples=5)["local_lipschitz"] == pytest.approx(
        0.0, abs=1e-5)


def test_robustness_of_a_map_that_is_the_input_itself():
    # A map independent of the model: the image. Its change is the perturbation itself, so the
    # sensitivity is ||y - x|| / ||x|| and the Lipschitz constant (unscaled maps) exactly 1.
    x = torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    explain = lambda xs: xs[:, 0].numpy()  # noqa: E731
    s = sensitivity(explain, x, x[0, 0].numpy(), radius=0.05, samples=6, seed=3)
    ys = input_perturbations(x, "uniform", 0.05, 6, seed=3)
    rel = (ys - x).flatten(1).norm(dim=1) / x.norm()
    assert s["max_sensitivity"] == pytest.approx(float(rel.max()), rel=1e-5)
    assert s["avg_sensitivity"] == pytest.approx(float(rel.mean()), rel=1e-5)
    lip = local_lipschitz(explain, x, x[0, 0].numpy(), samples=6, normalise=False)
    assert lip["local_lipschitz"] == pytest.approx(1.0, rel=1e-4)
    # A constant map never moves.
    const = lambda xs: np.ones((len(xs), H, W), np.float32)  # noqa: E731
    assert sensitivity(const, x, np.ones((H, W)))["max_sensitivity"] == 0.0


def test_perturbations_are_seeded_and_bounded():
    x = torch.full((1, 1, H, W), 0.99)
    a = input_perturbations(x, "gaussian", 0.1, 4, seed=7)
    assert torch.equal(a, input_perturbations(x, "gaussian", 0.1, 4, seed=7))
    assert not torch.equal(a, input_perturbations(x, "gaussian", 0.1, 4, seed=8))
    assert a.max() <= 1.0 and a.min() >= 0.0
    u = input_perturbations(torch.full((1, 1, H, W), 0.5), "uniform", 0.02, 4)
    assert (u - 0.5).abs().max() <= 0.02 + 1e-7


def test_faithfulness_correlation_is_one_for_the_exact_contribution_map(linear):
    model, w, x = linear
    # Against a constant baseline b, f(x) - f(x_S) = sum_S w (x - b): the map w * (x - b)
    # correlates exactly 1, its negative -1, a constant map 0 (its totals never vary).
    b = 0.2
    exact = (w[0, 0] * (x[0, 0] - b)).numpy()
    fc = faithfulness_correlation(model, x, exact, 0, baseline=b, runs=20, subset=10)
    assert fc["faithfulness_correlation"] == pytest.approx(1.0, abs=1e-6)
    neg = faithfulness_correlation(model, x, -exact, 0, baseline=b, runs=20, subset=10)
    assert neg["faithfulness_correlation"] == pytest.approx(-1.0, abs=1e-6)
    flat = faithfulness_correlation(model, x, np.ones((H, W)), 0, baseline=b, runs=20)
    assert flat["faithfulness_correlation"] == 0.0
    # A map independent of the model: near 0 (|r| < 4 / sqrt(runs) with ample margin).
    noise = np.random.default_rng(5).random((H, W))
    indep = faithfulness_correlation(model, x, noise, 0, baseline=b, runs=200, subset=10)
    assert abs(indep["faithfulness_correlation"]) < 4 / np.sqrt(200)


def test_road_closed_forms(linear):
    model, w, x = linear
    # A constant map: MoRF and LeRF break ties the same way, so they remove the same pixels.
    flat = road(model, x, np.ones((H, W)), 0, noise=0.0)
    assert flat["road_gap"] == pytest.approx(0.0, abs=1e-9)
    assert flat["road_morf"] == pytest.approx(flat["road_lerf"])
    # A constant image: linear imputation rebuilds it exactly, nothing moves.
    const = torch.full((1, 1, H, W), 0.4)
    r = road(model, const, w[0, 0].numpy(), 0, noise=0.0)
    assert r["road_morf"] == pytest.approx([r["road_score"]] * 9, abs=1e-4)
    # A positive model on a bright blob over a dark field: the map that is the weights removes
    # the blob first (MoRF falls), last for LeRF.
    yy, xx = np.mgrid[0:H, 0:W]
    blob = np.exp(-((yy - 6) ** 2 + (xx - 6) ** 2) / 4.0)
    img = torch.tensor(0.1 + 0.8 * blob, dtype=torch.float32)[None, None]
    pos = Linear(torch.tensor(blob, dtype=torch.float32)[None, None].repeat(3, 1, 1, 1))
    good = road(pos, img, blob, 0, noise=0.0)
    assert good["road_gap"] > 0.5 and good["road_morf"][-1] < good["road_lerf"][-1]
    assert road(pos, img, -blob, 0, noise=0.0)["road_gap"] < -0.5


def test_localisation_closed_forms():
    mask = np.zeros((H, W), bool)
    mask[2:5, 3:7] = True
    share = mask.mean()
    const = np.ones((H, W))
    assert relevance_mass_accuracy(const, mask) == pytest.approx(share)
    assert relevance_rank_accuracy(const, mask) == pytest.approx(share)
    inside = mask.astype(float) + 0.01 * np.random.default_rng(0).random((H, W))
    assert relevance_rank_accuracy(inside, mask) == 1.0
    assert relevance_mass_accuracy(mask.astype(float), mask) == 1.0
    # Negative relevance is not located evidence: only the positive mass counts.
    signed = mask.astype(float) - 3.0 * (~mask)
    assert relevance_mass_accuracy(signed, mask) == 1.0
    assert relevance_mass_accuracy(-const, mask) == 0.0


def test_complexity_closed_forms():
    n = H * W
    const = np.full((H, W), 2.0)
    assert sparseness(const) == pytest.approx(0.0, abs=1e-12)
    ent, norm = complexity(const)
    assert ent == pytest.approx(np.log(n)) and norm == pytest.approx(1.0)
    one = np.zeros((H, W))
    one[3, 4] = -5.0
    assert sparseness(one) == pytest.approx(1 - 1 / n)
    assert complexity(one) == (0.0, 0.0)
    # Two equal spikes: Gini 1 - 2/n, entropy log 2.
    one[7, 1] = 5.0
    assert sparseness(one) == pytest.approx(1 - 2 / n)
    assert complexity(one)[0] == pytest.approx(np.log(2))


def test_random_logit_closed_forms(linear):
    model, w, x = linear
    other = random_logit_class(0, 3)
    assert other in (1, 2) and other == random_logit_class(0, 3)
    grads = lambda c: gradient_map(model, c)(x)[0]  # noqa: E731
    rl = random_logit(grads, grads(0), 0, 3)
    # The gradient maps are the weights: the SSIM is that of w_0 and w_other, peak-scaled.
    a, b = (m / np.abs(m).max() for m in (w[0, 0].numpy(), w[other, 0].numpy()))
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    want = structural_similarity(a.astype(float), b.astype(float), win_size=7, data_range=span)
    assert rl["random_logit_ssim"] == pytest.approx(want, abs=1e-5)
    # A map independent of the model (the image) is the same for every class.
    image = lambda c: x[0, 0].numpy()  # noqa: E731
    same = random_logit(image, image(0), 0, 3)
    assert same["random_logit_ssim"] == pytest.approx(1.0)
    assert same["random_logit_spearman"] == pytest.approx(1.0)
    assert map_ssim(np.ones((H, W)), np.ones((H, W))) == 1.0


def test_judgements_follow_the_thresholds():
    assert judge("max_sensitivity", 0.05) == "good"
    assert judge("max_sensitivity", 0.9) == "poor"
    assert judge("road_gap", 0.1) == "fair"
    assert judge("relevance_mass_accuracy", 0.3, chance=0.4) == "poor"
    assert judge("local_lipschitz", 3.0) is None


def test_battery_on_the_linear_model_judges_the_weights_map_good(linear):
    model, w, x = linear
    mask = np.zeros((H, W), bool)
    mask[w[0, 0].numpy() > 1.0] = True
    explain = gradient_map(model, 0)
    out = metric_families(model, explain, lambda c: gradient_map(model, c)(x)[0], x,
                          w[0, 0].numpy(), 0, num_classes=3, roi_region=mask, samples=4)
    assert set(FAMILIES) <= set(out)
    fig = {f["name"]: f for fam in FAMILIES for f in out[fam]}
    assert fig["max_sensitivity"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert fig["max_sensitivity"]["judgement"] == "good"
    assert fig["relevance_rank_accuracy"]["value"] == 1.0
    for f in fig.values():
        assert f["meaning"] and f["citation"] and f["better"] in ("lower", "higher")


def _tiny():
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        nn.Linear(8, 3))
    spec = InputSpec(size=(32, 32), channels=1, mean=(0.3,), std=(0.2,))
    return LoadedModel.from_module(module, classes=["a", "b", "c"], input=spec, name="tiny")


def test_battery_through_the_core_matches_one_at_a_time(tmp_path):
    phantom = nodule_phantom(size=64)
    image = open_image(write_png(phantom.pixels, tmp_path / "case.png"))
    model = _tiny()
    x = model.preprocess(image)
    one = map_function(model, "gradcam", "3", x)
    raw = one(model.module, 1)
    result = fake_result(model, image, {("gradcam", "3"): raw}, target=1)
    # The batched explainer gives, input by input, what the one-input core gives.
    batch = batch_explainer(model, "gradcam", "3", x, 1, batch_size=3)
    # The card normalises with mean 0.3 and std 0.2: pixels are x * 0.2 + 0.3.
    ys = input_perturbations(x * 0.2 + 0.3, "uniform", 0.02, 4)
    maps = batch(ys)
    for i in range(4):
        want = explain_one(model, (ys[i:i + 1] - 0.3) / 0.2, "gradcam", "3", 1)
        np.testing.assert_allclose(maps[i], want, rtol=1e-4, atol=1e-6)
    m = case_metrics(None, result, image, model, "gradcam", "3", roi=phantom.lesion_box,
                     sanity=False, steps=4, families=True)
    fam = m["families"]
    assert [f["name"] for f in fam["robustness"]][:2] == ["max_sensitivity", "avg_sensitivity"]
    assert len(fam["localisation"]) == 2 and len(fam["randomisation"]) == 2
    assert fam["random_logit_class"] in (0, 2)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        case_metrics(None, result, image, model, "gradcam", "3", sanity=False, steps=4,
                     families=True, cancel=token)
