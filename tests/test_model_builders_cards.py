"""Model cards: builders get only the arguments they take, one device resolver, one card writer.

The card writer is checked by reading back what it wrote (special characters, Windows paths),
by refusing to replace a card unasked, by the demo cards it writes byte for byte as shipped, and
through the GUI's card dialog, driven by its own Save button."""

from __future__ import annotations

import argparse
import importlib
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
import torch
from models_fixtures import save_state
from torch import nn

import engine.models.loaded as loaded
from engine.core.device import resolve_device
from engine.core.errors import ModelError, UsageError
from engine.explain import session
from engine.models.card import read_card
from engine.models.card_writer import CardExists, card_toml, write_card
from engine.models.loaded import load_model

ROOT = Path(__file__).resolve().parents[1]

CARD = """name = "flat"
architecture = "python:net.py:build"
weights = "w.safetensors"
classes = ["x", "y", "z"]
{extra}
[input]
size = [4, 4]
channels = 1
mean = [0.5]
std = [0.25]
"""


def _flat_net(k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, k))


def _python_card(folder, builder: str, extra: str = ""):
    (folder / "net.py").write_text("from torch import nn\n" + builder)
    save_state(_flat_net(), folder / "w.safetensors")
    card = folder / "card.toml"
    card.write_text(CARD.format(extra=extra), encoding="utf-8")
    return card


def test_a_python_builder_without_num_classes_loads_with_the_cards_classes(tmp_path):
    card = _python_card(tmp_path, "def build():\n"
                                  "    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))\n")
    model = load_model(card, trust=True)
    assert model.classes == ["x", "y", "z"]
    assert model.logits(torch.zeros(1, 1, 4, 4)).shape == (1, 3)


def test_a_builder_taking_keywords_still_gets_the_number_of_classes(tmp_path):
    card = _python_card(tmp_path, "def build(**kw):\n"
                                  "    assert kw == {'num_classes': 3}, kw\n"
                                  "    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))\n")
    assert load_model(card, trust=True).classes == ["x", "y", "z"]


def test_architecture_args_the_builder_lacks_are_one_line(tmp_path):
    card = _python_card(tmp_path, "def build():\n    return nn.Flatten()\n",
                        extra="[architecture_args]\ndepth = 2\n")
    with pytest.raises(ModelError, match="net.py:build failed to build") as err:
        load_model(card, trust=True)
    assert "\n" not in err.value.one_line()


def test_a_torchvision_card_cannot_ask_for_downloaded_weights(tmp_path):
    save_state(_flat_net(), tmp_path / "w.safetensors")
    card = tmp_path / "card.toml"
    card.write_text(CARD.format(extra='[architecture_args]\nweights = "DEFAULT"\n')
                    .replace("python:net.py:build", "torchvision:resnet18"), encoding="utf-8")
    with pytest.raises(ModelError, match="cannot build torchvision:resnet18"):
        load_model(card)


def test_models_and_sessions_resolve_devices_with_one_function():
    assert session.resolve_device is resolve_device
    assert loaded.resolve_device is resolve_device
    assert load_model("demo", device="auto").device == resolve_device("auto")


def test_an_unavailable_device_is_one_line_from_every_entry_point():
    mps = getattr(torch.backends, "mps", None)
    missing = ["cuda:99"]
    if not torch.cuda.is_available():
        missing.append("cuda")
    if mps is None or not mps.is_available():
        missing.append("mps")
    for name in missing:
        with pytest.raises(UsageError) as direct:
            resolve_device(name)
        with pytest.raises(UsageError) as via_model:
            load_model("demo", device=name)
        line = via_model.value.one_line()
        assert line == direct.value.one_line()
        assert line == f"device {name!r} is not available here. Fix: use --device auto or cpu"


#: Characters a hand-made TOML string gets wrong: quotes, backslashes, control characters, a
#: character outside the Basic Multilingual Plane (JSON escapes it as a surrogate pair, which
#: TOML refuses) and a Windows path.
AWKWARD = 'say "hi" \\ \t tab, \u00f6dem, lungs \U0001fac1, C:\\Models\\chest net\\w.pt'


def _full_card() -> dict:
    return {
        "name": AWKWARD,
        "description": "line one\nline two",
        "architecture": "python:nets\\build.py:build",
        "weights": "w.safetensors",
        "classes": ["normal", 'with "quotes"', "\u00f6dem"],
        "output": "sigmoid",
        "architecture_args": {"depth": 3, "dropout": 0.25, "pretrained": False},
        "input": {"size": [32, 48], "channels": 1, "mean": [0.5], "std": [0.25],
                  "window": [40.0, 400.0], "resize": "letterbox"},
        "layers": {"default": "features.3"},
        "intended_use": {"modalities": ["CR"], "body_parts": ["CHEST"],
                         "input_stats": {"mean": Decimal("0.3000"), "std": 0.1, "max_z": 4.0}},
        "training": {"odd key": "kept", "\u00fcber": 1, "accuracy": Decimal("1.0000")},
    }


