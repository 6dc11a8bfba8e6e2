"""Attention rollout, attention relevance (Chefer) and LeGrad against their definitions.

The definitions are checked on a two-block, two-head timm ViT whose forward pass the test writes
out by hand, so that its attention matrices, their gradients and each block's read-out score
come from the test's own arithmetic, not from the capture; the rollout product is written out.
LeGrad is also checked against torch-cam 0.5's implementation. The capture's eager attention
must give the fused path's logits (timm, Hugging Face, torchvision), and the token layout
(class, register and distillation tokens, a non-square patch grid) is found, not configured.
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torchvision
import transformers
from explain_fixtures import random_image
from models_fixtures import no_network  # noqa: F401 - a fixture
from torch import nn
from torchcam.methods import LeGrad as TorchCamLeGrad

from engine.core.errors import ModelError
from engine.explain import core
from engine.explain.api import ExplainerUnavailable
from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from engine.models.attention import CAM_METHODS_FOR_WINDOWS, find_attention
from engine.models.loaded import LoadedModel, load_model
from engine.models.preprocess import InputSpec

#: A non-square input: a 2 x 3 grid of 8-pixel patches.
HW = (16, 24)
METHODS = ("rollout", "attnrelevance", "legrad")


def _loaded(net: nn.Module, hw=HW) -> LoadedModel:
    spec = InputSpec(size=hw, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    return LoadedModel.from_module(net.eval(), classes=["c0", "c1", "c2"], input=spec,
                                   name=type(net).__name__)


def _timm_vit(**kw) -> nn.Module:
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=HW, patch_size=8,
                            depth=2, num_heads=2, embed_dim=8, mlp_ratio=2, num_classes=3, **kw)
    with torch.no_grad():  # sharper attention and a larger head than timm's small init gives
        for block in net.blocks:
            block.attn.qkv.weight.normal_(std=1.0)
        net.head.weight.normal_(std=1.0)
    return net.eval()


def _input(seed: int = 1, hw=HW) -> torch.Tensor:
    return torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(seed))


def _maps(model, x, methods=METHODS, params=None, target=None):
    the_plan = core.plan(model, list(methods), "auto", params or {})
    cap = core.capture(model, x, [target], the_plan)
    got = core.explain(cap, the_plan)
    assert got.errors == [{}]
    return cap, {m: got.maps[0][(m, "input")] for m in methods}


def _by_hand(vit: nn.Module, x: torch.Tensor):
    """The timm ViT's forward pass written out: attention matrices, block tokens, logits."""
    n = x.shape[0]
    z = vit.patch_embed(x)
    z = torch.cat([vit.cls_token.expand(n, -1, -1), z], 1) + vit.pos_embed
    t, c = z.shape[1], z.shape[2]
    attentions, tokens = [], []
    for block in vit.blocks:
        heads = block.attn.num_heads
        d = c // heads
        qkv = block.attn.qkv(block.norm1(z)).reshape(n, t, 3, heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        attentions.append(a)
        z = z + block.attn.proj((a @ v).transpose(1, 2).reshape(n, t, c))
        z = z + block.mlp(block.norm2(z))
        tokens.append(z)
    logits = vit.head(vit.norm(z)[:, 0])
    return attentions, tokens, logits


def test_captured_attention_is_the_models_own_and_the_grid_is_non_square():
    vit = _timm_vit()
    model, x = _loaded(vit), _input()
    attentions, _, logits = _by_hand(vit, x)
    cap, maps = _maps(model, x)
    assert torch.allclose(cap.logits, logits, atol=1e-5)
    assert len(cap.attentions) == 2
    for got, want in zip(cap.attentions, attentions, strict=True):
        assert got.shape == (1, 2, 7, 7)
        assert torch.allclose(got, want, atol=1e-6)
    assert cap.token_grid == (1, 2, 3)
    assert all(m.shape == (2, 3) for m in maps.values())


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_is_the_product_of_residual_attention(fusion):
    vit = _timm_vit()
    model, x = _loaded(vit), _input()
    a1, a2 = (a.detach()[0] for a in _by_hand(vit, x)[0])
    fuse = {"mean": lambda a: a.mean(0), "max": lambda a: a.amax(0),
            "min": lambda a: a.amin(0)}[fusion]
    eye = torch.eye(7)
    hat1 = (fuse(a1) + eye) / 2
    hat1 = hat1 / hat1.sum(1, keepdim=True)
    hat2 = (fuse(a2) + eye) / 2
    hat2 = hat2 / hat2.sum(1, keepdim=True)
    rolled = hat2 @ hat1  # the second block's matrix applied after the first's
    _, maps = _maps(model, x, ["rollout"], {"rollout": {"head_fusion": fusion}})
    assert torch.allclose(maps["rollout"], rolled[0, 1:].reshape(2, 3), atol=1e-6)


def test_rollout_of_uniform_attention_is_three_quarters_over_t():
    # With zero query and key weights every token attends to all T tokens equally: A = U with
    # U = 1/T everywhere, so (U + I)/2 squared is (3U + I)/4 (U^2 = U), and the class token's
    # share of every patch is 3 / (4T).
    vit = _timm_vit()
    with torch.no_grad():
        for block in vit.blocks:
            block.attn.qkv.weight[: 2 * 8].zero_()
            block.attn.qkv.bias[: 2 * 8].zero_()
    _, maps = _maps(_loaded(vit), _input(), ["rollout"])
    assert torch.allclose(maps["rollout"], torch.full((2, 3), 3 / (4 * 7)), atol=1e-7)


def test_rollout_discard_ratio_zeroes_the_weakest_entries():
    vit = _timm_vit()
    model, x = _loaded(vit), _input()
    a1, a2 = (a.detach()[0].mean(0) for a in _by_hand(vit, x)[0])
    eye = torch.eye(7)

    def step(a):
        off = a.masked_fill(eye.bool(), float("inf")).flatten()
        kept = a.flatten().clone()
        kept[off.argsort()[: int(49 * 0.5)]] = 0.0  # half of the 49 entries, never the diagonal
        hat = (kept.view(7, 7) + eye) / 2
        return hat / hat.sum(1, keepdim=True)

    _, maps = _maps(model, x, ["rollout"], {"rollout": {"discard_ratio": 0.5}})
    _, plain = _maps(model, x, ["rollout"])
    assert torch.allclose(maps["rollout"], (step(a2) @ step(a1))[0, 1:].reshape(2, 3),
                          atol=1e-6)
    assert not torch.allclose(maps["rollout"], plain["rollout"], atol=1e-3)


@pytest.mark.parametrize("target", [0, 2])
def test_relevance_follows_chefer_update_rule(target):
    vit = _timm_vit()
    model, x = _loaded(vit), _input()
    (a1, a2), _, logits = _by_hand(vit, x)
    g1, g2 = torch.autograd.grad(logits[0, target], [a1, a2])
    bar1 = (g1 * a1).clamp(min=0).mean(1)[0].detach()
    bar2 = (g2 * a2).clamp(min=0).mean(1)[0].detach()
    r1 = torch.eye(7) + bar1 @ torch.eye(7)
    r2 = r1 + bar2 @ r1
    _, maps = _maps(model, x, ["attnrelevance"], target=target)
    assert torch.allclose(maps["attnrelevance"], r2[0, 1:].reshape(2, 3), atol=1e-6)


@pytest.mark.parametrize("last_blocks", [0, 1])
def test_legrad_is_each_blocks_own_score_gradient(last_blocks):
    vit = _timm_vit()
    model, x = _loaded(vit), _input()
    attentions, tokens, logits = _by_hand(vit, x)
    target = int(logits.argmax())
    per_block = []
    for a, z in zip(attentions, tokens, strict=True):
        score = vit.head(vit.norm(z.mean(1)))[0, target]  # the block's own prediction
        (g,) = torch.autograd.grad(score, a, retain_graph=True)
        per_block.append(g.clamp(min=0).mean(dim=(1, 2))[0, 1:].reshape(2, 3))
    used = per_block[-last_blocks:] if last_blocks else per_block
    _, maps = _maps(model, x, ["legrad"], {"legrad": {"last_blocks": last_blocks}})
    assert torch.allclose(maps["legrad"], sum(used) / len(used), atol=1e-7)


def _torchvision_vit() -> nn.Module:
    torch.manual_seed(0)
    net = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                               num_heads=2, hidden_dim=16, mlp_dim=32,
                                               num_classes=3)
    nn.init.normal_(net.heads.head.weight, std=0.5)  # torchvision starts it at zero
    return net.eval()


