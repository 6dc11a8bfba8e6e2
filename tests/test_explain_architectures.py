"""Explainers on network shapes beyond the plain CNN: what each does where it cannot apply.

Each test builds a small network with the trait that once broke a method (an output no input
changes, a head that is not one linear layer on pooled features, a single superpixel, ...),
explains it through the product path, ``Session.explain``, and checks the map or the one-line
reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explain_fixtures import ArrayImage, GapNet, random_image
from torch import nn
from torchvision.models import mobilenet_v3_small
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

from engine.explain import scorer
from engine.explain.api import ExplainerUnavailable
from engine.explain.session import ExplainRequest, Session
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec

SIZE = 32


def _loaded(net: nn.Module, classes: int = 3, channels: int = 3) -> LoadedModel:
    spec = InputSpec(size=(SIZE, SIZE), channels=channels, mean=(0.5,) * channels,
                     std=(0.25,) * channels)
    return LoadedModel.from_module(net.eval(), classes=[f"c{i}" for i in range(classes)],
                                   input=spec, name=type(net).__name__)


def _explain(model, method, params=None, image=None):
    image = image if image is not None else random_image(SIZE)
    return Session(device="cpu").explain(
        ExplainRequest(image, model, [method], target=0, params={method: params or {}}))


def _constant_net() -> GapNet:
    """A GapNet whose head is zero: every input gets the same scores."""
    torch.manual_seed(0)
    net = GapNet(3)
    nn.init.zeros_(net.fc.weight)
    nn.init.zeros_(net.fc.bias)
    return net


def test_rise_and_lime_give_an_exact_zero_map_when_no_mask_changes_the_score():
    # The baseline-subtracted sums used to leave rounding noise (about 1e-9) that the display
    # stretched to a full-contrast map with no warning.
    model = _loaded(_constant_net())
    for method, params in (("rise", {"n_masks": 40}), ("lime", {"samples": 40, "segments": 8})):
        result = _explain(model, method, params)
        raw = next(iter(result.maps.values())).raw
        assert np.count_nonzero(raw) == 0, (method, float(np.abs(raw).max()))
        assert any("all zero" in line for line in result.warnings), (method, result.warnings)


class MlpHeadNet(nn.Module):
    """GapNet's features, pooled, then a two-layer head (MobileNetV3's and EfficientNet's kind)."""

    def __init__(self, classes=3):
        super().__init__()
        self.features = GapNet(classes).features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(16, 16), nn.Hardswish(), nn.Linear(16, classes))

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def test_cam_on_a_head_of_two_linear_layers_names_the_model_not_a_layer_choice():
    # At the default layer the old line told the user to pick "layer auto", which they had.
    torch.manual_seed(0)
    with pytest.raises(ExplainerUnavailable) as caught:
        _explain(_loaded(MlpHeadNet()), "cam")
    line = str(caught.value)
    assert "MlpHeadNet does not end that way" in line and "Grad-CAM" in line, line
    assert "layer auto" not in line and "\n" not in line, line


def _noise_image(channels: int = 3) -> ArrayImage:
    shape = (SIZE, SIZE, channels) if channels > 1 else (SIZE, SIZE)
    return ArrayImage(np.random.default_rng(0).random(shape))


def test_lime_and_kernelshap_raise_the_compactness_on_a_noisy_input():
    # At compactness 0.3 SLIC merges white noise into one superpixel; the maps were one colour,
    # with only "constant: nothing to show" to say why.
    torch.manual_seed(0)
    model = _loaded(GapNet(3))
    for method in ("lime", "kernelshap"):
        result = _explain(model, method, {"samples": 40, "segments": 8}, image=_noise_image())
        mapped = next(iter(result.maps.values()))
        assert np.ptp(mapped.raw) > 0, method
        assert mapped.warning is None, mapped.warning
        assert any("compactness 3 " in line for line in result.warnings), result.warnings


def _tiny_swin() -> nn.Module:
    torch.manual_seed(0)
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                           window_size=[4, 4], num_classes=3)


def _tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    net = VisionTransformer(image_size=SIZE, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=3)
    nn.init.normal_(net.heads.head.weight, std=0.5)  # torchvision starts it at zero
    return net


def _ablation_by_hand(model, layer, image, zero):
    """Ablation-CAM from its definition, zeroing channel k of the raw output with ``zero``."""
    net, x = model.module, model.preprocess(image)
    module = net.get_submodule(layer)
    kept = {}
    handle = module.register_forward_hook(lambda _m, _i, out: kept.setdefault("out", out))
    with torch.no_grad():
        logit = float(net(x)[0, 0])
    handle.remove()
    acts = model.to_activation_map(layer, kept["out"])[0]
    weights = torch.zeros(acts.shape[0])
    for k in range(acts.shape[0]):
        handle = module.register_forward_hook(lambda _m, _i, out, k=k: zero(out.clone(), k))
        with torch.no_grad():
            weights[k] = (logit - float(net(x)[0, 0])) / abs(logit)
        handle.remove()
    return torch.relu((weights[:, None, None] * acts).sum(0)).numpy()


def _zero_last(out, k, first=0):
    out[:, first:, ..., k] = 0.0
    return out


def test_ablationcam_ablates_the_channel_of_a_channels_last_or_token_layer():
    # A Swin stage's (N, H, W, C) output had row k zeroed for channel k (an IndexError past the
    # grid's height); a ViT token layer was refused.
    image = random_image(SIZE)
    cases = ((_tiny_swin(), "features.1", _zero_last),
             (_tiny_vit(), "encoder.layers.encoder_layer_1.ln_1",
              lambda out, k: _zero_last(out, k, first=1)))
    for net, layer, zero in cases:
        model = _loaded(net)
        result = Session(device="cpu").explain(
            ExplainRequest(image, model, ["ablationcam"], layers=[layer], target=0))
        got = result.maps[("ablationcam", layer)].raw
        expected = _ablation_by_hand(model, layer, image, zero)
        assert np.abs(expected).max() > 0, layer
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


class BranchingBNNet(nn.Module):
    """Conv -> BatchNorm with a branch on the data: ``torch.fx`` cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.bn(self.conv(x))
        if float(y.mean()) > 0:
            y = -y
        return self.fc(y.mean(dim=(2, 3)))


def test_the_folded_scorer_copy_is_equal_or_not_used():
    # MobileNetV3 (Hardswish, squeeze-excitation) folds; a data-dependent branch cannot be
    # traced, and the model itself is scored.
    torch.manual_seed(0)
    x = torch.randn(1, 3, SIZE, SIZE)
    batch = torch.cat([x, x.flip(-1), 0.5 * x])
    mobile = mobilenet_v3_small(num_classes=3).eval()
    folded = scorer.fast_module(mobile, x)
    assert folded is not mobile
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        want = mobile(batch)
        assert float((folded(batch) - want).abs().max()) <= 1e-5 * float(want.abs().max())
    branching = BranchingBNNet().eval()
    assert scorer.fast_module(branching, x) is branching