def _as_read(value):
    """What tomllib returns for a written value: Decimals come back as floats."""
    if isinstance(value, dict):
        return {k: _as_read(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_read(v) for v in value]
    return float(value) if isinstance(value, Decimal) else value


def test_a_written_card_reads_back_as_given(tmp_path):
    path = tmp_path / "sub" / "card.toml"
    written = write_card(path, _full_card(), header="Made by hand\nfor the test",
                         comments={"layers.default": "why this layer", "training": "how"})
    text = path.read_text(encoding="utf-8")
    assert tomllib.loads(text) == _as_read(_full_card())
    assert written == read_card(path)
    assert written.name == AWKWARD and written.classes[1] == 'with "quotes"'
    assert written.input.size == (32, 48) and written.input.window == (40.0, 400.0)
    assert text.startswith("# Made by hand\n# for the test\nname = ")
    assert "\n# why this layer\ndefault = " in text and "\n\n# how\n[training]\n" in text
    assert "mean = 0.3000\n" in text and "accuracy = 1.0000\n" in text
    assert '"odd key" = "kept"' in text
    assert [p.name for p in path.parent.iterdir()] == ["card.toml"]  # no temporary left


def test_an_existing_card_is_replaced_only_when_asked(tmp_path):
    path = tmp_path / "card.toml"
    write_card(path, _full_card())
    before = path.read_bytes()
    with pytest.raises(CardExists) as refused:
        write_card(path, {**_full_card(), "name": "other"})
    assert path.read_bytes() == before
    line = refused.value.one_line()
    assert line.startswith(f"{path}: a model card is already there") and "overwrite" in line
    assert write_card(path, {**_full_card(), "name": "other"}, overwrite=True).name == "other"


def test_an_invalid_card_or_value_is_not_written(tmp_path):
    path = tmp_path / "card.toml"
    with pytest.raises(ModelError, match="names an architecture but no weights"):
        write_card(path, {"name": "x", "architecture": "lucida:demo_cnn"})
    with pytest.raises(TypeError, match="cannot hold"):
        write_card(path, {**_full_card(), "classes": [{"a": 1}]})
    with pytest.raises(ValueError, match="layers.defualt"):
        card_toml(_full_card(), comments={"layers.defualt": "typo"})
    assert not path.exists()


@pytest.mark.parametrize("name", ["demo", "demo-biased", "demo-seg", "demo-3d"])
def test_the_demo_scripts_write_the_shipped_cards_byte_for_byte(name, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    shipped = ROOT / "resources" / "models" / name / "card.toml"
    data = tomllib.loads(shipped.read_text(encoding="utf-8"))
    training, stats = data["training"], data["intended_use"]["input_stats"]
    measured = {"input_stats": (stats["mean"], stats["std"]), "epoch": training["selected_epoch"]}
    if name == "demo-seg":
        script = importlib.import_module("tools.train_demo_seg")
        iou = [float(part.split(" = ")[1]) for part in training["validation_iou"].split(", ")]
        script.write_demo_card(tmp_path, {**measured, "iou": iou}, argparse.Namespace(
            n_train=training["train_images"], epochs=training["epochs"]))
    elif name == "demo-3d":
        script = importlib.import_module("tools.train_demo_3d")
        script.write_demo_card(tmp_path, {**measured, "accuracy": training["validation_accuracy"]},
                               argparse.Namespace(n_train=training["train_volumes"],
                                                  epochs=training["epochs"]))
    else:
        script = importlib.import_module("tools.train_demo_models")
        script.write_demo_card(tmp_path, name, {
            **measured, "epochs": training["epochs"],
            "val_accuracy": training["validation_accuracy"]},
            argparse.Namespace(n_train=training["train_images"]))
    assert (tmp_path / "card.toml").read_bytes() == shipped.read_bytes()


def test_the_card_dialog_saves_through_the_card_writer(qtbot, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialogButtonBox

    from gui.card_dialog import QtCardDialog, card_fields

    model_file = tmp_path / "net.pt"
    torch.save(_flat_net(), model_file)
    card = tmp_path / "net.card.toml"
    card.write_text('name = "kept"\nmodel = "net.pt"\n', encoding="utf-8")
    dialog = QtCardDialog(None, None, str(model_file))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.name.setText('chest "net" \U0001fac1')  # QTest types ASCII only
    for field, text in ((dialog.classes, "calm, busy"), (dialog.mean, "0.5"),
                        (dialog.std, "0.25")):
        field.clear()
        qtbot.keyClicks(field, text)
    dialog.channels.setCurrentText("1")
    save = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save)

    qtbot.mouseClick(save, Qt.MouseButton.LeftButton)  # an existing card is not replaced unasked
    assert card.read_text(encoding="utf-8") == 'name = "kept"\nmodel = "net.pt"\n'
    assert dialog.status.text() == ("net.card.toml already exists. Fix: press Save again to "
                                    "replace it, or Cancel to keep it")
    with qtbot.waitSignal(dialog.sig_card_saved) as saved:
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
    assert saved.args == [str(card)]
    fields = card_fields(model_file, 'chest "net" \U0001fac1', ["calm", "busy"], "softmax",
                         (224, 224), 1, [0.5], [0.25], "default")
    assert card.read_text(encoding="utf-8") == card_toml(fields)
    read = read_card(card)
    assert read.name == 'chest "net" \U0001fac1' and read.classes == ["calm", "busy"]
    assert read.model == model_file and read.input.mean == (0.5,)
