"""The metric families against independent implementations on the same inputs and seeds:
Quantus 0.6 (Max/Avg-Sensitivity, Local Lipschitz, Faithfulness Correlation, Relevance Mass and
Rank Accuracy, Sparseness, Complexity, Random Logit) and pytorch-grad-cam's ROAD.

Quantus draws its perturbations from NumPy's global generator; Lucida's are seeded torch draws.
So that both measure the same thing, Quantus is handed Lucida's perturbed inputs through its
``perturb_func`` hook (and Lucida the subsets Quantus drew, for Faithfulness Correlation); the
remaining arithmetic is then compared to float precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from quantus.functions.perturb_func import batch_baseline_replacement_by_indices
from quantus.functions.similarity_func import ssim as quantus_ssim
from torch import nn

from engine.metrics.complexity import complexity, sparseness
from engine.metrics.correlation import faithfulness_correlation
from engine.metrics.localisation import relevance_mass_accuracy, relevance_rank_accuracy
from engine.metrics.randomisation import random_logit
from engine.metrics.road import road, road_subsets
from engine.metrics.robustness import (
    input_perturbations,
    lipschitz_from_maps,
    local_lipschitz,
    sensitivity,
)

H = W = 11  # 11 x 11: pytorch-grad-cam's percentile thresholds then fall on whole pixels
TOL = 1e-5  # float32 maps, float64 arithmetic on both sides


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 4, 3),
                          nn.Softplus(), nn.Flatten(1), nn.Linear(4 * (H - 2) * (W - 2), 3))
    model.eval()
    x = torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(1))
    return model, x


def gradient(model, inputs, targets, **kwargs):
    """Input gradient of each input's target logit (Quantus's explain_func contract)."""
    xs = torch.as_tensor(np.asarray(inputs), dtype=torch.float32).clone().requires_grad_(True)
    out = model(xs)
    t = torch.as_tensor(np.asarray(targets)).long().view(-1)
    out[torch.arange(len(xs)), t].sum().backward()
    return xs.grad.numpy()


def explain_batch_of(model, target):
    return lambda ys: gradient(model, ys, [target] * len(ys))[:, 0]


def feeder(perturbed: torch.Tensor):
    """A Quantus perturb_func that hands out Lucida's perturbed inputs in order."""
    queue = [p.numpy().astype(np.float64) for p in perturbed]

    def perturb(arr, indices, **kwargs):
        return queue.pop(0).reshape(arr.shape)

    return perturb


def _call(metric, model, x, target, a, **kw):
    return metric(model=model, x_batch=x.numpy(), y_batch=np.array([target]),
                  a_batch=a[None, None].astype(np.float32), device="cpu",
                  explain_func=gradient, **kw)


def test_max_and_avg_sensitivity_agree_with_quantus(tiny):
    model, x = tiny
    target, samples, radius = 1, 6, 0.05
    ref = gradient(model, x, [target])[0, 0]
    ours = sensitivity(explain_batch_of(model, target), x, ref, radius=radius, samples=samples,
                       seed=3)
    ys = input_perturbations(x, "uniform", radius, samples, seed=3)
    common = dict(nr_samples=samples, normalise=False, abs=False, disable_warnings=True)
    qmax = _call(quantus.MaxSensitivity(perturb_func=feeder(ys), **common), model, x, target,
                 ref)
    qavg = _call(quantus.AvgSensitivity(perturb_func=feeder(ys), **common), model, x, target,
                 ref)
    assert ours["max_sensitivity"] > 0
    assert ours["max_sensitivity"] == pytest.approx(qmax[0], rel=TOL)
    assert ours["avg_sensitivity"] == pytest.approx(qavg[0], rel=TOL)


def test_local_lipschitz_agrees_with_quantus(tiny):
    model, x = tiny
    target, samples, std = 2, 6, 0.05
    ref = gradient(model, x, [target])[0, 0]
    ours = local_lipschitz(explain_batch_of(model, target), x, ref, std=std, samples=samples,
                           seed=4)
    ys = input_perturbations(x, "gaussian", std, samples, seed=4)
    # Quantus scales the maps by their largest magnitude by default, as Lucida does.
    q = _call(quantus.LocalLipschitzEstimate(perturb_func=feeder(ys), nr_samples=samples,
                                             abs=False, disable_warnings=True),
              model, x, target, ref)
    assert ours["local_lipschitz"] > 0
    assert ours["local_lipschitz"] == pytest.approx(q[0], rel=TOL)
    raw = lipschitz_from_maps(x, ref, ys, explain_batch_of(model, target)(ys), normalise=False)
    q_raw = _call(quantus.LocalLipschitzEstimate(perturb_func=feeder(ys), nr_samples=samples,
                                                 abs=False, normalise=False,
                                                 disable_warnings=True),
                  model, x, target, ref)
    assert raw == pytest.approx(q_raw[0], rel=TOL)


