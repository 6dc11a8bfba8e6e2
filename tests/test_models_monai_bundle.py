"""MONAI bundles the tests build and save: 2-D and 3-D DenseNet121, read offline and safely.

Grad-CAM on the loaded bundle is checked against pytorch-grad-cam (2-D) and MONAI's own GradCAM
(3-D); the 3-D preprocessing against MONAI's transforms on the same volume.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bundle_fixtures import inference, metadata, write_bundle
from models_fixtures import no_network  # noqa: F401 - a fixture
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from engine.core.errors import ModelError, TrustRequired
from engine.explain import core
from engine.explain.api import resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from engine.models.loaded import load_model
from engine.models.offline import go_offline
from engine.models.volume_preprocess import VolumeSpec
from engine.studies.nifti import LPS_FROM_RAS
from engine.studies.volume import Volume

go_offline()
from monai.networks.nets import DenseNet121  # noqa: E402 - after the offline switches

CLASSES_2D = ["normal", "benign", "malignant"]
TRANSFORMS_2D = [
    {"_target_": "LoadImaged", "keys": "image"},
    {"_target_": "EnsureChannelFirstd", "keys": "image"},
    {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1000, "a_max": 400,
     "b_min": 0.0, "b_max": 1.0, "clip": True},
    {"_target_": "NormalizeIntensityd", "keys": "image", "subtrahend": 0.5, "divisor": 0.25},
    {"_target_": "Resized", "keys": "image", "spatial_size": [64, 64]},
    {"_target_": "EnsureTyped", "keys": "image"},
]
TRANSFORMS_3D = [
    {"_target_": "LoadImaged", "keys": "image"},
    {"_target_": "EnsureChannelFirstd", "keys": "image"},
    {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
    {"_target_": "Spacingd", "keys": "image", "pixdim": [2.0, 2.5, 3.0], "mode": "bilinear"},
    {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1000, "a_max": 500,
     "b_min": 0.0, "b_max": 1.0, "clip": True},
    {"_target_": "ResizeWithPadOrCropd", "keys": "image", "spatial_size": [32, 32, 32]},
]


def _net(dims: int, classes: int) -> nn.Module:
    torch.manual_seed(dims)
    net = DenseNet121(spatial_dims=dims, in_channels=1, out_channels=classes).eval()
    with torch.no_grad():  # BatchNorm statistics away from the identity, as after training
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


def _def(dims: int, classes) -> dict:
    return {"_target_": "DenseNet121", "spatial_dims": dims, "in_channels": 1,
            "out_channels": classes}


@pytest.fixture(scope="module")
def bundle_2d(tmp_path_factory):
    net = _net(2, 3)
    root = write_bundle(tmp_path_factory.mktemp("b2") / "chest_2d", net,
                        inference(_def(2, "@num_classes"), TRANSFORMS_2D, num_classes=3),
                        metadata(CLASSES_2D, 1, [64, 64]))
    return root, net


@pytest.fixture(scope="module")
def bundle_3d(tmp_path_factory):
    net = _net(3, 2)
    root = write_bundle(tmp_path_factory.mktemp("b3") / "ct_3d", net,
                        inference(_def(3, 2), TRANSFORMS_3D),
                        metadata(["normal", "nodule"], 1, [32, 32, 32]))
    return root, net


def _smooth(shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 1, *(3 for _ in shape)), generator=g)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(coarse, size=shape, mode=mode, align_corners=False) * 4 - 2


def _gradcam(model, x, layer) -> torch.Tensor:
    capture = run_capture(model, x, "top", [layer])
    explainer = registry().get("gradcam")
    the_plan = core.Plan([explainer], {"gradcam": resolve_params(explainer, {})}, [layer], True)
    got = core.explain(capture, the_plan)
    assert not got.errors[0], got.errors[0]
    return got.maps[0][("gradcam", layer)], capture.target


def _load_quietly(spec, **kw):
    with warnings.catch_warnings():
        # What Lucida has to say about the bundle is a load note, never a Python warning.
        warnings.filterwarnings("error", message=r".*inference\.json")
        model = load_model(spec, **kw)
    assert model.describe()["notes"] == model.notes
    return model, [n for n in model.notes if "inference.json" in n]


def test_2d_bundle_loads_offline_with_its_classes_and_preprocessing(no_network, bundle_2d):  # noqa: F811
    root, net = bundle_2d
    model, lines = _load_quietly(root)
    assert lines == []
    assert model.classes == CLASSES_2D and model.output == "softmax" and model.kind == "module"
    spec = model.input
    assert not model.is_volumetric and spec.size == (64, 64) and spec.channels == 1
    # ScaleIntensityRanged(-1000, 400) is the window; then (v - 0.5) / 0.25 is the mean/std.
    assert spec.window == (-300.0, 1400.0)
    assert spec.mean == pytest.approx((0.5,)) and spec.std == pytest.approx((0.25,))
    assert {p.rsplit("/", 2)[-2:][1] for p in model.files} >= {
        "inference.json", "metadata.json", "model.pt"}
    x = _smooth((64, 64))
    with torch.no_grad():
        torch.testing.assert_close(model.logits(x), net(x))


def test_gradcam_on_the_2d_bundle_equals_pytorch_grad_cam(bundle_2d):
    model, _ = _load_quietly(bundle_2d[0])
    layer = "features.denseblock3"  # read by a BatchNorm, not modified in place
    x = _smooth((64, 64), seed=1)
    ours, target = _gradcam(model, x, layer)
    with GradCAM(model.module, [model.module.get_submodule(layer)]) as cam:
        theirs = cam(x, [ClassifierOutputTarget(target)])[0]
    up = F.interpolate(ours[None, None], size=(64, 64), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    up = (up - up.min()) / (up.max() - up.min())
    assert ours.std() > 0
    assert float(np.corrcoef(up.ravel(), theirs.ravel())[0, 1]) >= 0.99


def test_3d_bundle_is_a_volume_model_with_monai_geometry(no_network, bundle_3d):  # noqa: F811
    root, net = bundle_3d
    model, lines = _load_quietly(root)
    assert lines == []
    assert model.is_volumetric and model.classes == ["normal", "nodule"]
    spec = model.input
    assert isinstance(spec, VolumeSpec) and spec.size == (32, 32, 32)
    # MONAI's array axes are its axis codes in order; Lucida names its W, H, D axes.
    assert spec.spacing == (2.0, 2.5, 3.0) and spec.orientation == "SAR"
    assert spec.window == (-250.0, 1500.0)
    assert spec.mean == pytest.approx((0.0,)) and spec.std == pytest.approx((1.0,))
    x = _smooth((32, 32, 32))
    with torch.no_grad():
        torch.testing.assert_close(model.logits(x), net(x))


def test_3d_bundle_input_is_what_monai_feeds_the_network(bundle_3d):
    from monai.data import MetaTensor
    from monai.transforms import (
        Compose,
        Orientation,
        ResizeWithPadOrCrop,
        ScaleIntensityRange,
        Spacing,
    )

    model, _ = _load_quietly(bundle_3d[0])
    rng = np.random.default_rng(0)
    shape = (30, 40, 36)
    coarse = rng.normal(-200, 300, (4, 5, 4)).astype(np.float32)
    voxels = F.interpolate(torch.from_numpy(coarse)[None, None], size=shape, mode="trilinear",
                           align_corners=True)[0, 0].numpy()
    affine = np.diag([0.9, 0.8, 2.0, 1.0])  # LPS mm from voxel indices (i, j, k)
    affine[:3, 3] = (-20.0, 15.0, 60.0)
    volume = Volume(path="mem", name="ct", modality="CT", affine=affine, shape=shape,
                    voxels=voxels)
    ours = model.preprocess(volume)[0, 0].numpy()
    # MONAI reads the file in (i, j, k) order with a RAS affine, as LoadImage does.
    data = torch.from_numpy(np.ascontiguousarray(np.transpose(voxels, (2, 1, 0))))
    t = MetaTensor(data[None], affine=torch.as_tensor(LPS_FROM_RAS @ affine))
    theirs = Compose([
        Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Spacing(pixdim=(2.0, 2.5, 3.0), mode="bilinear"),
        ScaleIntensityRange(a_min=-1000, a_max=500, b_min=0.0, b_max=1.0, clip=True),
        ResizeWithPadOrCrop((32, 32, 32)),
    ])(t)[0].numpy()
    assert ours.shape == theirs.shape == (32, 32, 32)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_gradcam_on_the_3d_bundle_equals_monai_gradcam(bundle_3d):
    from monai.visualize import GradCAM as MonaiGradCAM

    model, _ = _load_quietly(bundle_3d[0])
    layer = "features.denseblock2"
    x = _smooth((32, 32, 32), seed=2)
    ours, target = _gradcam(model, x, layer)
    cam = MonaiGradCAM(nn_module=model.module, target_layers=layer)
    theirs = cam.compute_map(x, class_idx=target)[0, 0].detach()
    assert ours.shape == theirs.shape == (4, 4, 4) and float(ours.std()) > 0
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4,
                               atol=1e-6 * float(theirs.abs().max()))


class_file = '''
from pathlib import Path
from torch import nn

Path(__file__).with_suffix(".imported").write_text("ran")


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))
'''


def _small(tmp_path, network_def: dict, **extra):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    return write_bundle(tmp_path / "bundle", net, inference(network_def, [], **extra),
                        metadata(["a", "b"], 1, [32, 32]))


def test_a_target_outside_monai_is_refused_without_trust_and_never_imported(
        tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "bundle_net.py").write_text(class_file)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    root = _small(tmp_path, {"_target_": "bundle_net.Net"})
    with pytest.raises(TrustRequired) as err:
        load_model(root)
    line = err.value.one_line()
    assert "inference.json" in line and "network_def" in line and "bundle_net.Net" in line
    assert "\n" not in line and "--trust-model" in line
    assert not (tmp_path / "site" / "bundle_net.imported").exists()
    model = load_model(root, trust=True)
    assert any("scales no intensities" in note for note in model.notes)
    assert (tmp_path / "site" / "bundle_net.imported").exists()
    assert model.classes == ["a", "b"]


@pytest.mark.parametrize(("network_def", "extra", "key"), [
    ({"_target_": "DenseNet121", "spatial_dims": 2, "in_channels": 1,
      "out_channels": "$int('2')"}, {}, "network_def::out_channels"),
    ({"_target_": "DenseNet121", "spatial_dims": 2, "in_channels": 1,
      "out_channels": "@classes"}, {"classes": "$len(['a', 'b'])"}, "classes"),
    ({"_target_": "monai.apps.download_url", "url": "http://example.com/x"}, {},
     "network_def"),
    ({"_target_": "DenseNet121", "_mode_": "debug", "spatial_dims": 2, "in_channels": 1,
      "out_channels": 2}, {}, "network_def"),
])
def test_code_in_what_builds_the_network_needs_trust(tmp_path, network_def, extra, key):
    root = _small(tmp_path, network_def, **extra)
    with pytest.raises(TrustRequired) as err:
        load_model(root)
    assert f"inference.json: {key} " in err.value.one_line()


def test_a_trusted_expression_is_evaluated(tmp_path):
    net = _net(2, 2)
    root = write_bundle(tmp_path / "bundle", net, inference(
        _def(2, "@classes"), TRANSFORMS_2D, classes="$len(['a', 'b'])"),
        metadata(["no", "yes"], 1, [64, 64]))
    model, _ = _load_quietly(root, trust=True)
    assert model.classes == ["no", "yes"]


def test_an_unmapped_transform_is_named_in_one_warning_and_a_card_overrides(tmp_path):
    from monai.networks.nets import Classifier

    net = Classifier(in_shape=[1, 32, 32], classes=2, channels=[4], strides=[2]).eval()
    network_def = {"_target_": "monai.networks.nets.Classifier", "in_shape": [1, 32, 32],
                   "classes": 2, "channels": [4], "strides": [2]}
    transforms = [*TRANSFORMS_2D[:3],
                  {"_target_": "Lambdad", "keys": "image", "func": "$lambda x: x[::-1]"}]
    root = write_bundle(tmp_path / "bundle", net, inference(network_def, transforms),
                        metadata(["a", "b"], 1, [32, 32]))
    _model, lines = _load_quietly(root)
    assert len(lines) == 1 and "Lambdad" in lines[0] and "card.toml" in lines[0]
    (root / "card.toml").write_text(
        'name = "carded"\nclasses = ["left", "right"]\noutput = "sigmoid"\n'
        '[input]\nsize = [40, 40]\nchannels = 1\nmean = [0.1]\nstd = [0.2]\n')
    model, lines = _load_quietly(root)
    assert lines == [] and model.name == "carded" and model.classes == ["left", "right"]
    assert model.output == "sigmoid" and model.input.size == (40, 40)
    assert model.input.mean == (0.1,) and str(root / "card.toml") in model.files


def test_weights_that_do_not_fit_the_network_give_one_line(tmp_path):
    root = _small(tmp_path, _def(2, 2))
    with pytest.raises(ModelError) as err:
        _load_quietly(root)
    line = err.value.one_line()
    assert "model.pt" in line and "do not fit" in line and "\n" not in line


def test_torchscript_weights_need_trust(tmp_path):
    root = _small(tmp_path, _def(2, 2))
    (root / "models" / "model.pt").unlink()
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2)).eval()
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 32, 32)), root / "models" / "model.ts")
    with pytest.raises(TrustRequired) as err:
        load_model(root)
    assert "model.ts" in err.value.one_line() and "TorchScript" in err.value.one_line()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(root, trust=True)
    assert model.kind == "torchscript" and model.layer_methods_reason is not None
