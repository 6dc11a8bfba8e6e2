"""What is explained: the top class by logits, and the activation that really flows on."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from engine.core.errors import UsageError
from engine.explain import core
from engine.explain.capture import run_capture
from tests.explain_fixtures import TorchModel, random_image


class Saturated(nn.Module):
    """Two sigmoid outputs that both round to 1.0 in float32, the second with the larger logit."""

    def forward(self, x):
        base = x.mean(dim=(1, 2, 3)) * 0 + 40.0
        return torch.stack([base, base + 5.0], dim=1)


def test_top_is_the_argmax_of_the_logits_not_of_tied_probabilities():
    model = TorchModel(Saturated(), ["a", "b"], size=16, output="sigmoid")
    x = model.preprocess(random_image(16))
    scores = model.scores(model.logits(x))
    assert scores[0, 0] == scores[0, 1] == 1.0  # the probabilities tie
    cap = run_capture(model, x, "top", [], gradients=False)
    assert cap.target == 1


def _densenet_model():
    torch.manual_seed(0)
    net = torchvision.models.densenet121(weights=None, num_classes=3).eval()
    return net, TorchModel(net, ["a", "b", "c"], size=64, layers=["features"])


def test_densenet_activation_is_the_post_relu_tensor_the_classifier_pools():
    """DenseNet applies ``F.relu(features, inplace=True)`` after the hooked ``features``."""
    net, model = _densenet_model()
    x = model.preprocess(random_image(64))
    cap = run_capture(model, x, "top", ["features"], gradients=True)
    with torch.enable_grad():
        pooled_input = F.relu(net.features(x))
        pooled_input.retain_grad()
        logits = net.classifier(F.adaptive_avg_pool2d(pooled_input, 1).flatten(1))
        logits[0, cap.target].backward()
    acts, grads = cap.activations["features"], cap.gradients["features"]
    assert float(acts.min()) >= 0.0  # post-ReLU, not BatchNorm output
    torch.testing.assert_close(acts, pooled_input.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads, pooled_input.grad, rtol=1e-4, atol=1e-6)
    # XGrad-CAM from the capture equals XGrad-CAM of the tensor the classifier pools.
    the_plan = core.plan(model, ["xgradcam"], ["features"])
    ours = core.explain(cap, the_plan).maps[0][("xgradcam", "features")]
    a, g = pooled_input.detach()[0], pooled_input.grad[0]
    w = (g * a).sum(dim=(1, 2)) / a.sum(dim=(1, 2)).where(a.sum(dim=(1, 2)) != 0,
                                                          torch.ones(1))
    expected = torch.relu(torch.einsum("c,chw->hw", w, a))
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


def test_versus_explains_the_difference_of_two_logits(tmp_path):
    from engine.cli import main as cli_main
    from engine.core.resources import DEMO_STUDY

    model = TorchModel(torchvision.models.resnet18(weights=None, num_classes=3).eval(),
                       ["a", "b", "c"], size=64, layers=["layer4"])
    x = model.preprocess(random_image(64))
    cap = run_capture(model, x, 0, ["layer4"], gradients=True, versus="c")
    a = run_capture(model, x, 0, ["layer4"], gradients=True)
    c = run_capture(model, x, 2, ["layer4"], gradients=True)
    # Gradients are linear: d(logit_a - logit_c) = d logit_a - d logit_c.
    torch.testing.assert_close(cap.gradients["layer4"],
                               a.gradients["layer4"] - c.gradients["layer4"])
    # Perturbation methods track p_a - p_c.
    probs = model.scores(model.logits(x))[0]
    assert float(cap.reference_scores()[0]) == pytest.approx(float(probs[0] - probs[2]))
    with pytest.raises(UsageError, match="target itself"):
        run_capture(model, x, 2, ["layer4"], versus="c")
    out = tmp_path / "cli"
    assert cli_main(["explain", str(DEMO_STUDY / "phantom_0001.dcm"), "--model", "demo",
                     "--target", "nodule", "--versus", "normal", "--out", str(out)]) == 0
    result = json.loads((out / "case-001" / "result.json").read_text())
    assert result["target"] == "nodule" and result["versus"] == "normal"
