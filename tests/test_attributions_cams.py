"""Ablation-CAM, counterfactual Grad-CAM and the Score-CAM weightings, each by its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from engine.explain import core
from engine.explain.api import resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from tests.explain_fixtures import TorchModel, gapnet_model, random_image


def _explain(name, capture, layer, **params):
    explainer = registry().get(name)
    the_plan = core.Plan([explainer], {name: resolve_params(explainer, params)}, [layer], False)
    got = core.explain(capture, the_plan)
    assert not got.errors[0], got.errors[0]
    return got.maps[0][(name, layer)]


def _logits_without_channel(model, x, layer, k):
    def hook(_m, _i, out):
        out = out.clone()
        out[:, k] = 0.0
        return out

    handle = model.module.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model.module(x)
    finally:
        handle.remove()


def test_ablationcam_follows_its_definition_and_skips_dead_channels():
    model = gapnet_model()
    layer = "features.3"
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [layer],
                          gradients=False)
    acts = capture.activations[layer][0]
    t = capture.target
    y = float(capture.logits[0, t])
    weights = torch.tensor([
        (y - float(_logits_without_channel(model, capture.input, layer, k)[0, t])) / abs(y)
        for k in range(acts.shape[0])
    ])
    expected = torch.relu(torch.einsum("c,chw->hw", weights, acts))
    ours = _explain("ablationcam", capture, layer, batch_size=5)
    assert float(expected.max()) > 0
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    # After the ReLU some channels are zero everywhere; ablating them is not run.
    relu_layer = "features.4"
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [relu_layer],
                          gradients=False)
    live = int((capture.activations[relu_layer][0].flatten(1).amax(1) > 0).sum())
    before = capture.scored_images
    _explain("ablationcam", capture, relu_layer)
    assert 0 < capture.scored_images - before <= live + 1


def test_counterfactual_gradcam_negates_the_gradients():
    model = gapnet_model()
    layer = "features.4"
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [layer])
    acts, grads = capture.activations[layer][0], capture.gradients[layer][0]
    alpha = grads.mean(dim=(1, 2))
    expected = torch.relu(-torch.einsum("c,chw->hw", alpha, acts))
    ours = _explain("gradcam", capture, layer, counterfactual=True)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)
    plain = _explain("gradcam", capture, layer)
    assert float(ours.max()) > 0 and float(plain.max()) > 0
    # Where one is positive the other is zero: the two maps split the layer's evidence.
    assert float((ours * plain).abs().max()) == 0.0
    # On a GAP -> linear network Grad-CAM's weights are w_c / (h w): the counterfactual map is
    # the negative part of the class activation map, read from the linear layer directly.
    w = model.module.fc.weight[capture.target].detach()
    cam = torch.einsum("c,chw->hw", w, acts) / (acts.shape[1] * acts.shape[2])
    torch.testing.assert_close(ours, torch.relu(-cam), rtol=1e-4, atol=1e-7)


def _scorecam_inputs(model, capture, layer):
    acts = capture.activations[layer][0]
    x = capture.input
    with torch.no_grad():
        up = F.interpolate(acts[None], size=x.shape[-2:], mode="bilinear")[0]
        low = up.amin(dim=(1, 2), keepdim=True)
        span = up.amax(dim=(1, 2), keepdim=True) - low
        useful = span.flatten() > 1e-7
        masks = torch.where(span > 0, (up - low) / span.clamp(min=1e-12), 0.0)
        logits = model.module(x * masks[:, None])
        base = torch.softmax(model.module(torch.zeros_like(x)), dim=1)[0, capture.target]
    t = capture.target
    return acts, useful, logits[:, t], torch.softmax(logits, 1)[:, t], base


@pytest.mark.parametrize("baseline", [False, True])
def test_scorecam_weightings_follow_their_definitions(baseline):
    model = gapnet_model()
    layer = "features.1"
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [layer],
                          gradients=False)
    acts, useful, logit, prob, base = _scorecam_inputs(model, capture, layer)
    assert useful.any()

    def softmax_over_useful(values):
        out = torch.zeros_like(values)
        out[useful] = torch.softmax(values[useful], dim=0)
        return out

    definitions = {
        "score": torch.where(useful, prob - (base if baseline else 0.0), 0.0),
        "softmax-logits": softmax_over_useful(logit),
        "softmax-increase": softmax_over_useful(prob - base),
    }
    maps = {}
    for weighting, weights in definitions.items():
        expected = torch.relu(torch.einsum("c,chw->hw", weights, acts))
        ours = _explain("scorecam", capture, layer, weighting=weighting, baseline=baseline,
                        batch_size=3)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
        maps[weighting] = ours
    assert not torch.allclose(maps["softmax-logits"], maps["softmax-increase"])


def test_scorecam_softmax_logits_is_pytorch_grad_cams_algorithm():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    model = TorchModel(net, [str(i) for i in range(10)], size=64, layers=["layer1"])
    x = model.preprocess(random_image(80))
    capture = run_capture(model, x, "top", ["layer1"], gradients=False)
    ours = _explain("scorecam", capture, "layer1", weighting="softmax-logits", batch_size=64)
    with ScoreCAM(net, [net.layer1]) as cam:
        cam.batch_size = 64
        theirs = cam(x, [ClassifierOutputTarget(capture.target)])[0]
    up = F.interpolate(ours[None, None], size=x.shape[-2:], mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    up = (up - up.min()) / (up.max() - up.min())
    r = float(np.corrcoef(up.ravel(), theirs.ravel())[0, 1])
    assert r >= 0.99, f"Pearson {r:.4f}"


class _Twins(torch.nn.Module):
    """Each channel of ``x`` and twice it: pairs that normalise to the same mask."""

    def forward(self, x):
        return torch.cat([x, 2.0 * x], dim=1)


def test_scorecam_scores_identical_masks_once():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), _Twins(),
        torch.nn.Conv2d(8, 6, 3, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 3))
    model = TorchModel(net, ["a", "b", "c"], size=32, layers=["2"])
    capture = run_capture(model, model.preprocess(random_image(40)), "top", ["2"],
                          gradients=False)
    acts, useful, _logit, prob, _base = _scorecam_inputs(model, capture, "2")
    assert int(useful.sum()) == 8
    expected = torch.relu(torch.einsum("c,chw->hw", torch.where(useful, prob, 0.0), acts))
    before = capture.scored_images
    ours = _explain("scorecam", capture, "2", batch_size=3)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert capture.scored_images - before == 4  # one forward per distinct mask, not per channel
