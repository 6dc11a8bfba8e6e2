"""The explanation session: cache, progress, partial results, cancel, supersede, bad maps."""

from __future__ import annotations

import gc
import threading

import numpy as np
import psutil
import pytest
import torch
from torch import nn

from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import UsageError
from engine.demo.arch import build_demo_cnn
from engine.explain.api import Explainer
from engine.explain.registry import Registry
from engine.explain.session import ExplainRequest, Session, resolve_device
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from tests.explain_fixtures import ArrayImage, random_image


def _model(size=48):
    torch.manual_seed(0)
    spec = InputSpec(size=(size, size), channels=1, mean=(0.5,), std=(0.25,))
    return LoadedModel.from_module(build_demo_cnn(), classes=["normal", "nodule"], input=spec,
                                   name="demo-arch")


def _image(seed=0, size=64, path=None):
    grey = random_image(size, seed=seed).pixels.mean(axis=2)
    return ArrayImage(grey, path=path or f"case{seed}.png")


def _hooks(module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in module.modules())


def test_switching_method_or_layer_reuses_one_capture():
    model, image = _model(), _image()
    session = Session(device="cpu")
    first = session.explain(ExplainRequest(image, model, ["gradcam"], layers="features"))
    assert session.forward_passes == 1 and first.timings_ms["forward"] > 0
    for method in ("gradcampp", "xgradcam", "layercam", "hirescam", "cam", "eigencam"):
        result = session.explain(ExplainRequest(image, model, [method], layers="features"))
        assert result.timings_ms["forward"] == 0.0
    assert session.forward_passes == 1
    session.explain(ExplainRequest(image, model, ["gradcam"], layers="features.4"))
    assert session.forward_passes == 2  # a new layer needs one more pass, holding both
    both = session.explain(ExplainRequest(image, model, ["gradcam"], layers="features,features.4"))
    assert session.forward_passes == 2 and len(both.maps) == 2
    session.explain(ExplainRequest(image, model, ["gradcam"], layers="features", target=1))
    assert session.forward_passes == 3  # a new target is a new capture
    result = both.maps[("gradcam", "features")]
    assert result.heatmap.shape == image.shape and result.heatmap.dtype == np.float32
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() == pytest.approx(1.0, abs=1e-5)


def test_progress_and_partial_results_arrive_in_order():
    model, image = _model(), _image()
    reports, partial = [], []
    result = Session(device="cpu").explain(
        ExplainRequest(image, model, ["gradcam", "scorecam"], layers="all"),
        progress=lambda f, m: reports.append(f),
        on_partial=partial.append,
    )
    assert reports == sorted(reports) and reports[-1] == pytest.approx(1.0)
    assert [(p.method, p.layer) for p in partial] == list(result.maps)
    assert len(result.maps) == 2 * len(model.layers())


def test_cancel_stops_within_one_batch():
    model, image = _model(), _image()
    token = CancelToken()
    batches = []

    def progress(fraction, message):
        if message.startswith("Score-CAM"):
            batches.append(fraction)
            token.cancel()

    with pytest.raises(Cancelled):
        Session(device="cpu").explain(
            ExplainRequest(image, model, ["scorecam"], layers="features",
                           params={"scorecam": {"batch_size": 4}}),
            progress=progress, cancel=token,
        )
    assert len(batches) == 1  # 64 channels in batches of 4: it stopped after the first


def test_a_new_request_supersedes_the_stale_one():
    model, image = _model(), _image()
    session = Session(device="cpu")
    started, outcome = threading.Event(), {}

    def slow():
        try:
            session.explain(
                ExplainRequest(image, model, ["scorecam"], layers="all",
                               params={"scorecam": {"batch_size": 1}}),
                progress=lambda f, m: started.set() if m.startswith("Score-CAM") else None,
            )
            outcome["slow"] = "finished"
        except Cancelled:
            outcome["slow"] = "cancelled"

    worker = threading.Thread(target=slow)
    worker.start()
    assert started.wait(60)
    fresh = session.explain(ExplainRequest(image, model, ["gradcam"], layers="features"))
    worker.join(60)
    assert outcome["slow"] == "cancelled"
    assert ("gradcam", "features") in fresh.maps


