"""Segmentation models: cards, targets over the predicted region or an ROI, every method."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from safetensors.torch import save_file
from torch import nn

from engine.explain import core
from engine.explain.capture import run_capture
from engine.explain.session import ExplainRequest, Session
from engine.explain.targets import roi_on_grid
from engine.models.loaded import load_model
from tests.explain_fixtures import random_image

SIZE = 96


class _Out(nn.Module):
    """pytorch-grad-cam wants a tensor: torchvision segmentation nets return {"out": ...}."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory):
    """LR-ASPP MobileNetV3 from a card: random weights, no download of any kind."""
    folder = tmp_path_factory.mktemp("seg")
    torch.manual_seed(0)
    net = torchvision.models.get_model("lraspp_mobilenet_v3_large", weights=None,
                                       weights_backbone=None, num_classes=3).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(folder / "w.safetensors"))
    (folder / "card.toml").write_text(
        'name = "seg"\narchitecture = "torchvision:lraspp_mobilenet_v3_large"\n'
        'weights = "w.safetensors"\nclasses = ["background", "lung", "nodule"]\n'
        'task = "segmentation"\n[input]\nsize = [96, 96]\nchannels = 3\n'
    )
    return load_model(folder / "card.toml")


def test_a_torchvision_segmentation_card_loads_offline(seg_model):
    assert seg_model.task == "segmentation"
    x = torch.zeros(1, 3, SIZE, SIZE)
    assert seg_model.logits(x).shape == (1, 3, SIZE, SIZE)
    assert seg_model.default_layer is not None


def test_gradcam_matches_pytorch_grad_cam_semantic_segmentation_target(seg_model):
    image = random_image(SIZE)
    x = seg_model.preprocess(image)
    layer = seg_model.default_layer
    the_plan = core.plan(seg_model, ["gradcam"], [layer])
    cap = core.capture(seg_model, x, "top", the_plan)
    target = cap.target
    ours = core.explain(cap, the_plan).maps[0][("gradcam", layer)]
    ours = F.interpolate(ours[None, None], size=(SIZE, SIZE), mode="bilinear",
                         align_corners=False)[0, 0].numpy()
    with torch.no_grad():
        mask = (seg_model.logits(x).argmax(1)[0] == target).float().numpy()
    assert mask.sum() > 0
    wrapped = _Out(seg_model.module)
    with GradCAM(wrapped, [seg_model.module.get_submodule(layer)]) as cam:
        theirs = cam(x, [SemanticSegmentationTarget(target, mask)])[0]
    assert ours.std() > 0
    r = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    assert r >= 0.99, r


def test_the_target_is_the_class_region_or_the_drawn_box(seg_model):
    x = seg_model.preprocess(random_image(SIZE))
    layer = seg_model.default_layer
    cap = run_capture(seg_model, x, 1, [layer])
    with torch.no_grad():
        pixel = seg_model.logits(x)
    region = (pixel.argmax(1) == 1).float()
    torch.testing.assert_close(cap.region, region)
    # The box version sums class 1's logits over the box, whatever the model predicts there.
    box = (10, 20, 50, 60)
    mask = roi_on_grid(box, (SIZE, SIZE), seg_model.input, (SIZE, SIZE))
    assert mask.sum() == 40 * 40
    boxed = run_capture(seg_model, x, 1, [layer], roi=mask)
    with torch.enable_grad():
        xx = x.clone().requires_grad_(True)
        value = (seg_model.logits(xx)[0, 1] * mask).sum()
    assert float(boxed.objective(pixel, torch.tensor([1]))) == pytest.approx(float(value),
                                                                             rel=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "layercam", "hirescam", "eigencam",
                                    "occlusion", "rise"])
def test_methods_run_on_a_segmentation_model_through_the_session(seg_model, method):
    params = {"occlusion": {"patch": 32, "stride": 32}, "rise": {"n_masks": 32}}
    image = random_image(SIZE)
    result = Session(device="cpu").explain(ExplainRequest(
        image, seg_model, [method], params={method: params.get(method, {})}, target="top"))
    (key, m), = result.maps.items()
    assert m.heatmap.shape == image.shape and np.isfinite(m.heatmap).all()
    assert result.segmentation is not None and result.segmentation.shape == image.shape
    assert sum(result.scores) == pytest.approx(1.0)  # pixel shares
