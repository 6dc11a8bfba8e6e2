"""Built-in explainers against their published definitions and against pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from torch import nn

from engine.core.errors import ExplainerUnavailable, UsageError
from engine.demo.arch import build_demo_cnn
from engine.explain import core
from engine.explain.api import INPUT_LAYER, resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from tests.explain_fixtures import TorchModel, gapnet_model, random_image

#: family -> (builder, input size, gradient layer, Score-CAM layer). Layers are chosen whose
#: outputs are not modified in place downstream, because pytorch-grad-cam's hooks keep a reference
#: that an in-place ReLU would overwrite; Score-CAM layers are small so the test stays fast.
FAMILIES = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), 96, "layer3", "layer1"),
    "shufflenet_v2_x0_5": (
        lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10), 96, "stage3", "conv1"
    ),
    "squeezenet1_1": (
        lambda: torchvision.models.squeezenet1_1(num_classes=10), 96, "features.12", "features.1"
    ),
    "regnet_y_400mf": (
        lambda: torchvision.models.regnet_y_400mf(num_classes=10), 96,
        "trunk_output.block3", "trunk_output.block1",
    ),
}
GRADIENT_PEERS = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
}


class _Scaled(nn.Module):
    """Multiplies the logits; see the Grad-CAM++ note in :func:`_family`."""

    def __init__(self, net, factor):
        super().__init__()
        self.net = net
        self.factor = factor

    def forward(self, x):
        return self.net(x) * self.factor


def _normalised(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    a = a - a.min()
    return a / a.max() if a.max() > 0 else a


def _upsampled(raw, size) -> np.ndarray:
    t = torch.as_tensor(_normalised(raw.detach().numpy()), dtype=torch.float32)[None, None]
    return _normalised(F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
                       [0, 0].numpy())


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _explain(name, capture, layer, **params):
    """One map of one captured layer, run through the explain core."""
    explainer = registry().get(name)
    the_plan = core.Plan([explainer], {name: resolve_params(explainer, params)},
                         [layer] if layer != INPUT_LAYER else [], False)
    got = core.explain(capture, the_plan)
    assert not got.errors[0], got.errors[0]
    return got.maps[0][(name, layer)]


_CACHE: dict = {}


def _family(name):
    """Build a family once per test run: network (logits scaled by 1000), model and capture.

    pytorch-grad-cam adds 1e-6 to the Grad-CAM++ denominator, which the paper does not have;
    random-init logits have gradients near 1e-3, where that constant changes the weights. Scaling
    the logits, which leaves every other method's normalised map unchanged, makes it negligible.
    """
    if name not in _CACHE:
        build, size, layer, score_layer = FAMILIES[name]
        torch.manual_seed(0)
        net = _Scaled(build().eval(), 1000.0).eval()
        model = TorchModel(net, [str(i) for i in range(10)], size=size,
                           layers=[f"net.{layer}", f"net.{score_layer}"])
        x = model.preprocess(random_image(size + 16))
        capture = run_capture(model, x, "top", model._layers)
        _CACHE[name] = (net, model, x, capture)
    return _CACHE[name]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradient_methods_match_pytorch_grad_cam(family):
    net, model, x, capture = _family(family)
    layer = model._layers[0]
    size = x.shape[-1]
    for name, peer in GRADIENT_PEERS.items():
        ours = _upsampled(_explain(name, capture, layer), size)
        with peer(net, [net.get_submodule(layer)]) as cam:
            theirs = cam(x, [ClassifierOutputTarget(capture.target)])[0]
        assert ours.std() > 0, f"{name} map is flat on {family}"
        r = pearson(ours, theirs)
        assert r >= 0.99, f"{name} on {family}: Pearson {r:.4f}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_eigencam_matches_pytorch_grad_cam_up_to_the_svd_sign(family):
    net, model, x, capture = _family(family)
    layer = model._layers[0]
    size = x.shape[-1]
    with EigenCAM(net, [net.get_submodule(layer)]) as cam:
        theirs = cam(x, None)[0]
    # pytorch-grad-cam keeps whatever sign LAPACK returns; reproduce its map from its own
    # projection, then apply Lucida's sign rule (positive correlation with the summed activation).
    acts = capture.activations[layer][0].numpy()
    projection = get_2d_projection(acts[None])[0]
    assert pearson(_upsampled(torch.relu(torch.from_numpy(projection)), size), theirs) >= 0.99
    total = acts.sum(axis=0)
    sign = 1.0 if pearson(projection, total) >= 0 else -1.0
    expected = _upsampled(torch.relu(torch.from_numpy(sign * projection)), size)
    ours = _upsampled(_explain("eigencam", capture, layer), size)
    assert pearson(ours, expected) >= 0.99


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_scorecam_matches_pytorch_grad_cam(family):
    net, model, x, capture = _family(family)
    layer = model._layers[1]
    size = x.shape[-1]
    # Score-CAM weights are post-softmax target scores. pytorch-grad-cam instead applies a softmax
    # across channels to the raw outputs; fed log-probabilities, that gives p_c(k) / sum_j p_c(j),
    # which is proportional to the paper's weights, so the normalised maps must agree.
    peer_net = nn.Sequential(net, nn.LogSoftmax(dim=1)).eval()
    with ScoreCAM(peer_net, [net.get_submodule(layer)]) as cam:
        cam.batch_size = 64
        theirs = cam(x, [ClassifierOutputTarget(capture.target)])[0]
    ours = _upsampled(_explain("scorecam", capture, layer, batch_size=64), size)
    r = pearson(ours, theirs)
    assert r >= 0.99, f"Score-CAM on {family}: Pearson {r:.4f}"


def _demo_model(size=48):
    torch.manual_seed(0)
    spec = InputSpec(size=(size, size), channels=1, mean=(0.5,), std=(0.25,))
    return LoadedModel.from_module(build_demo_cnn(), classes=["normal", "nodule"], input=spec,
                                   name="demo-arch")


def test_cam_equals_gradcam_up_to_scale_on_gap_linear_networks():
    grey = random_image(64).pixels.mean(axis=2)
    for model, layer in ((_demo_model(), "features"), (gapnet_model(), "features.4")):
        image = type("Grey", (), {"model_input": lambda self, f=0, window=None: grey})()
        capture = run_capture(model, model.preprocess(image), "top", [layer])
        cam = _explain("cam", capture, layer).numpy()
        grad = _explain("gradcam", capture, layer).numpy()
        h, w = cam.shape
        assert cam.max() > 0
        # Grad-CAM's weights are the gradient means, w_c / (h*w) for GAP->linear: the identity.
        np.testing.assert_allclose(grad * h * w, cam, rtol=1e-4, atol=1e-6 * cam.max())


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_cam_refuses_other_models_with_one_line():
    torch.manual_seed(0)
    # Flatten -> linear (as in VGG's classifier) instead of global average pooling.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 16 * 16, 3))
    flat = TorchModel(net, list("abc"), size=16, layers=["1"])
    with pytest.raises(ExplainerUnavailable) as err:
        Session(device="cpu").explain(ExplainRequest(random_image(16), flat, ["cam"]))
    assert "CAM" in err.value.one_line() and "\n" not in err.value.one_line()
    script = TorchModel(torch.jit.script(gapnet_model().module), ["a", "b", "c"], size=48)
    script.kind = "torchscript"
    script.layer_methods_reason = "TorchScript models expose no submodules to hook"
    assert registry().get("cam").unavailable_reason(script) == script.layer_methods_reason
    assert registry().get("gradcam").unavailable_reason(script) == script.layer_methods_reason


def test_scorecam_follows_the_paper_with_and_without_baseline():
    model = gapnet_model()
    layer = "features.1"
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [layer],
                          gradients=False)
    acts = capture.activations[layer][0]
    x, t = capture.input, capture.target
    with torch.no_grad():
        up = F.interpolate(acts[None], size=x.shape[-2:], mode="bilinear")[0]
        low = up.amin(dim=(1, 2), keepdim=True)
        span = up.amax(dim=(1, 2), keepdim=True) - low
        masks = torch.where(span > 0, (up - low) / span.clamp(min=1e-12), 0.0)
        probs = torch.softmax(model.module(x * masks[:, None]), dim=1)[:, t]
        probs = torch.where(span.flatten() > 0, probs, 0.0)
        base = torch.softmax(model.module(torch.zeros_like(x)), dim=1)[0, t]
    for baseline, weights in ((False, probs), (True, torch.where(span.flatten() > 0, probs - base,
                                                                 0.0))):
        expected = torch.relu(torch.einsum("c,chw->hw", weights, acts))
        ours = _explain("scorecam", capture, layer, baseline=baseline, batch_size=5)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert not torch.equal(probs, probs - base)


def test_scorecam_fast_scores_only_k_channels():
    model = gapnet_model()
    layer = "features.4"
    capture = run_capture(model, model.preprocess(random_image(48)), "top", [layer],
                          gradients=False)
    channels = capture.activations[layer].shape[1]
    exact = _explain("scorecam", capture, layer)
    scored = capture.scored_images
    assert scored <= channels
    same = _explain("scorecam", capture, layer, mode="fast", k=channels)
    torch.testing.assert_close(same, exact)
    before = capture.scored_images
    fast = _explain("scorecam", capture, layer, mode="fast", k=4)
    assert capture.scored_images - before <= 4
    assert not torch.equal(fast, exact)


class _QuadrantNet(nn.Module):
    """Class 1's logit is the mean of the top-left quadrant: the evidence is known exactly."""

    def forward(self, x):
        h, w = x.shape[-2:]
        evidence = x[:, :, : h // 2, : w // 2].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(evidence), 4.0 * evidence], dim=1)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_model_agnostic_methods_find_the_evidence_on_torchscript(method):
    net = torch.jit.script(_QuadrantNet())
    model = TorchModel(net, ["background", "evidence"], size=32)
    model.kind = "torchscript"
    model.layer_methods_reason = "TorchScript models expose no submodules to hook"
    image = random_image(32)
    image.pixels[:] = 1.0  # a bright image, so hiding any of the top-left lowers class 1
    params = {"occlusion": {"patch": 8, "stride": 4}, "rise": {"n_masks": 400, "grid": 4}}
    result = Session(device="cpu").explain(
        ExplainRequest(image, model, [method], target="evidence", params=params)
    )
    heat = result.maps[(method, "input")].heatmap
    assert heat.shape == (32, 32)
    assert heat[:12, :12].mean() > heat[20:, 20:].mean() + 0.3


def test_targets_by_index_name_and_every_sigmoid_label():
    model = gapnet_model(output="sigmoid")
    image = random_image(48)
    session = Session(device="cpu")
    maps = []
    for label in model.classes:
        result = session.explain(ExplainRequest(image, model, ["gradcam"], target=label))
        assert result.target_name == label
        assert all(0.0 < s < 1.0 for s in result.scores)
        maps.append(result.maps[("gradcam", "features.4")].raw)
    assert not np.allclose(maps[0], maps[1])
    by_index = session.explain(ExplainRequest(image, model, ["gradcam"], target=2))
    np.testing.assert_array_equal(by_index.maps[("gradcam", "features.4")].raw, maps[2])
    with pytest.raises(UsageError):
        session.explain(ExplainRequest(image, model, ["gradcam"], target="nonexistent"))


def test_rise_hides_pixels_as_black_in_pixel_space():
    # The paper multiplies the image's pixels: a hidden pixel must be pixel value 0, not the
    # normalisation mean (which is what multiplying the normalised input would give).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    spec = InputSpec(size=(16, 16), channels=1, mean=(0.3,), std=(0.2,))
    model = LoadedModel.from_module(net, classes=["a", "b"], input=spec, name="tiny")
    pixels = torch.rand(1, 1, 16, 16) * 0.5 + 0.5
    capture = run_capture(model, (pixels - 0.3) / 0.2, target=1, gradients=False)
    seen = []
    score = capture.forward_scores
    capture.forward_scores = lambda batch, *a: (seen.append(batch.clone()), score(batch, *a))[1]
    _explain("rise", capture, "input", n_masks=64, grid=2, p=0.5, batch_size=16)
    shown = torch.cat(seen) * 0.2 + 0.3
    assert shown.min() == pytest.approx(0.0, abs=0.02)
    assert (shown <= pixels + 1e-5).all() and (shown >= -1e-5).all()