def test_legrad_matches_torchcam():
    # torch-cam's LeGrad reads torchvision's nn.MultiheadAttention blocks only, so the two are
    # compared on a torchvision ViT; its default block score (heads(ln(mean of tokens))) is the
    # read-out Lucida uses. Tolerance: 1e-6 relative to the map's peak (float32 arithmetic).
    net = _torchvision_vit()
    model, x = _loaded(net, (32, 32)), _input(3, (32, 32))
    _, maps = _maps(model, x, ["legrad"], target=1)
    with TorchCamLeGrad(net, list(net.encoder.layers)) as extractor:
        scores = net(x.clone())
        theirs = extractor(1, scores, normalized=False)[0][0]
    ours = maps["legrad"]
    assert ours.shape == theirs.shape == (4, 4)
    assert float(theirs.abs().max()) > 0
    assert torch.allclose(ours, theirs, atol=1e-6 * float(theirs.abs().max()))


def test_eager_capture_gives_the_fused_logits_timm():
    vit = _timm_vit()
    for block in vit.blocks:
        block.attn.fused_attn = True
    model, x = _loaded(vit), _input()
    with torch.no_grad():
        fused = model.logits(x)
    cap, _ = _maps(model, x)
    assert torch.allclose(cap.logits, fused, atol=1e-5)
    assert all(block.attn.fused_attn for block in vit.blocks)  # switched back after the pass