class _Broken(Explainer):
    name, title, description, citation = "broken", "Broken", "test", "-"
    needs = frozenset({"activations"})

    def __init__(self, value, label):
        self.value = value
        self.name = f"broken{label}"

    def explain(self, capture, target, layers, params, progress, cancel):
        return {layer: torch.full((1, 4, 4), self.value) for layer in layers}


def test_nan_inf_and_all_zero_maps_come_back_with_warnings(monkeypatch):
    reg = Registry()
    reg.load_builtins()
    for value, label in ((float("nan"), "nan"), (float("inf"), "inf"), (0.0, "zero")):
        reg.add(_Broken(value, label), "test")
    monkeypatch.setattr("engine.explain.core.registry", lambda: reg)
    model, image = _model(), _image()
    names = ["brokennan", "brokeninf", "brokenzero", "gradcam"]
    result = Session(device="cpu").explain(ExplainRequest(image, model, names, "features"))
    for name in names[:3]:
        m = result.maps[(name, "features")]
        assert m.warning and np.isfinite(m.heatmap).all() and m.heatmap.max() == 0.0
    assert "NaN or infinite" in result.maps[("brokennan", "features")].warning
    assert "all zero" in result.maps[("brokenzero", "features")].warning
    assert result.maps[("gradcam", "features")].warning is None
    assert len(result.warnings) == 3


def test_hooks_are_removed_and_memory_stays_flat():
    model = _model()
    session = Session(device="cpu", cache_size=2)
    process = psutil.Process()
    rss = []
    for i in range(30):
        image = _image(seed=i % 10, path=f"memory{i}.png")
        session.explain(ExplainRequest(image, model, ["gradcam", "layercam"],
                                       layers="features,features.4"))
        if i in (9, 29):
            gc.collect()
            rss.append(process.memory_info().rss)
    with pytest.raises(UsageError, match="no-such-class"):  # a failure mid-request unhooks
        session.explain(ExplainRequest(_image(), model, ["gradcam"], target="no-such-class"))
    assert _hooks(model.module) == 0
    assert len(session._captures) == 2
    assert all(p.grad is None for p in model.module.parameters())  # no parameter gradients
    assert rss[1] - rss[0] < 30 * 2**20


def test_device_auto_prefers_accelerators_and_checks_names():
    auto = resolve_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif not torch.backends.mps.is_available():
        assert auto.type == "cpu"
    assert resolve_device("cpu").type == "cpu"
    from engine.core.errors import UsageError

    with pytest.raises(UsageError):
        resolve_device("quantum")


class _TinyViT(nn.Module):
    """Patch embedding, a class token and two transformer blocks: token-shaped layers."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(1, 16, 8, stride=8)
        self.cls = nn.Parameter(torch.randn(1, 1, 16))
        self.blocks = nn.Sequential(*[
            nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            for _ in range(2)
        ])
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], 1)
        return self.head(self.blocks(tokens)[:, 0])


def test_token_layers_become_maps_on_the_patch_grid():
    torch.manual_seed(0)
    spec = InputSpec(size=(32, 32), channels=1, mean=(0.5,), std=(0.25,))
    model = LoadedModel.from_module(_TinyViT(), classes=list("abc"), input=spec)
    result = Session(device="cpu").explain(
        ExplainRequest(_image(), model, ["gradcam", "hirescam", "eigencam"], "blocks.0")
    )
    for key in (("gradcam", "blocks.0"), ("hirescam", "blocks.0"), ("eigencam", "blocks.0")):
        m = result.maps[key]
        assert m.raw.shape == (4, 4) and m.warning is None and m.heatmap.shape == (64, 64)
    assert _hooks(model.module) == 0
