"""Model cards and every model file format: loading, hashes, trust and clear errors."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from models_fixtures import save_state, tiny_cnn, write_card

from engine.cli import main as cli_main
from engine.core.errors import ModelError, TrustRequired, UsageError
from engine.models.loaded import load_model

ROOT = Path(__file__).resolve().parents[1]

CARD = """
name = "tiny"
architecture = "{arch}"
weights = "{weights}"
classes = ["a", "b"]
output = "softmax"
{extra}
[input]
size = [32, 32]
channels = {channels}
mean = [0.5]
std = [0.25]
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _python_model_file(folder: Path) -> Path:
    path = folder / "net.py"
    path.write_text(
        "from torch import nn\n"
        "def build(num_classes=2):\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),\n"
        "        nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),\n"
        "        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))\n"
    )
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_card_with_python_architecture_and_each_weight_format(tmp_path, suffix):
    _python_model_file(tmp_path)
    net = tiny_cnn()
    weights = save_state(net, tmp_path / f"w{suffix}")
    card = write_card(
        tmp_path, CARD.format(arch="python:net.py:build", weights=weights.name, extra="",
                              channels=1)
    )
    with pytest.raises(TrustRequired, match="trust-model"):
        load_model(card)
    model = load_model(card, trust=True)
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(model.logits(x), net.eval()(x), atol=1e-6)
    assert model.files == {str(card.resolve()): _sha(card), str(weights.resolve()): _sha(weights)}
    assert model.sha256 == _sha(weights)
    assert model.describe()["classes"] == ["a", "b"]


def test_torchvision_card_and_bare_name(tmp_path):
    import torchvision

    net = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    weights = save_state(net, tmp_path / "mnv3.pth")
    card = write_card(
        tmp_path,
        CARD.format(arch="torchvision:mobilenet_v3_small", weights=weights.name, extra="",
                    channels=3)
        .replace('["a", "b"]', '["a", "b", "c"]'),
    )
    x = torch.randn(1, 3, 32, 32)
    from_card = load_model(card)
    assert torch.allclose(from_card.logits(x), net(x), atol=1e-5)
    bare = load_model(f"torchvision:mobilenet_v3_small@{weights}")
    assert bare.classes == ["class_0", "class_1", "class_2"]
    assert bare.input.size == (224, 224) and bare.input.channels == 3
    assert torch.allclose(bare.logits(x), net(x), atol=1e-5)
    with pytest.raises(UsageError, match="needs weights"):
        load_model("torchvision:resnet18")


def test_demo_models_load_and_are_small():
    for name in ("demo", "demo-biased"):
        model = load_model(name)
        assert model.classes == ["normal", "nodule"] and model.output == "softmax"
        weights = ROOT / "resources" / "models" / name / f"{name}.safetensors"
        assert weights.stat().st_size <= 2 * 1024 * 1024
        assert model.sha256 == _sha(weights)
        assert model.default_layer == "features"
        assert model.logits(torch.zeros(1, 1, 96, 96)).shape == (1, 2)


def test_torch_export_file(tmp_path):
    net = tiny_cnn().eval()
    program = torch.export.export(net, (torch.randn(1, 1, 40, 40),))
    path = tmp_path / "net.pt2"
    torch.export.save(program, path)
    with pytest.raises(TrustRequired, match="torch.export archive"):
        load_model(path)
    model = load_model(path, trust=True)
    assert model.kind == "export"
    assert model.input.size == (40, 40) and model.input.channels == 1
    x = torch.randn(1, 1, 40, 40)
    assert torch.allclose(model.logits(x), net(x), atol=1e-5)
    assert model.layer_methods_reason is None
    assert model.default_layer is not None
    assert model.layers()[-1].shape[1:] == (20, 20)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_predicts_but_explains_why_layers_are_unavailable(tmp_path):
    net = tiny_cnn(in_channels=3).eval()
    path = tmp_path / "net.ts"
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 3, 32, 32)), path)
    with pytest.raises(TrustRequired, match="TorchScript archive"):
        load_model(path)
    model = load_model(path, trust=True)
    assert model.kind == "torchscript"
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(model.logits(x), net(x), atol=1e-5)
    assert "TorchScript" in model.layer_methods_reason
    assert model.layers() == [] and model.default_layer is None


