"""3-D explanations against pytorch-grad-cam's 3-D path and MONAI, from one pass, on the voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.ndimage import zoom
from torch import nn
from torchvision.models.video import mc3_18, r2plus1d_18, r3d_18

from engine.explain import core
from engine.explain.api import resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from engine.models.loaded import LoadedModel
from engine.models.volume_preprocess import VolumeSpec
from engine.studies.volume import Volume

PEERS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "layercam": LayerCAM}


class _Scaled(nn.Module):
    """Logits times 1000: pytorch-grad-cam's Grad-CAM++ adds 1e-6 to a denominator the paper
    does not have, which only stays negligible when gradients are not tiny."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) * 1000.0


def _plain() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(1, 6, 3, padding=1), nn.BatchNorm3d(6), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(6, 12, 3, padding=1), nn.BatchNorm3d(12), nn.ReLU(),
        nn.Conv3d(12, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(16, 3))


#: name -> (builder, channels, input size, layer): layers not modified in place downstream.
NETS = {
    "sequential": (_plain, 1, (12, 24, 20), "net.6"),
    "mc3_18": (lambda: mc3_18(num_classes=3), 3, (8, 32, 32), "net.layer2"),
}


def _spec(channels, size) -> VolumeSpec:
    return VolumeSpec(size=size, channels=channels, mean=(0.5,), std=(0.25,),
                      spacing=(2.0, 1.0, 1.0), window=(0.0, 1.0))


def _smooth_input(channels, size, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, channels, 3, 4, 4), generator=g)
    return F.interpolate(coarse, size=size, mode="trilinear", align_corners=False) * 4 - 2


_CACHE: dict = {}


def _setup(name):
    if name not in _CACHE:
        build, channels, size, layer = NETS[name]
        torch.manual_seed(0)
        net = _Scaled(build().eval()).eval()
        model = LoadedModel.from_module(net, classes=["a", "b", "c"], input=_spec(channels, size))
        x = _smooth_input(channels, size)
        capture = run_capture(model, x, "top", [layer])
        _CACHE[name] = (net, model, x, capture, layer)
    return _CACHE[name]


def _ours(name, capture, layer, **params):
    explainer = registry().get(name)
    the_plan = core.Plan([explainer], {name: resolve_params(explainer, params)}, [layer], False)
    got = core.explain(capture, the_plan)
    assert not got.errors[0], got.errors[0]
    return got.maps[0][(name, layer)]


def _norm(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    a = a - a.min()
    return a / a.max() if a.max() > 0 else a


def _up(raw, size) -> np.ndarray:
    """As pytorch-grad-cam brings a 3-D map to the input: scipy's spline zoom of the map."""
    raw = _norm(raw.numpy())
    return _norm(zoom(np.float32(raw), [t / s for s, t in zip(raw.shape, size, strict=True)]))


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("net_name", sorted(NETS))
def test_gradient_cams_match_pytorch_grad_cam_in_3d(net_name):
    net, _model, x, capture, layer = _setup(net_name)
    size = tuple(x.shape[2:])
    for name, peer in PEERS.items():
        ours = _up(_ours(name, capture, layer), size)
        with peer(net, [net.get_submodule(layer)]) as cam:
            theirs = cam(x, [ClassifierOutputTarget(capture.target)])[0]
        assert theirs.shape == size and ours.std() > 0
        r = pearson(ours, theirs)
        assert r >= 0.99, f"{name} on {net_name}: Pearson {r:.4f}"


class _ScoreCAM3D(ScoreCAM):
    """pytorch-grad-cam's Score-CAM weights with its 2-D upsampling made trilinear.

    Its BaseCAM has a 3-D path (weights times 5-D activations, spline zoom to the input), but
    ScoreCAM.get_cam_weights upsamples with UpsamplingBilinear2d; this is the same algorithm
    (min-max masks, softmax of the masked inputs' outputs) with UpsamplingBilinear2d's
    align_corners=True in three dimensions.
    """

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        with torch.no_grad():
            acts = torch.from_numpy(activations)
            up = F.interpolate(acts, size=input_tensor.shape[-3:], mode="trilinear",
                               align_corners=True)
            flat = up.flatten(2)
            low, high = flat.min(-1)[0], flat.max(-1)[0]
            up = (up - low[..., None, None, None]) / (high - low + 1e-8)[..., None, None, None]
            masked = input_tensor[:, None] * up[:, :, None]
            scores = []
            for target, tensor in zip(targets, masked, strict=True):
                for i in range(0, tensor.size(0), 16):
                    scores.extend(target(o).item() for o in self.model(tensor[i : i + 16]))
            scores = torch.tensor(scores).view(activations.shape[0], activations.shape[1])
            return torch.softmax(scores, dim=-1).numpy()


@pytest.mark.parametrize("net_name", ["sequential"])
def test_scorecam_matches_pytorch_grad_cam_in_3d(net_name):
    net, _model, x, capture, layer = _setup(net_name)
    # Lucida weighs by post-softmax scores; fed log-probabilities, the peer's softmax across
    # channels gives p_c(k) / sum_j p_c(j), proportional to them (see the 2-D test).
    peer_net = nn.Sequential(net, nn.LogSoftmax(dim=1)).eval()
    with _ScoreCAM3D(peer_net, [net.get_submodule(layer)]) as cam:
        theirs = cam(x, [ClassifierOutputTarget(capture.target)])[0]
    ours = _up(_ours("scorecam", capture, layer, batch_size=16), tuple(x.shape[2:]))
    r = pearson(ours, theirs)
    assert r >= 0.99, f"Score-CAM on {net_name}: Pearson {r:.4f}"


def test_gradcam_matches_monai():
    from monai.visualize import GradCAM as MonaiGradCAM

    net, _model, x, capture, layer = _setup("sequential")
    cam = MonaiGradCAM(nn_module=net, target_layers=layer)
    theirs_raw = cam.compute_map(x, class_idx=capture.target)[0, 0].detach()
    ours = _ours("gradcam", capture, layer)
    np.testing.assert_allclose(ours.numpy(), theirs_raw.numpy(), rtol=1e-4,
                               atol=1e-6 * float(theirs_raw.abs().max()))
    theirs = cam(x, class_idx=capture.target)[0, 0].detach().numpy()
    up = F.interpolate(ours[None, None], size=tuple(x.shape[2:]), mode="trilinear",
                       align_corners=False)[0, 0]
    # MONAI's default normaliser maps (min, max) to (1, 0): its upsampled map is inverted.
    assert pearson(_norm(up.numpy()), 1.0 - theirs) >= 0.999


def _volume(shape, affine, values=None) -> Volume:
    values = np.zeros(shape, np.float32) if values is None else values
    return Volume(path="mem", name="test volume", modality="CT", affine=affine, shape=shape,
                  voxels=values)


def _oblique() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]) @ np.diag(
        [0.8, 0.7, 2.5])
    affine[:3, 3] = (10.0, -20.0, 30.0)
    return affine


