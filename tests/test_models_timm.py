"""timm models: built offline from timm:NAME, fed as timm evaluates them, explained as peers do."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from models_fixtures import (
    ArrayImage,
    no_network,  # noqa: F401 - a fixture
    save_state,
    write_card,
)
from PIL import Image as PILImage
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from engine.core.errors import ModelError
from engine.explain.core import explain_one
from engine.models.loaded import load_model
from engine.models.loaders import known_architectures
from engine.models.preprocess import InputSpec, map_to_image, prepare_array

#: A ViT small enough for the CPU: 32 x 32 input, 8 x 8 patches (a 4 x 4 grid), two blocks.
VIT_ARGS = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}
VIT_CARD = """
architecture = "timm:vit_tiny_patch16_224"
weights = "vit.safetensors"
classes = ["a", "b", "c"]

[architecture_args]
img_size = 32
patch_size = 8
depth = 2
embed_dim = 32
num_heads = 2
"""


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _upsampled(raw: np.ndarray, size: int) -> np.ndarray:
    t = torch.as_tensor(np.asarray(raw, np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def _smooth_image(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A colour image in [0, 1] with structure at several scales (geometry errors show)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, rows // 6, cols // 6), generator=gen)
    img = F.interpolate(coarse, size=(rows, cols), mode="bilinear", align_corners=False)[0]
    return img.permute(1, 2, 0).numpy().astype(np.float32)


@pytest.fixture
def resnet_weights(tmp_path):
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=4).eval()
    return net, save_state(net, tmp_path / "resnet.safetensors")


@pytest.fixture
def vit_card(tmp_path):
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3,
                            **VIT_ARGS).eval()
    save_state(net, tmp_path / "vit.safetensors")
    return net, write_card(tmp_path, VIT_CARD)


@pytest.mark.usefixtures("no_network")
def test_bare_timm_loads_offline_with_the_pretrained_preprocessing(resnet_weights):
    net, weights = resnet_weights
    model = load_model(f"timm:test_resnet@{weights}")
    cfg = timm.get_pretrained_cfg("test_resnet").to_dict()
    assert model.classes == [f"class_{i}" for i in range(4)]
    assert model.input.size == tuple(cfg["input_size"][1:])
    assert model.input.mean == pytest.approx(cfg["mean"])
    assert model.input.std == pytest.approx(cfg["std"])
    assert model.input.interpolation == cfg["interpolation"]
    assert model.input.crop_pct == pytest.approx(cfg["crop_pct"])
    assert model.input.resize == "crop"  # timm's centre crop mode
    x = torch.randn(2, 3, *model.input.size)
    torch.testing.assert_close(model.logits(x), net(x))


@pytest.mark.usefixtures("no_network")
def test_card_args_reach_timm_and_the_built_size_wins(vit_card):
    net, card = vit_card
    model = load_model(card)
    assert model.input.size == (32, 32) and model.classes == ["a", "b", "c"]
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model.logits(x), net(x))
    token = {info.name: info for info in model.layers()}["blocks.1.norm1"]
    assert token.kind == "token" and token.shape == (32, 4, 4) and token.prefix_tokens == 1


@pytest.mark.parametrize("rows,cols", [(50, 70), (90, 40)])
def test_preprocessing_matches_timms_eval_transform(rows, cols):
    """Lucida's crop and resize equal timm's own eval transform (PIL, bicubic, centre crop)."""
    spec = InputSpec(size=(32, 32), channels=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                     resize="crop", interpolation="bicubic", crop_pct=0.8)
    transform = timm.data.create_transform(
        input_size=(3, 32, 32), interpolation="bicubic", mean=spec.mean, std=spec.std,
        crop_pct=0.8, crop_mode="center",
    )
    img = _smooth_image(rows, cols)
    pil = PILImage.fromarray((img * 255).round().astype(np.uint8))
    theirs = transform(pil)
    ours = prepare_array(np.asarray(pil, np.float32) / 255.0, spec)[0]
    assert ours.shape == theirs.shape
    # A one-pixel shift of the crop drops the correlation to about 0.93.
    assert _pearson(ours, theirs) > 0.9999
    assert float((ours - theirs).abs().mean()) < 0.01


def test_a_map_covers_only_the_centre_crop_of_the_image():
    spec = InputSpec(size=(32, 32), channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, resize="crop")
    heat = map_to_image(np.ones((8, 8), np.float32), spec, (100, 200))
    # The model saw the centred 100 x 100 square (columns 50..149); the rest was cropped away.
    assert np.allclose(heat[:, 52:148], 1.0) and np.allclose(heat[:, :48], 0.0)
    assert np.allclose(heat[:, 152:], 0.0)


def _gradcam_pair(model, layer, target, reshape=None):
    image = ArrayImage(_smooth_image(48, 48, seed=3))
    x = model.preprocess(image)
    ours = explain_one(model, x, "gradcam", layer, target)
    with GradCAM(model.module, [model.module.get_submodule(layer)],
                 reshape_transform=reshape) as cam:
        theirs = cam(x, [ClassifierOutputTarget(target)])[0]
    return _upsampled(ours, x.shape[-1]), theirs


@pytest.mark.usefixtures("no_network")
def test_gradcam_on_a_timm_cnn_equals_pytorch_grad_cam(resnet_weights):
    _net, weights = resnet_weights
    model = load_model(f"timm:test_resnet@{weights}")
    assert model.default_layer == "layer4"
    ours, theirs = _gradcam_pair(model, "layer4", 1)
    assert ours.std() > 0 and _pearson(ours, theirs) >= 0.99


@pytest.mark.usefixtures("no_network")
def test_gradcam_on_a_timm_vit_equals_pytorch_grad_cam_with_a_reshape(vit_card):
    _net, card = vit_card
    model = load_model(card)

    def reshape(t):  # pytorch-grad-cam's ViT recipe: drop the class token, lay tokens on 4 x 4
        return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    ours, theirs = _gradcam_pair(model, "blocks.1.norm1", 2, reshape)
    assert ours.std() > 0 and _pearson(ours, theirs) >= 0.99


@pytest.mark.parametrize("name,kwargs,prefix", [
    ("vit_tiny_patch16_224", {"reg_tokens": 4}, 5),
    ("deit_tiny_distilled_patch16_224", {}, 2),
])
def test_register_and_distillation_tokens_are_dropped(tmp_path, name, kwargs, prefix):
    net = timm.create_model(name, pretrained=False, num_classes=2, **VIT_ARGS, **kwargs)
    assert net.num_prefix_tokens == prefix  # timm's own count
    args = "\n".join(f"{k} = {v}" for k, v in {**VIT_ARGS, **kwargs}.items())
    save_state(net, tmp_path / "w.safetensors")
    card = write_card(tmp_path, f'architecture = "timm:{name}"\nweights = "w.safetensors"\n'
                                f"[architecture_args]\n{args}\n")
    layers = {info.name: info for info in load_model(card).layers()}
    assert layers["blocks.0.norm1"].prefix_tokens == prefix
    assert layers["blocks.0.norm1"].shape == (32, 4, 4)


def test_a_wrong_head_size_is_one_line(tmp_path, resnet_weights):
    _net, weights = resnet_weights
    card = write_card(tmp_path, f'architecture = "timm:test_resnet"\nweights = "{weights.name}"\n'
                                'classes = ["a", "b", "c"]\n', name="three.toml")
    with pytest.raises(ModelError) as info:
        load_model(card)
    line = info.value.one_line()
    assert "\n" not in line and weights.name in line and "fc.weight" in line
    assert "(4, " in line and "(3, " in line


@pytest.mark.parametrize("body,needle", [
    ('architecture = "timm:no_such_net"\nweights = "w.safetensors"\n', "no_such_net"),
    ('architecture = "timm:test_resnet"\nweights = "missing.safetensors"\n', "missing"),
    ('architecture = "timm:test_resnet"\nweights = "w.safetensors"\n'
     "[architecture_args]\npretrained = true\n", "pretrained"),
])
def test_bad_timm_cards_are_one_line(tmp_path, resnet_weights, body, needle):
    resnet_weights[1].rename(tmp_path / "w.safetensors")
    with pytest.raises(ModelError) as info:
        load_model(write_card(tmp_path, body))
    line = info.value.one_line()
    assert "\n" not in line and needle in line and "Fix:" in line


def test_known_architectures_list_timm_and_xrv():
    names = known_architectures()
    assert "timm:convnext_tiny" in names and "timm:vit_base_patch16_224" in names
    assert "xrv:densenet121-res224-all" in names and "torchvision:resnet18" in names


@pytest.mark.usefixtures("no_network")
def test_the_head_size_is_read_from_timms_classifier(tmp_path):
    """safetensors lists keys sorted, so "head.fc" comes before the blocks' MLP matrices."""
    net = timm.create_model("test_convnext", pretrained=False, num_classes=5)
    weights = save_state(net, tmp_path / "convnext.safetensors")
    assert load_model(f"timm:test_convnext@{weights}").classes == [f"class_{i}" for i in range(5)]


