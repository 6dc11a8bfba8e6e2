"""Gradient attributions against Captum's implementations of the same definitions.

Lucida's gradient methods work in pixel space (the gradient with respect to [0, 1] pixel values),
so Captum is given the same thing: the network behind the fixture's normalisation, fed pixels.
Every map is compared after the same channel reduction (max |.| for saliency, sum otherwise).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import (
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from torch import nn

from engine.explain import core
from engine.explain.api import INPUT_LAYER, resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from tests.explain_fixtures import TorchModel, random_image

SIZE = 48
#: family -> (builder, Guided Grad-CAM layer); layers whose outputs no later op changes in place.
FAMILIES = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), "layer3"),
    "squeezenet1_1": (lambda: torchvision.models.squeezenet1_1(num_classes=10), "features.12"),
    "shufflenet_v2_x0_5": (lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10),
                           "stage3"),
}
#: Largest difference allowed, relative to the reference's largest magnitude. Channels-last
#: convolutions round differently, which moves a few ReLU kinks; agreement is otherwise ~1e-6.
RTOL = 2e-2

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")


class _Pixels(nn.Module):
    """The network behind the fixture model's normalisation (mean 0.5, std 0.25)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixels):
        return self.net((pixels - 0.5) / 0.25)


_CACHE: dict = {}


def _family(name):
    if name not in _CACHE:
        build, layer = FAMILIES[name]
        torch.manual_seed(0)
        net = build().eval()
        model = TorchModel(net, [str(i) for i in range(10)], size=SIZE, layers=[layer])
        x = model.preprocess(random_image(SIZE + 16))
        capture = run_capture(model, x, "top", [layer])
        _CACHE[name] = (_Pixels(net).eval(), capture, layer)
    return _CACHE[name]


def _ours(name, capture, layer=INPUT_LAYER, **params) -> np.ndarray:
    explainer = registry().get(name)
    the_plan = core.Plan([explainer], {name: resolve_params(explainer, params)},
                         [] if layer == INPUT_LAYER else [layer], False)
    got = core.explain(capture, the_plan)
    assert not got.errors[0], got.errors[0]
    return got.maps[0][(name, layer)].numpy()


def _agree(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, what
    scale = np.abs(theirs).max()
    assert scale > 0, f"{what}: the reference map is all zero"
    err = np.abs(ours - theirs).max() / scale
    r = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    assert err <= RTOL and r >= 0.999, f"{what}: max error {err:.2e} of the peak, Pearson {r:.5f}"


def _pixels(capture):
    return (capture.input * 0.25 + 0.5).detach().requires_grad_(True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_saliency_and_input_x_gradient_match_captum(family):
    net, capture, _ = _family(family)
    p, t = _pixels(capture), capture.target
    _agree(_ours("saliency", capture), Saliency(net).attribute(p, target=t, abs=True)[0].amax(0),
           f"saliency on {family}")
    _agree(_ours("inputxgrad", capture), InputXGradient(net).attribute(p, target=t)[0].sum(0),
           f"inputxgrad on {family}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_integrated_gradients_match_captum_with_the_same_baseline_and_steps(family):
    net, capture, _ = _family(family)
    p, t = _pixels(capture), capture.target
    steps = 8
    for method in ("gausslegendre", "riemann_trapezoid"):
        theirs = IntegratedGradients(net).attribute(
            p, baselines=torch.zeros_like(p), target=t, n_steps=steps, method=method)[0].sum(0)
        if method == "riemann_trapezoid":
            # Captum's trapezoid weights are 1/n with halved ends (they sum to (n-1)/n); the
            # trapezoidal rule on n points spaced 1/(n-1) has weights 1/(n-1).
            theirs = theirs * steps / (steps - 1)
        ours = _ours("intgrad", capture, steps=steps, method=method, baseline="black")
        _agree(ours, theirs, f"intgrad {method} on {family}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_smoothgrad_matches_noise_tunnel_with_the_same_noise(family):
    net, capture, _ = _family(family)
    p, t = _pixels(capture), capture.target
    samples, seed, level = 4, 7, 0.15
    stdev = level * float(p.max() - p.min())
    cases = (("saliency", "smoothgrad", Saliency(net), {"abs": True}, "amax"),
             ("inputxgrad", "smoothgrad_sq", InputXGradient(net), {}, "sum"),
             ("inputxgrad", "vargrad", InputXGradient(net), {}, "sum"))
    for base, kind, method, extra, reduce in cases:
        # Lucida draws its noise from a generator seeded with `seed`, in one call, in the
        # layout NoiseTunnel uses; seeding torch's global generator makes Captum draw the same.
        torch.manual_seed(seed)
        theirs = NoiseTunnel(method).attribute(p, nt_type=kind, nt_samples=samples,
                                               stdevs=stdev, target=t, **extra)[0]
        theirs = theirs.amax(0) if reduce == "amax" else theirs.sum(0)
        ours = _ours("smoothgrad", capture, base=base, kind=kind, samples=samples, seed=seed,
                     noise=level)
        _agree(ours, theirs, f"smoothgrad {base}/{kind} on {family}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_guided_backprop_and_guided_gradcam_match_captum(family):
    net, capture, layer = _family(family)
    p, t = _pixels(capture), capture.target
    _agree(_ours("guidedbackprop", capture), GuidedBackprop(net).attribute(p, target=t)[0].sum(0),
           f"guidedbackprop on {family}")
    theirs = GuidedGradCam(net, net.net.get_submodule(layer)).attribute(
        p, target=t, interpolate_mode="bilinear")[0].sum(0)
    _agree(_ours("guidedgradcam", capture, layer), theirs, f"guidedgradcam on {family}")
