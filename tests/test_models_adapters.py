"""Output adapters, scores, targets and preprocessing from the card."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
from models_fixtures import ArrayImage, grey_spec, tiny_cnn
from torch import nn

from engine.core.errors import ModelError, UsageError
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec, placement


class _Wrap(nn.Module):
    """Wraps a CNN and returns its logits in a chosen container."""

    def __init__(self, how: str):
        super().__init__()
        self.net = tiny_cnn()
        self.how = how

    def forward(self, x):
        y = self.net(x)
        if self.how == "tuple":
            return y, torch.zeros(1)
        if self.how == "list":
            return [y]
        if self.how == "dict":
            return {"aux": torch.zeros(1), "logits": y}
        if self.how == "dict_key":
            return {"out": y}
        if self.how == "object":
            return namedtuple("Output", "loss logits")(None, y)
        return y


@pytest.mark.parametrize("how", ["tensor", "tuple", "list", "dict", "dict_key", "object"])
def test_each_output_adapter_returns_the_logits(how):
    module = _Wrap(how)
    model = LoadedModel.from_module(
        module, classes=["a", "b"], input=grey_spec(),
        output_key="out" if how == "dict_key" else None,
    )
    x = torch.randn(3, 1, 32, 32)
    assert torch.equal(model.logits(x), module.net.eval()(x))


def test_adapter_errors_name_what_came_back():
    model = LoadedModel.from_module(_Wrap("dict_key"), classes=["a", "b"], input=grey_spec())
    with pytest.raises(ModelError, match="keys: out"):
        model.logits(torch.randn(1, 1, 32, 32))
    wrong_k = LoadedModel.from_module(tiny_cnn(), classes=["a", "b", "c"], input=grey_spec())
    with pytest.raises(ModelError, match="2 outputs but its card lists 3"):
        wrong_k.logits(torch.randn(1, 1, 32, 32))


def test_softmax_sigmoid_and_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    soft = LoadedModel.from_module(tiny_cnn(num_classes=3), classes=["x", "y", "z"],
                                   input=grey_spec())
    multi = LoadedModel.from_module(tiny_cnn(num_classes=3), classes=["x", "y", "z"],
                                    input=grey_spec(), output="sigmoid")
    assert torch.allclose(soft.scores(logits).sum(), torch.tensor(1.0))
    assert torch.allclose(multi.scores(logits), torch.sigmoid(logits))
    scores = soft.scores(logits)[0]
    assert soft.resolve_target("top", scores) == 0
    assert soft.resolve_target("z", scores) == 2
    assert soft.resolve_target("1", scores) == 1 and soft.resolve_target(2, scores) == 2
    with pytest.raises(UsageError, match="x, y, z"):
        soft.resolve_target("nodule", scores)
    with pytest.raises(UsageError):
        soft.resolve_target(3, scores)


def _model(spec: InputSpec) -> LoadedModel:
    return LoadedModel.from_module(tiny_cnn(in_channels=spec.channels), classes=["a", "b"],
                                   input=spec)


def test_preprocess_resize_normalise_and_window():
    spec = InputSpec(size=(16, 24), channels=1, mean=(0.5,), std=(0.25,), window=(40.0, 400.0))
    img = ArrayImage(np.full((64, 48), 0.75, np.float32))
    x = _model(spec).preprocess(img)
    assert x.shape == (1, 1, 16, 24) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 1.0))  # (0.75 - 0.5) / 0.25
    assert img.windows == [(40.0, 400.0)]


def test_preprocess_channels_grey_to_rgb_and_back():
    grey = ArrayImage(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32))
    rgb_spec = InputSpec(size=(32, 32), channels=3, mean=(0.0,), std=(1.0,))
    x = _model(rgb_spec).preprocess(grey)
    assert x.shape == (1, 3, 32, 32)
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 0], x[0, 2])
    colour = np.zeros((32, 32, 3), np.float32)
    colour[..., 1] = 1.0
    y = _model(InputSpec(size=(32, 32), channels=1, mean=(0.0,), std=(1.0,))).preprocess(
        ArrayImage(colour)
    )
    assert y.shape == (1, 1, 32, 32) and torch.allclose(y, torch.full_like(y, 0.587))


def test_letterbox_pads_and_maps_back_to_the_image():
    spec = InputSpec(size=(32, 32), channels=1, mean=(0.0,), std=(1.0,), resize="letterbox")
    model = _model(spec)
    x = model.preprocess(ArrayImage(np.ones((20, 40), np.float32)))
    place = placement(model.input, (20, 40))
    assert (place.top, place.height, place.width) == (8, 16, 32)
    assert float(x[0, 0, :8].abs().max()) == 0.0 and float(x[0, 0, 8:24].min()) > 0.99
    heat = np.zeros((32, 32), np.float32)
    heat[8:24, 16:] = 1.0  # right half of the content area
    back = model.map_to_image(heat, (20, 40))
    assert back.shape == (20, 40)
    assert back[:, :18].max() < 0.05 and back[:, 22:].min() > 0.95


def test_resize_map_to_image_is_bilinear_and_shape_exact():
    model = _model(grey_spec(32))
    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    back = model.map_to_image(heat, (50, 70))
    assert back.shape == (50, 70) and back.dtype == np.float32
    assert back[0, 0] < back[-1, -1] and np.isfinite(back).all()


def test_bad_image_arrays_get_clear_errors():
    model = _model(grey_spec())
    with pytest.raises(ModelError, match="neither grey"):
        model.preprocess(ArrayImage(np.zeros((4, 4, 2), np.float32)))