def test_a_blob_the_model_reads_is_where_the_volume_map_peaks():
    # The layer's activation is the input itself, so Grad-CAM is the input, whose only bright
    # spot is the blob: the finished map must peak on the blob, on the volume's own grid.
    net = nn.Sequential(nn.Conv3d(1, 1, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                        nn.Flatten(), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[4].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[4].bias.zero_()
    spec = VolumeSpec(size=(8, 24, 24), channels=1, mean=(0.0,), std=(1.0,),
                      spacing=(4.0, 1.5, 1.5), window=(0.5, 1.0), orientation="RAS")
    model = LoadedModel.from_module(net, classes=["blob", "none"], input=spec)
    shape = (12, 30, 26)
    for centre in [(5, 14, 12), (7, 10, 16), (4, 18, 9)]:
        k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
        d2 = ((k - centre[0]) * 2.5) ** 2 + ((j - centre[1]) * 0.7) ** 2 + \
            ((i - centre[2]) * 0.8) ** 2
        volume = _volume(shape, _oblique(), np.exp(-d2 / 8.0).astype(np.float32))
        result = Session(device="cpu").explain(ExplainRequest(
            image=volume, model=model, methods=["gradcam"], layers="1", target="blob"))
        heat = result.maps[("gradcam", "1")].heatmap
        assert heat.shape == shape and heat.max() == pytest.approx(1.0)
        peak = np.unravel_index(int(heat.argmax()), shape)
        assert np.all(np.abs(np.array(peak) - centre) <= 1), (peak, centre)


def test_every_layer_and_gradient_method_comes_from_one_forward_pass():
    torch.manual_seed(0)
    model = LoadedModel.from_module(_plain().eval(), classes=["a", "b", "c"],
                                    input=_spec(1, (12, 24, 20)))
    volume = _volume((10, 30, 26), _oblique(), np.random.default_rng(0).random(
        (10, 30, 26)).astype(np.float32))
    session = Session(device="cpu")
    result = session.explain(ExplainRequest(image=volume, model=model,
                                            methods=["gradcam", "gradcampp", "layercam"],
                                            layers="all"))
    layers = [info.name for info in model.layers()]
    assert len(result.maps) == 3 * len(layers) and session.forward_passes == 1
    again = session.explain(ExplainRequest(image=volume, model=model, methods=["hirescam"],
                                           layers=layers[-1]))
    assert session.forward_passes == 1 and again.timings_ms["forward"] == 0.0
    assert all(m.heatmap.shape == volume.shape for m in result.maps.values())


@pytest.mark.parametrize("build", [r3d_18, mc3_18, r2plus1d_18], ids=lambda b: b.__name__)
def test_layer_discovery_and_gradcam_on_torchvision_video_resnets(build):
    torch.manual_seed(0)
    spec = VolumeSpec(size=(8, 32, 32), channels=3, mean=(0.5,), std=(0.25,),
                      spacing=(2.0, 1.0, 1.0), window=(0.0, 1.0))
    model = LoadedModel.from_module(build(num_classes=3), classes=["a", "b", "c"], input=spec)
    assert model.default_layer == "layer4"
    shapes = {info.name: info.shape for info in model.layers()}
    assert len(shapes["layer3"]) == 4 and shapes["layer4"][0] == 512
    volume = _volume((9, 20, 22), _oblique(), np.random.default_rng(1).random(
        (9, 20, 22)).astype(np.float32))
    result = Session(device="cpu").explain(ExplainRequest(image=volume, model=model,
                                                          methods=["gradcam"]))
    assert result.maps[("gradcam", "layer4")].heatmap.shape == volume.shape


def test_a_plain_sequential_conv3d_network_defaults_to_its_last_spatial_layer():
    model = LoadedModel.from_module(_plain().eval(), classes=["a", "b", "c"],
                                    input=_spec(1, (12, 24, 20)))
    assert model.default_layer == "8"
    assert [info.shape for info in model.layers()][-1] == (16, 6, 12, 10)