def test_faithfulness_correlation_agrees_with_quantus(tiny):
    model, x = tiny
    target, runs, size = 0, 30, 12
    a = (gradient(model, x, [target]) * x.numpy())[0, 0]
    drawn = []

    def recording(arr, indices, **kw):
        drawn.append(np.asarray(indices).reshape(-1).copy())
        return batch_baseline_replacement_by_indices(arr, indices, **kw)

    np.random.seed(0)
    q = _call(quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size,
                                              perturb_func=recording, perturb_baseline="black",
                                              return_aggregate=False, disable_warnings=True),
              model, x, target, a)
    # The same subsets and a black (0) fill: Lucida's score is the logit here, as Quantus's.
    ours = faithfulness_correlation(model, x, a, target, baseline=0.0,
                                    subsets=np.stack(drawn))
    assert abs(ours["faithfulness_correlation"]) > 0.1
    assert ours["faithfulness_correlation"] == pytest.approx(q[0], abs=TOL)


def test_relevance_mass_and_rank_accuracy_agree_with_quantus(tiny):
    model, x = tiny
    a = np.abs(gradient(model, x, [1])[0, 0])
    mask = np.zeros((H, W), bool)
    mask[2:6, 3:9] = True
    s = mask[None, None].astype(np.float32)
    kw = dict(abs=False, normalise=False, disable_warnings=True)
    mass = _call(quantus.RelevanceMassAccuracy(**kw), model, x, 1, a, s_batch=s)
    rank = _call(quantus.RelevanceRankAccuracy(**kw), model, x, 1, a, s_batch=s)
    assert relevance_mass_accuracy(a, mask) == pytest.approx(mass[0], abs=TOL)
    assert relevance_rank_accuracy(a, mask) == pytest.approx(rank[0], abs=TOL)
    # On purpose: Arras et al. count only positive relevance; Quantus sums a signed map as is.
    signed = gradient(model, x, [1])[0, 0]
    assert relevance_mass_accuracy(signed, mask) == pytest.approx(
        np.clip(signed, 0, None)[mask].sum() / np.clip(signed, 0, None).sum())


def test_sparseness_and_complexity_agree_with_quantus(tiny):
    model, x = tiny
    a = gradient(model, x, [0])[0, 0]
    kw = dict(disable_warnings=True)
    gini = _call(quantus.Sparseness(**kw), model, x, 0, a)
    ent = _call(quantus.Complexity(**kw), model, x, 0, a)
    # Quantus adds 1e-7 to every magnitude (Gini) and 1e-12 inside the log (entropy).
    assert sparseness(a) == pytest.approx(gini[0], abs=1e-5)
    assert complexity(a)[0] == pytest.approx(ent[0], abs=1e-5)


def test_random_logit_agrees_with_quantus(tiny):
    model, x = tiny
    target = 1
    ref = gradient(model, x, [target])[0, 0]

    def explain_class(c):
        return gradient(model, x, [c])[0, 0]

    ours = random_logit(explain_class, ref, target, 3)

    # On purpose: Quantus 0.6 flattens the maps before its SSIM, so its window runs along the
    # raster and across row ends; Lucida measures the SSIM of the 2-D maps. Quantus is given
    # its own SSIM on the maps in 2-D, which keeps its data range and scaling.
    def ssim_2d(a, b, batched=False, **kw):
        pairs = zip(a, b, strict=True)
        return [quantus_ssim(aa.reshape(H, W), bb.reshape(H, W)) for aa, bb in pairs]

    q = _call(quantus.RandomLogit(num_classes=3, seed=42, similarity_func=ssim_2d,
                                  disable_warnings=True), model, x, target, ref)
    assert ours["random_logit_ssim"] == pytest.approx(q[0], abs=TOL)
    # The other class is the one Quantus draws: its map gives the same SSIM.
    other = ours["random_logit_class"]
    assert quantus_ssim(*(m / np.abs(m).max() for m in (ref, explain_class(other)))) == \
        pytest.approx(q[0], abs=TOL)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_agrees_with_pytorch_grad_cam(tiny, order):
    model, x = tiny
    target = 0
    cam = np.abs(gradient(model, x, [target])[0, 0]).astype(np.float32)
    n = H * W
    percentiles = [10, 50, 90]
    remove = RemoveMostRelevantFirst if order == "morf" else RemoveLeastRelevantFirst
    theirs, shares = [], []
    for p in percentiles:
        metric = PerturbationConfidenceMetric(remove(p, NoisyLinearImputer(noise=0.0)))
        theirs.append(float(metric(x, cam[None], [ClassifierOutputTarget(target)], model,
                                   return_diff=False)[0]))
        # The pixels it removes: MoRF those at or above the p-th percentile of the map, LeRF
        # those at or above the p-th percentile of 1 - map.
        key = cam if order == "morf" else 1 - cam
        removed = key >= np.percentile(key, p)
        shares.append(100 * removed.sum() / n)
        ours_mask = road_subsets(cam, [shares[-1]], order)[0]
        assert np.array_equal(ours_mask, removed)
    # Run to convergence, ROAD's linear imputation is the exact solve pytorch-grad-cam does.
    exact = road(model, x, cam, target, percentages=shares, noise=0.0, iterations=400)
    np.testing.assert_allclose(exact[f"road_{order}"], theirs, atol=1e-3)
    # The default iterations (a blur start and 40 Jacobi steps) stay close in score.
    fast = road(model, x, cam, target, percentages=shares, noise=0.0)
    spread = np.ptp(theirs + [exact["road_score"]])
    np.testing.assert_allclose(fast[f"road_{order}"], theirs, atol=0.05 * spread + 1e-3)
