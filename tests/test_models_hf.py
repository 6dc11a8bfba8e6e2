"""Hugging Face folders: opened offline, read as their config says, explained as peers do."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_fixtures import (
    ArrayImage,
    no_network,  # noqa: F401 - a fixture
    write_card,
)
from PIL import Image as PILImage
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from transformers import (
    BitImageProcessor,
    Dinov2Config,
    Dinov2ForImageClassification,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    ViTModel,
)

from engine.core.errors import ModelError, TrustRequired
from engine.explain.core import explain_one
from engine.models.loaded import load_model

LABELS = {"id2label": {0: "effusion", 1: "nodule", 2: "normal"},
          "label2id": {"effusion": 0, "nodule": 1, "normal": 2}}
#: Transformers small enough for the CPU: 32 x 32 inputs, a 4 x 4 token grid, two layers.
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "image_size": 32, "patch_size": 8}


def _save(folder, net, processor=None):
    net.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
    return folder


@pytest.fixture
def vit_folder(tmp_path):
    torch.manual_seed(0)
    net = ViTForImageClassification(ViTConfig(
        **SMALL, **LABELS, problem_type="multi_label_classification"))
    return _save(tmp_path / "vit", net, ViTImageProcessor(size={"height": 32, "width": 32}))


@pytest.fixture
def dinov2_folder(tmp_path):
    torch.manual_seed(0)
    net = Dinov2ForImageClassification(Dinov2Config(**SMALL, **LABELS))
    processor = BitImageProcessor(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    return _save(tmp_path / "dinov2", net, processor)


@pytest.fixture
def swin_folder(tmp_path):
    torch.manual_seed(0)
    net = SwinForImageClassification(SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
        window_size=4, **LABELS))
    return _save(tmp_path / "swin", net)


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _smooth_image(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, rows // 6, cols // 6), generator=gen)
    img = F.interpolate(coarse, size=(rows, cols), mode="bilinear", align_corners=False)[0]
    return img.permute(1, 2, 0).numpy().astype(np.float32)


@pytest.mark.usefixtures("no_network")
def test_a_vit_folder_loads_offline_as_its_config_says(vit_folder):
    model = load_model(vit_folder)
    assert model.classes == ["effusion", "nodule", "normal"]
    assert model.output == "sigmoid"  # problem_type multi_label_classification
    spec = model.input
    assert spec.size == (32, 32) and spec.resize == "resize" and spec.interpolation == "bilinear"
    assert spec.mean == pytest.approx((0.5,) * 3) and spec.std == pytest.approx((0.5,) * 3)
    assert str(vit_folder / "model.safetensors") in model.files
    reference = ViTForImageClassification.from_pretrained(vit_folder).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.logits(x), reference(x).logits)


@pytest.mark.parametrize("rows,cols", [(50, 70), (80, 44)])
@pytest.mark.usefixtures("no_network")
def test_preprocessing_equals_the_folders_own_image_processor(dinov2_folder, vit_folder, rows,
                                                             cols):
    """Shortest edge, centre crop and bicubic (DINOv2's processor), and a plain resize (ViT's)."""
    img = _smooth_image(rows, cols)
    pil = PILImage.fromarray((img * 255).round().astype(np.uint8))
    arr = np.asarray(pil, np.float32) / 255.0
    for folder, processor_class in ((dinov2_folder, BitImageProcessor),
                                    (vit_folder, ViTImageProcessor)):
        model = load_model(folder)
        processor = processor_class.from_pretrained(folder, local_files_only=True)
        theirs = torch.as_tensor(np.asarray(processor(pil, return_tensors="np")["pixel_values"]))
        ours = model.preprocess(ArrayImage(arr))
        assert ours.shape == theirs.shape
        assert _pearson(ours, theirs) > 0.9995, folder.name
        assert float((ours - theirs).abs().mean()) < 0.02, folder.name


class _Logits(nn.Module):
    """What pytorch-grad-cam needs of a Hugging Face model: a forward returning logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).logits