def test_a_card_states_the_crop_and_the_filter(tmp_path, resnet_weights):
    resnet_weights[1].rename(tmp_path / "w.safetensors")
    card = write_card(tmp_path, 'architecture = "timm:test_resnet"\nweights = "w.safetensors"\n'
                                '[input]\nsize = [40, 40]\nresize = "crop"\ncrop_pct = 0.8\n'
                                'interpolation = "nearest"\n')
    spec = load_model(card).input
    assert (spec.size, spec.resize, spec.crop_pct, spec.interpolation) == \
        ((40, 40), "crop", 0.8, "nearest")
    assert spec.mean == pytest.approx((0.485, 0.456, 0.406))  # the card's defaults, not timm's
    bad = write_card(tmp_path, 'architecture = "timm:test_resnet"\nweights = "w.safetensors"\n'
                               '[input]\ncrop_pct = 1.5\n', name="bad.toml")
    with pytest.raises(ModelError) as info:
        load_model(bad)
    assert "crop_pct" in info.value.one_line() and "\n" not in info.value.one_line()


@pytest.mark.usefixtures("no_network")
def test_a_card_naming_an_architecture_wins_over_a_config_json_beside_it(tmp_path,
                                                                         resnet_weights):
    """timm's own hub folders hold a config.json that transformers cannot read; a card wins."""
    net, weights = resnet_weights
    (tmp_path / "config.json").write_text('{"architecture": "test_resnet", "num_classes": 4}')
    write_card(tmp_path, f'architecture = "timm:test_resnet"\nweights = "{weights.name}"\n'
                         'classes = ["a", "b", "c", "d"]\n')
    model = load_model(tmp_path)
    x = torch.randn(1, 3, *model.input.size)
    assert model.classes == ["a", "b", "c", "d"]
    torch.testing.assert_close(model.logits(x), net(x))
