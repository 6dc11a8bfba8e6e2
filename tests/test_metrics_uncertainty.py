"""Uncertainty of a prediction: test-time augmentation, MC dropout and map movement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_fixtures import write_png
from scipy.stats import spearmanr
from torch import nn

from engine.core.cancel import Cancelled, CancelToken
from engine.metrics.case import map_function
from engine.metrics.uncertainty import (
    augmentations,
    case_uncertainty,
    prediction_uncertainty,
    top_overlap,
    warp,
)
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from engine.models.volume_preprocess import VolumeSpec
from engine.studies.image import open_image


def _identity_cam(conv) -> nn.Sequential:
    """A 1x1 convolution that copies the input, then pooling: Grad-CAM on the convolution is the
    standardised input itself (a constant gradient weight times the activation), so the map
    follows every geometric augmentation exactly."""
    net = nn.Sequential(conv, nn.ReLU(), (nn.AdaptiveAvgPool2d(1) if isinstance(conv, nn.Conv2d)
                                         else nn.AdaptiveAvgPool3d(1)),
                        nn.Flatten(), nn.Linear(1, 2))
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(4.0)  # keeps the ReLU open for every standardised pixel
        net[-1].weight.copy_(torch.tensor([[3.0], [-3.0]]))
        net[-1].bias.zero_()
    return net.eval()


def _blob(size=32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = torch.tensor(rng.random((1, 1, 4, 4)), dtype=torch.float32)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                           align_corners=False)[0, 0].numpy()


SPEC = InputSpec(size=(32, 32), channels=1, mean=(0.5,), std=(0.25,))


def test_an_integer_shift_moves_a_point_and_the_inverse_brings_it_back():
    img = torch.zeros(1, 1, 32, 32)
    img[0, 0, 10, 12] = 1.0
    aug = augmentations(1, 2)[0].__class__(shift=(2 / 32, -3 / 32), angle=0.0, gain=1, offset=0)
    moved = warp(img, [aug], padding="zeros")
    assert moved[0, 0].argmax().item() == (10 + 2) * 32 + (12 - 3)
    assert torch.allclose(warp(moved, [aug], inverse=True, padding="zeros"), img, atol=1e-5)


def test_rotation_round_trip_on_a_smooth_image():
    img = torch.tensor(_blob())[None, None]
    augs = augmentations(4, 2, seed=5)
    there = warp(img.expand(4, 1, 32, 32).contiguous(), augs)
    back = warp(there, augs, inverse=True, padding="zeros")
    covered = warp(torch.ones_like(there), augs, inverse=True, padding="zeros") > 0.999
    err = (back - img).abs()[covered]
    assert covered.float().mean() > 0.7 and err.max() < 0.05


def test_augmentations_are_seeded_small_and_have_no_flip():
    a, b = augmentations(20, 2, seed=3), augmentations(20, 2, seed=3)
    assert a == b and a != augmentations(20, 2, seed=4)
    assert all(abs(s) <= 0.04 for g in a for s in g.shift)
    assert all(abs(g.angle) <= 5 and 0.9 <= g.gain <= 1.1 for g in a)
    assert all(g.angle == 0 and len(g.shift) == 3 for g in augmentations(5, 3))


def test_top_overlap_closed_form():
    a = np.arange(100.0)
    assert top_overlap(a, a) == 1.0
    assert top_overlap(a, -a) == 0.0
    assert top_overlap(a, np.r_[a[:95], a[95:] - 200]) == pytest.approx(0.5)


def test_an_equivariant_map_stays_put_and_the_figures_match_scipy(tmp_path):
    model = LoadedModel.from_module(_identity_cam(nn.Conv2d(1, 1, 1)), classes=["a", "b"],
                                    input=SPEC, name="copy")
    image = open_image(write_png(_blob(), tmp_path / "blob.png"))
    from types import SimpleNamespace

    result = SimpleNamespace(target=0, params={}, frame=0)
    u = case_uncertainty(result, image, model, "gradcam", "0", n=8, seed=1)
    assert u["map_spearman_mean"] > 0.97 and u["map_top_overlap_mean"] > 0.8
    assert u["decision_flips"] == 0 and u["summary"].startswith("stable: 8/8 augmentations agree")
    assert "no dropout layers" in u["summary"] and u["mc_dropout"] == {"dropout_layers": 0}
    # The probabilities are the model's on the augmented inputs, made here independently.
    x = model.preprocess(image)
    pixels = x * 0.25 + 0.5
    augs = augmentations(8, 2, seed=1)
    moved = warp(pixels.expand(8, 1, 32, 32).contiguous(), augs)
    gains = torch.tensor([a.gain for a in augs]).reshape(8, 1, 1, 1)
    offs = torch.tensor([a.offset for a in augs]).reshape(8, 1, 1, 1)
    moved = ((moved - 0.5) * gains + 0.5 + offs).clamp(0, 1)
    with torch.no_grad():
        p = torch.softmax(model.module((moved - 0.5) / 0.25), 1)[:, 0].numpy()
    got = [a["probability"] for a in u["per_augmentation"]]
    assert np.allclose(got, p, atol=1e-5)
    assert u["probability_std"] == pytest.approx(p.std(), abs=1e-6)
    # The first augmentation's map, made one at a time, undone here and ranked by scipy.
    ref = map_function(model, "gradcam", "0", x)(model.module, 0)
    one = map_function(model, "gradcam", "0", (moved[:1] - 0.5) / 0.25)(model.module, 0)
    back = warp(torch.tensor(one)[None, None], augs[:1], inverse=True, padding="zeros")[0, 0]
    covered = warp(torch.ones(1, 1, 32, 32), augs[:1], inverse=True, padding="zeros")[0, 0]
    mask = covered.numpy() > 0.999
    rho = spearmanr(ref[mask], back.numpy()[mask]).statistic
    assert u["per_augmentation"][0]["map_spearman"] == pytest.approx(rho, abs=1e-6)


def test_a_sigmoid_decision_flips_exactly_where_brightness_falls():
    # p = sigmoid(k * (mean pixel - 0.5)): on a flat 0.5 image the probability sits on the
    # threshold, and an augmentation flips the finding exactly when its offset is negative.
    net = _identity_cam(nn.Conv2d(1, 1, 1))
    with torch.no_grad():
        net[0].bias.fill_(4.0)
        net[-1].weight.copy_(torch.tensor([[10.0], [1.0]]))
        net[-1].bias.copy_(torch.tensor([-40.0, 0.0]))
    model = LoadedModel.from_module(net, classes=["finding", "other"], input=SPEC,
                                    output="sigmoid", threshold=0.5)
    x = torch.zeros(1, 1, 32, 32)  # pixel 0.5 everywhere
    u = prediction_uncertainty(model, x, 0, None, None, n=20, seed=2)
    expected = sum(a.offset < 0 for a in augmentations(20, 2, seed=2))
    assert 0 < expected < 20
    assert u["decision_flips"] == expected
    assert u["probability"] == pytest.approx(0.5)
    assert u["map_spearman_mean"] is None


def test_a_model_that_ignores_its_input_has_no_spread():
    net = _identity_cam(nn.Conv2d(1, 1, 1))
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.copy_(torch.tensor([1.0, 0.0]))
    model = LoadedModel.from_module(net, classes=["a", "b"], input=SPEC)
    u = prediction_uncertainty(model, torch.randn(1, 1, 32, 32), 0, None, None, n=6)
    assert u["probability_std"] == pytest.approx(0.0, abs=1e-7)
    assert u["decision_flips"] == 0


def test_mc_dropout_draws_are_seeded_and_leave_the_model_in_eval():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 2)).eval()
    model = LoadedModel.from_module(net, classes=["a", "b"], input=SPEC)
    x = torch.randn(1, 1, 32, 32)
    one = prediction_uncertainty(model, x, 1, "gradcam", "0", n=4, seed=7, draws=30)
    two = prediction_uncertainty(model, x, 1, "gradcam", "0", n=4, seed=7, draws=30)
    drop = one["mc_dropout"]
    assert drop["dropout_layers"] == 1 and drop["std"] > 0 and drop == two["mc_dropout"]
    assert not any(m.training for m in net.modules())
    assert "MC dropout" in one["summary"]


def test_a_volume_gets_three_d_shifts_and_its_map_follows():
    spec = VolumeSpec(size=(12, 16, 16), channels=1, mean=(0.5,), std=(0.25,),
                      spacing=(2.0, 1.0, 1.0), window=(0.0, 1.0))
    model = LoadedModel.from_module(_identity_cam(nn.Conv3d(1, 1, 1)), classes=["a", "b"],
                                    input=spec)
    coarse = torch.rand((1, 1, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.interpolate(coarse, size=(12, 16, 16), mode="trilinear") * 4 - 2
    u = prediction_uncertainty(model, x, 0, "gradcam", "0", n=5)
    assert u["kind"] == "3-D shift, contrast"
    assert all(a["angle"] == 0 and len(a["shift"]) == 3 for a in u["per_augmentation"])
    assert u["map_spearman_mean"] > 0.95


def test_cancel_stops_the_augmented_maps():
    model = LoadedModel.from_module(_identity_cam(nn.Conv2d(1, 1, 1)), classes=["a", "b"],
                                    input=SPEC)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        prediction_uncertainty(model, torch.zeros(1, 1, 32, 32), 0, "gradcam", "0", n=4,
                               cancel=token)


def test_the_battery_adds_the_uncertainty_of_the_shown_case(tmp_path):
    from metrics_fixtures import fake_result

    from engine.metrics.battery import trust_battery

    model = LoadedModel.from_module(_identity_cam(nn.Conv2d(1, 1, 1)), classes=["a", "b"],
                                    input=SPEC)
    image = open_image(write_png(_blob(), tmp_path / "blob.png"))
    x = model.preprocess(image)
    result = fake_result(model, image, {("gradcam", "0"): map_function(
        model, "gradcam", "0", x)(model.module, 1)}, target=1)
    seen = []
    out = trust_battery(None, result, image, model, "gradcam", "0", sanity=False,
                        progress=lambda f, m="": seen.append(f))
    alone = case_uncertainty(result, image, model, "gradcam", "0")
    assert out["uncertainty"]["summary"] == alone["summary"]
    assert out["uncertainty"]["probability"] == pytest.approx(out["score"], abs=1e-5)
    assert seen == sorted(seen) and seen[-1] == 1.0