def test_trusted_pickle_loads(tmp_path):
    net = tiny_cnn(in_channels=3).eval()
    path = tmp_path / "full.pt"
    torch.save(net, path)
    with pytest.raises(TrustRequired):
        load_model(path)
    model = load_model(path, trust=True)
    assert model.kind == "pickle" and model.classes == ["class_0", "class_1"]


class _CreatesFile:
    """Unpickling this calls ``open(path, 'w')``: a stand-in for malicious code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_without_trust_exits_2_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned.txt"
    saved = tmp_path / "evil.pt"
    torch.save({"x": _CreatesFile(str(marker))}, saved)
    proc = subprocess.run(
        [sys.executable, "main.py", "layers", "--model", str(saved)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trust-model" in lines[0] and "evil.pt" in lines[0]
    assert not marker.exists()
    # A bare pickle (not torch.save's zip) through the same command, in-process.
    bare = tmp_path / "evil.pkl"
    bare.write_bytes(pickle.dumps(_CreatesFile(str(marker))))
    assert cli_main(["layers", "--model", str(bare)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-model" in err[0] and "evil.pkl" in err[0]
    assert not marker.exists()


def test_random_truncated_and_wrong_architecture_weights(tmp_path):
    good = save_state(tiny_cnn(), tmp_path / "good.safetensors")
    good_pt = save_state(tiny_cnn(), tmp_path / "good.pt")
    rand = torch.Generator().manual_seed(1)
    noise = bytes(torch.randint(0, 256, (4096,), generator=rand, dtype=torch.uint8).tolist())
    cases = {
        "random.safetensors": noise,
        "random.pt": noise,
        "cut.safetensors": good.read_bytes()[: good.stat().st_size // 2],
        "cut.pt": good_pt.read_bytes()[: good_pt.stat().st_size // 2],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        card = write_card(
            tmp_path, CARD.format(arch="lucida:demo_cnn", weights=name, extra="", channels=1),
            name=f"{name}.toml",
        )
        with pytest.raises(ModelError) as info:
            load_model(card)
        assert not isinstance(info.value, TrustRequired)
        assert name in info.value.one_line() and "corrupt or truncated" in info.value.one_line()
    wrong = write_card(
        tmp_path, CARD.format(arch="torchvision:resnet18", weights="good.safetensors", extra="",
                              channels=1),
        name="wrong.toml",
    )
    with pytest.raises(ModelError, match="do not fit torchvision:resnet18: .*missing"):
        load_model(wrong)
    classes = write_card(
        tmp_path,
        CARD.format(arch="python:net.py:build", weights="good.safetensors", extra="",
                    channels=1).replace('["a", "b"]', '["a", "b", "c"]'),
        name="classes.toml",
    )
    _python_model_file(tmp_path)
    with pytest.raises(ModelError, match="other shapes"):
        load_model(classes, trust=True)


def test_card_errors_are_one_line(tmp_path):
    bad = write_card(tmp_path, "name = [", name="bad.toml")
    with pytest.raises(ModelError, match="not valid TOML"):
        load_model(bad)
    save_state(tiny_cnn(), tmp_path / "w.safetensors")
    unknown = write_card(
        tmp_path, CARD.format(arch="torchvision:nosuchnet", weights="w.safetensors", extra="",
                              channels=1),
        name="unknown.toml",
    )
    with pytest.raises(ModelError, match="no model named 'nosuchnet'"):
        load_model(unknown)
    window = write_card(
        tmp_path,
        CARD.format(arch="lucida:demo_cnn", weights="w.safetensors", extra="", channels=1)
        + 'window = "soft"\n',
        name="window.toml",
    )
    with pytest.raises(ModelError, match="window"):
        load_model(window)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.toml")


def test_device_names():
    assert load_model("demo", device="auto").device.type in ("cpu", "cuda")
    with pytest.raises(UsageError, match="unknown device"):
        load_model("demo", device="nonsense")
