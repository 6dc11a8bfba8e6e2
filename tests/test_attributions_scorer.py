"""The batched scorer's folded copy and pass sizes give the plain model's scores and gradients.

Perturbation methods score through ``Capture.forward_scores`` and the path/noise methods
differentiate through ``Capture.input_gradients``; both run a private copy of the network with
its BatchNorms folded into the convolutions, in cache-sized passes. Scores must stay equal to the
plain model's (relative tolerance 1e-5) and the user's model must stay as it was.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from engine.explain import scorer
from engine.explain.capture import run_capture
from tests.explain_fixtures import TorchModel, random_image


def _bn_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3),
    )
    # Non-trivial running statistics, as a trained network has.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_folded_copy_matches_and_leaves_the_model_alone():
    net = _bn_net()
    before, kinds = _state(net), [type(m) for m in net.modules()]
    x = torch.randn(4, 3, 24, 24)
    fast = scorer.fast_module(net, x)
    assert fast is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    with torch.no_grad():
        assert _rel(fast(x), net(x)) < 1e-5
    assert [type(m) for m in net.modules()] == kinds
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    # Built once per state of the weights ...
    assert scorer.fast_module(net, x) is fast
    # ... and again after an in-place change of the model, with the new weights.
    with torch.no_grad():
        net[1].running_mean.add_(0.3)
    refolded = scorer.fast_module(net, x)
    assert refolded is not fast
    with torch.no_grad():
        assert _rel(refolded(x), net(x)) < 1e-5


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_models_it_must_not_copy_come_back_unchanged():
    x = torch.randn(2, 3, 16, 16)
    net = _bn_net()
    handle = net[2].register_forward_hook(lambda *_: None)
    assert scorer.fast_module(net, x) is net  # hooks would not be on the copy
    handle.remove()
    assert scorer.fast_module(net.train(), x) is net  # batch statistics are not affine
    script = torch.jit.trace(_bn_net(), x)
    assert scorer.fast_module(script, x) is script
    plain = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()).eval()
    assert scorer.fast_module(plain, x) is plain  # nothing to fold


def test_pass_size_caps_values_per_pass_and_evens_the_passes():
    big = torch.empty(100, 3, 224, 224)
    assert scorer.pass_size(big, 64) == 15  # 100 inputs in 7 passes of at most 16
    assert scorer.pass_size(torch.empty(100, 1, 64, 64), 32) == 25  # 4 equal passes
    assert scorer.pass_size(torch.empty(3, 3, 2048, 2048), 8) == 1


@pytest.mark.parametrize("net_name", ["bn", "resnet18"])
def test_capture_scores_and_gradients_equal_the_plain_model(net_name, monkeypatch):
    torch.manual_seed(0)
    net = _bn_net() if net_name == "bn" else torchvision.models.resnet18(num_classes=3).eval()
    model = TorchModel(net, ["a", "b", "c"], size=64)
    capture = run_capture(model, model.preprocess(random_image(64)), 1, [], gradients=False)
    batch = capture.input + 0.3 * torch.randn(37, 3, 64, 64)
    # Several uneven passes, with the folded copy.
    monkeypatch.setattr(scorer, "PASS_VALUES", 5 * 3 * 64 * 64)
    assert scorer.fast_model(model, capture.input) is not model
    got = capture.forward_scores(batch, batch_size=32)
    with torch.no_grad():
        plain = torch.softmax(net(batch), dim=1)
    assert _rel(got, plain) < 1e-5
    grads, values = capture.input_gradients(batch[:9], 1, batch_size=4)
    inputs = batch[:9].clone().requires_grad_(True)
    logit = net(inputs)[:, 1]
    (expected,) = torch.autograd.grad(logit.sum(), inputs)
    assert _rel(values, logit.detach()) < 1e-5
    assert _rel(grads, expected) < 1e-5
    assert capture.scored_images == 37 + 9
