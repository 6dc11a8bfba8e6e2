"""Layer discovery on a plain nn.Sequential and on torchvision families (random init)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from models_fixtures import grey_spec, tiny_cnn
from torch import nn
from torchvision.models import VisionTransformer
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vgg import VGG, make_layers

from engine.core.errors import UsageError
from engine.models.loaded import InputSpec, LoadedModel


def _rgb(size: int) -> InputSpec:
    return InputSpec(size=(size, size), channels=3, mean=(0.5,), std=(0.5,))


def _small_vit() -> nn.Module:
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=2)
    nn.init.normal_(vit.heads.head.weight)  # torchvision zero-initialises the head
    return vit


def _small_swin() -> nn.Module:
    return SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1, 1, 1],
                           num_heads=[1, 1, 1, 1], window_size=[2, 2], num_classes=2)


def _small_convnext() -> nn.Module:
    cfg = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)]
    return ConvNeXt(cfg, num_classes=2)


def _light(build, head: nn.Module) -> nn.Module:
    """Build a torchvision model with a small classifier head, skipping its huge default head."""
    with torch.device("meta"):
        model = build()
    model.classifier = head
    model = model.to_empty(device="cpu")
    for sub in model.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    return model


def _small_vgg() -> nn.Module:
    return _light(lambda: VGG(make_layers([8, "M", 16, "M"]), num_classes=2),
                  nn.Sequential(nn.Flatten(), nn.Linear(16 * 49, 2)))


def _alexnet() -> nn.Module:
    return _light(lambda: torchvision.models.alexnet(num_classes=2),
                  nn.Sequential(nn.Flatten(), nn.Linear(256 * 36, 2)))


def _small_efficientnet() -> nn.Module:
    setting = [MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(6, 3, 2, 8, 16, 1),
               MBConvConfig(6, 3, 2, 16, 24, 1)]
    return EfficientNet(setting, dropout=0.2, num_classes=2)


def _small_regnet() -> nn.Module:
    params = BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8)
    return RegNet(params, num_classes=2)


def _small_densenet() -> nn.Module:
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2),
                                       num_init_features=16, num_classes=2)


#: family -> (builder, input size, expected default layer, expected default (C, h, w)).
#: Small configurations of each family's own classes keep the test fast; the layer names
#: are those of the full-size models.
FAMILIES = {
    "resnet": (lambda: torchvision.models.resnet18(num_classes=2), 64, "layer4", (512, 2, 2)),
    "vgg": (_small_vgg, 32, "features", (16, 8, 8)),
    "alexnet": (_alexnet, 96, "features", (256, 2, 2)),
    "squeezenet": (lambda: torchvision.models.squeezenet1_1(num_classes=2), 64,
                   "classifier.2", (2, 3, 3)),
    "googlenet": (lambda: torchvision.models.googlenet(num_classes=2, aux_logits=False,
                                                       init_weights=False), 64,
                  "inception5b", (1024, 2, 2)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(num_classes=2, width_mult=0.25),
                     64, "features", (1280, 2, 2)),
    "mobilenet_v3": (lambda: torchvision.models.mobilenet_v3_small(num_classes=2), 64,
                     "features", (576, 2, 2)),
    "densenet": (_small_densenet, 64, "features", (32, 2, 2)),
    "efficientnet": (_small_efficientnet, 32, "features", (96, 4, 4)),
    "regnet": (_small_regnet, 64, "trunk_output", (32, 4, 4)),
    "convnext": (_small_convnext, 64, "features", (32, 4, 4)),
    "swin": (_small_swin, 64, "permute", (64, 2, 2)),
    "vit": (_small_vit, 32, "encoder.layers.encoder_layer_1.ln_1", (16, 4, 4)),
}


def test_plain_sequential_cnn_just_works():
    model = LoadedModel.from_module(tiny_cnn(), classes=["a", "b"], input=grey_spec(32))
    names = [info.name for info in model.layers()]
    assert model.default_layer == "4"  # the ReLU before AdaptiveAvgPool2d
    assert names == ["0", "1", "2", "3", "4"]
    assert model.layers()[-1].shape == (8, 16, 16) and model.layers()[-1].kind == "spatial"
    with pytest.raises(UsageError, match="no layer"):
        model.submodule("nope")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_torchvision_family_default_layer(family):
    torch.manual_seed(0)
    build, size, default, shape = FAMILIES[family]
    model = LoadedModel.from_module(build(), classes=["a", "b"], input=_rgb(size))
    layers = {info.name: info for info in model.layers()}
    assert model.default_layer == default
    assert layers[default].shape == shape
    # The hook output of the default layer reshapes to (N, C, h, w) and reaches the logits.
    seen = {}
    handle = model.submodule(default).register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    x = torch.randn(1, 3, size, size)
    logits = model.logits(x)
    handle.remove()
    act = model.to_activation_map(default, seen["o"])
    assert tuple(act.shape) == (1, *shape)
    grad = torch.autograd.grad(logits[0, 0], seen["o"])[0]
    assert model.to_activation_map(default, grad).abs().sum() > 0


def test_vit_tokens_reshape_without_the_class_token():
    model = LoadedModel.from_module(_small_vit(), classes=["a", "b"], input=_rgb(32))
    token = [info for info in model.layers() if info.kind == "token"]
    assert token and all(info.prefix_tokens == 1 and info.shape[1:] == (4, 4) for info in token)
    out = torch.arange(17 * 16, dtype=torch.float32).reshape(1, 17, 16)
    act = model.to_activation_map(token[0].name, out)
    # Patch token 5 sits at row 1, column 1 of the 4x4 grid.
    assert torch.equal(act[0, :, 1, 1], out[0, 1 + 5])


def test_swin_channels_last_stages_are_recognised():
    model = LoadedModel.from_module(_small_swin(), classes=["a", "b"], input=_rgb(64))
    # "features" ends with the last stage and hands on its (N, H, W, C) output.
    stage = {info.name: info for info in model.layers()}["features"]
    assert stage.kind == "spatial" and stage.shape == (64, 2, 2)
    nhwc = torch.randn(1, 2, 2, 64)
    assert torch.equal(model.to_activation_map("features", nhwc), nhwc.permute(0, 3, 1, 2))