def test_eager_capture_gives_the_fused_logits_hugging_face():
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=HW, patch_size=8, num_hidden_layers=2,
                                    num_attention_heads=2, hidden_size=8, intermediate_size=16,
                                    num_labels=3, attn_implementation="sdpa")
    net = transformers.ViTForImageClassification(config).eval()
    model, x = _loaded(net), _input()
    assert net.config._attn_implementation == "sdpa"
    with torch.no_grad():
        fused = model.logits(x)
    cap, maps = _maps(model, x)
    assert torch.allclose(cap.logits, fused, atol=1e-5)
    assert net.config._attn_implementation == "sdpa"
    assert cap.token_grid == (1, 2, 3)
    assert maps["legrad"].shape == (2, 3)


def test_eager_capture_gives_the_fused_logits_torchvision():
    net = _torchvision_vit()
    model, x = _loaded(net, (32, 32)), _input(2, (32, 32))
    with torch.no_grad():
        fused = model.logits(x)
    cap, _ = _maps(model, x)
    assert torch.allclose(cap.logits, fused, atol=1e-5)
    assert "forward" not in vars(net.encoder.layers[0].self_attention)  # replica removed


def test_register_and_distillation_tokens_are_found():
    assert find_attention(_timm_vit(reg_tokens=4)).prefix_tokens == 5
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=HW,
                             patch_size=8, depth=2, num_heads=2, embed_dim=8, num_classes=3)
    assert find_attention(deit).prefix_tokens == 2
    config = transformers.Dinov2WithRegistersConfig(
        image_size=16, patch_size=8, num_hidden_layers=2, num_attention_heads=2, hidden_size=8,
        mlp_ratio=2, num_register_tokens=2, num_labels=3)
    dino = transformers.Dinov2WithRegistersForImageClassification(config)
    assert find_attention(dino).prefix_tokens == 3
    config = transformers.DeiTConfig(image_size=16, patch_size=8, num_hidden_layers=2,
                                     num_attention_heads=2, hidden_size=8, intermediate_size=16,
                                     num_labels=3)
    assert find_attention(
        transformers.DeiTForImageClassificationWithTeacher(config)).prefix_tokens == 2
    # Each runs all three methods on a non-square input with its own prefix dropped.
    for net in (_timm_vit(reg_tokens=4), deit, dino):
        cap, maps = _maps(_loaded(net), _input())
        assert cap.token_grid[1:] == (2, 3)
        assert all(m.shape == (2, 3) and bool(torch.isfinite(m).all()) for m in maps.values())


def _swins() -> list[nn.Module]:
    torch.manual_seed(0)
    timm_swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32,
                                  window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 1),
                                  num_classes=3)
    hf_swin = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 1],
        window_size=4, num_labels=3))
    tv_swin = torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1],
                                                 num_heads=[2, 2], window_size=[4, 4],
                                                 num_classes=3)
    return [timm_swin, hf_swin, tv_swin]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_swin_is_refused_in_one_line_naming_the_cams(index):
    model = _loaded(_swins()[index], (32, 32))
    for method in METHODS:
        reason = registry().get(method).unavailable_reason(model)
        assert reason is not None and "\n" not in reason
        assert "Swin" in reason and CAM_METHODS_FOR_WINDOWS in reason
    with pytest.raises(ExplainerUnavailable, match="shifted windows"):
        core.plan(model, list(METHODS))


def test_a_cnn_is_refused_in_one_line():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    model = _loaded(net)
    reason = registry().get("rollout").unavailable_reason(model)
    assert reason is not None and "Sequential" in reason and "\n" not in reason
    with pytest.raises(ModelError):
        find_attention(net)


def test_one_capture_serves_every_attention_method():
    model = _loaded(_timm_vit())
    session, image = Session(device="cpu"), random_image(24)
    results = [session.explain(ExplainRequest(image, model, [m])) for m in METHODS]
    assert session.forward_passes == 1
    for method, result in zip(METHODS, results, strict=True):
        assert result.maps[(method, "input")].heatmap.shape == (24, 24)


@pytest.mark.usefixtures("no_network")
def test_a_hugging_face_folder_runs_every_attention_method(tmp_path):
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, num_hidden_layers=2, num_attention_heads=2, hidden_size=16,
        intermediate_size=32, id2label={0: "normal", 1: "nodule"},
        label2id={"normal": 0, "nodule": 1})
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    model = load_model(tmp_path / "vit")
    result = Session(device="cpu").explain(ExplainRequest(random_image(40), model, METHODS))
    assert not result.warnings
    for method in METHODS:
        assert result.maps[(method, "input")].raw.shape == (4, 4)
        assert result.maps[(method, "input")].heatmap.shape == (40, 40)
