"""Architecture builders get only the arguments they take; one device resolver for everything."""

from __future__ import annotations

import pytest
import torch
from models_fixtures import save_state
from torch import nn

import engine.models.loaded as loaded
from engine.core.device import resolve_device
from engine.core.errors import ModelError, UsageError
from engine.explain import session
from engine.models.loaded import load_model

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
