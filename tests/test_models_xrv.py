"""TorchXRayVision's DenseNet: built offline, its pathologies and preprocessing, explained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchxrayvision as xrv
from models_fixtures import (
    ArrayImage,
    no_network,  # noqa: F401 - a fixture
    save_state,
    write_card,
)
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from engine.core.errors import ModelError, TrustRequired
from engine.explain.core import explain_one
from engine.models.loaded import load_model

ARCH = "xrv:densenet121-res224-all"
#: xrv's DenseNet class with fewer and thinner blocks, so that the CPU tests stay fast; the
#: bare-form test builds the real DenseNet-121.
SMALL = {"growth_rate": 8, "block_config": (1, 2, 2, 1), "num_init_features": 8, "bn_size": 2}
SMALL_CARD = f"""
architecture = "{ARCH}"
weights = "{{weights}}"

[architecture_args]
growth_rate = 8
block_config = [1, 2, 2, 1]
num_init_features = 8
bn_size = 2
"""


def _densenet(**args):
    torch.manual_seed(0)
    net = xrv.models.DenseNet(weights=None, **args).eval()
    with torch.no_grad():  # a head that separates the classes, as trained weights would
        net.classifier.weight.normal_(0, 0.05)
        net.classifier.bias.normal_(0, 0.5)
    return net


@pytest.fixture(scope="module")
def densenet():
    return _densenet(**SMALL)


@pytest.fixture
def card(tmp_path, densenet):
    save_state(densenet, tmp_path / "xrv.safetensors")
    return write_card(tmp_path, SMALL_CARD.format(weights="xrv.safetensors"))


def _xray(rows: int = 224, cols: int = 224, seed: int = 0) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 1, rows // 8, cols // 8), generator=gen)
    return F.interpolate(coarse, size=(rows, cols), mode="bilinear",
                         align_corners=False)[0, 0].numpy().astype(np.float32)


@pytest.mark.usefixtures("no_network")
def test_the_bare_densenet121_loads_offline_with_its_pathologies_and_logits(tmp_path):
    net = _densenet()
    weights = save_state(net, tmp_path / "xrv.safetensors")
    model = load_model(f"{ARCH}@{weights}")
    assert model.classes == list(xrv.datasets.default_pathologies) and len(model.classes) == 18
    assert model.output == "sigmoid"
    x = torch.randn(1, 1, 224, 224)
    with torch.no_grad():
        logits = model.logits(x)
        # weights=None: no operating points and no sigmoid, so forward is the classifier's output.
        expected = net.classifier(net.features2(x))
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(model.scores(logits), torch.sigmoid(expected))


@pytest.mark.usefixtures("no_network")
def test_preprocessing_is_xrvs_normalisation_and_centre_crop(card):
    model = load_model(card)
    assert model.input.channels == 1 and model.input.size == (224, 224)
    img = _xray()
    theirs = xrv.utils.normalize(img * 255.0, 255)  # pixel values to [-1024, 1024]
    torch.testing.assert_close(model.preprocess(ArrayImage(img))[0, 0],
                               torch.from_numpy(theirs), atol=1e-3, rtol=0)
    # A tall image: xrv keeps the centred square, then resizes it.
    tall = _xray(300, 240, seed=1)
    square = xrv.datasets.XRayCenterCrop()(tall[None] * 255.0)
    resized = xrv.datasets.XRayResizer(224, engine="cv2")(xrv.utils.normalize(square, 255))
    ours = model.preprocess(ArrayImage(tall))[0, 0].numpy()
    assert np.corrcoef(ours.ravel(), resized[0].ravel())[0, 1] > 0.999


@pytest.mark.usefixtures("no_network")
def test_operating_points_in_the_weights_are_left_out(densenet, tmp_path):
    """A state_dict saved from xrv's own pretrained model holds op_threshs; it still loads."""
    state = {k: v.clone() for k, v in densenet.state_dict().items()}
    state["op_threshs"] = torch.full((18,), 0.3)
    torch.save(state, tmp_path / "with_ops.pt")
    model = load_model(write_card(tmp_path, SMALL_CARD.format(weights="with_ops.pt")))
    x = torch.randn(1, 1, 224, 224)
    torch.testing.assert_close(model.logits(x), densenet(x))


@pytest.mark.usefixtures("no_network")
def test_gradcam_equals_pytorch_grad_cam(card):
    model = load_model(card)
    assert model.output == "sigmoid" and len(model.classes) == 18
    x = model.preprocess(ArrayImage(_xray(seed=2)))
    # Not the default layer ("features"): xrv's forward applies an in-place ReLU to its
    # output, which overwrites the activation that pytorch-grad-cam's hook keeps.
    for layer in ("features.denseblock4", "features.transition3"):
        with GradCAM(model.module, [model.module.get_submodule(layer)]) as cam:
            # A random network's Grad-CAM is all negative (a flat map) for some classes; the
            # first class with a map is compared.
            target, theirs = next((t, m) for t in range(18)
                                  if (m := cam(x, [ClassifierOutputTarget(t)])[0]).std() > 0)
        ours = explain_one(model, x, "gradcam", layer, target)
        ours = F.interpolate(torch.as_tensor(ours)[None, None], size=(224, 224),
                             mode="bilinear", align_corners=False)[0, 0].numpy()
        assert ours.std() > 0, layer
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= 0.99, layer


def test_a_pickled_whole_model_needs_trust(densenet, tmp_path):
    torch.save(densenet, tmp_path / "whole.pt")
    card = write_card(tmp_path, SMALL_CARD.format(weights="whole.pt"))
    with pytest.raises(TrustRequired) as info:
        load_model(card)
    assert "\n" not in info.value.one_line() and "whole.pt" in info.value.one_line()
    model = load_model(card, trust=True)
    x = torch.randn(1, 1, 224, 224)
    torch.testing.assert_close(model.logits(x), densenet(x))


def test_a_wrong_head_size_and_a_wrong_name_are_one_line(tmp_path):
    other = xrv.models.DenseNet(weights=None, num_classes=14, **SMALL)
    path = save_state(other, tmp_path / "nih14.safetensors")
    with pytest.raises(ModelError) as info:
        load_model(write_card(tmp_path, SMALL_CARD.format(weights=path.name)))
    line = info.value.one_line()
    assert "\n" not in line and "nih14.safetensors" in line and "classifier.weight" in line
    assert "(14, " in line and "(18, " in line
    with pytest.raises(ModelError) as info:
        load_model(f"xrv:densenet121-res999@{path}")
    line = info.value.one_line()
    assert "\n" not in line and "densenet121-res224-all" in line