def _grid_reshape(prefix: int):
    def reshape(t):
        return t[:, prefix:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    return reshape


@pytest.mark.parametrize("which,layer,prefix", [
    ("vit", "vit.layers.1.layernorm_before", 1),
    ("dinov2", "dinov2.encoder.layer.1.norm1", 1),
    ("swin", "swin.encoder.layers.1.blocks.0.layernorm_before", 0),
])
@pytest.mark.usefixtures("no_network")
def test_gradcam_on_token_layers_equals_pytorch_grad_cam(request, which, layer, prefix):
    model = load_model(request.getfixturevalue(f"{which}_folder"))
    info = {lay.name: lay for lay in model.layers()}[layer]
    assert info.kind == "token" and info.prefix_tokens == prefix and info.shape[1:] == (4, 4)
    x = model.preprocess(ArrayImage(_smooth_image(48, 48, seed=2)))
    ours = explain_one(model, x, "gradcam", layer, 1)
    wrapped = _Logits(model.module)
    with GradCAM(wrapped, [model.module.get_submodule(layer)],
                 reshape_transform=_grid_reshape(prefix)) as cam:
        theirs = cam(x, [ClassifierOutputTarget(1)])[0]
    ours = F.interpolate(torch.as_tensor(ours)[None, None], size=x.shape[-2:], mode="bilinear",
                         align_corners=False)[0, 0].numpy()
    assert ours.std() > 0 and _pearson(ours, theirs) >= 0.99


@pytest.mark.usefixtures("no_network")
def test_a_swin_folder_without_a_processor_uses_the_config_size(swin_folder):
    model = load_model(swin_folder)
    assert model.input.size == (32, 32) and model.output == "softmax"
    assert model.classes == ["effusion", "nodule", "normal"]


@pytest.mark.usefixtures("no_network")
def test_a_card_inside_or_beside_the_folder_overrides_it(vit_folder, tmp_path):
    write_card(vit_folder, 'name = "chest-vit"\nclasses = ["x", "y", "z"]\noutput = "softmax"\n'
                           "[input]\nsize = [32, 32]\nchannels = 3\nmean = [0.4]\nstd = [0.3]\n")
    inside = load_model(vit_folder)
    assert inside.name == "chest-vit" and inside.classes == ["x", "y", "z"]
    assert inside.output == "softmax" and inside.input.mean == (0.4,) * 3
    assert str(vit_folder / "card.toml") in inside.files
    beside = load_model(write_card(tmp_path, 'model = "vit"\n[layers]\n'
                                             'default = "vit.layers.0.layernorm_before"\n'))
    assert beside.classes == ["effusion", "nodule", "normal"] and beside.output == "sigmoid"
    assert beside.default_layer == "vit.layers.0.layernorm_before"


def test_a_wrong_head_size_is_one_line(vit_folder):
    config = json.loads((vit_folder / "config.json").read_text())
    config["id2label"] = {str(i): f"c{i}" for i in range(5)}
    config["label2id"] = {f"c{i}": i for i in range(5)}
    (vit_folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as info:
        load_model(vit_folder)
    line = info.value.one_line()
    assert "\n" not in line and "model.safetensors" in line and "classifier" in line
    assert "(3" in line and "(5" in line and "Fix:" in line


def test_missing_weights_and_a_folder_that_is_no_model_are_one_line(vit_folder, tmp_path):
    (vit_folder / "model.safetensors").unlink()
    with pytest.raises(ModelError) as info:
        load_model(vit_folder)
    assert "\n" not in info.value.one_line() and "save_pretrained" in info.value.one_line()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "config.json").write_text('{"hello": 1}')
    (other / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelError) as info:
        load_model(other)
    line = info.value.one_line()
    assert "\n" not in line and "config.json" in line and "image classifier" in line


def test_model_code_named_by_the_config_needs_trust(vit_folder):
    config = json.loads((vit_folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_x.XForImageClassification"}
    (vit_folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TrustRequired) as info:
        load_model(vit_folder)
    line = info.value.one_line()
    assert "\n" not in line and "auto_map" in line and "--trust-model" in line


def test_a_backbone_without_its_classifier_is_one_line(tmp_path):
    """A ViTModel saved alone would leave the classifier at random init: refused, not guessed."""
    ViTModel(ViTConfig(**SMALL, **LABELS)).save_pretrained(tmp_path / "backbone")
    with pytest.raises(ModelError) as info:
        load_model(tmp_path / "backbone")
    line = info.value.one_line()
    assert "\n" not in line and "model.safetensors" in line and "missing" in line
    assert "classifier" in line
