"""ONNX files exported by the tests: a torchvision ResNet-18 and a graph onnx2torch cannot read.

Occlusion through Lucida's explain core on the ONNX model equals occlusion on the torch network
it was exported from, on both forward paths (converted torch and onnxruntime).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from models_fixtures import no_network  # noqa: F401 - a fixture
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from engine.core.errors import ExplainerUnavailable, ModelError
from engine.explain.api import INPUT_LAYER
from engine.explain.core import explain_one
from engine.metrics.sanity import cascading_randomisation
from engine.models.loaded import LoadedModel, load_model
from engine.models.onnx_model import OnnxRuntimeModule

SIZE = 64


def _export(net: nn.Module, path, channels: int = 3, size: int = SIZE, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(net, (torch.zeros(1, channels, size, size),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits"], **kw)
    return path


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3).eval()
    path = _export(net, tmp_path_factory.mktemp("onnx") / "resnet18.onnx",
                   dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return path, net


@pytest.fixture(scope="module")
def loaded(resnet):
    return load_model(resnet[0])


class _Upper(nn.Module):
    """The upper triangle of each map: exported as ONNX Trilu, which onnx2torch lacks."""

    def forward(self, x):
        return torch.triu(x)


@pytest.fixture(scope="module")
def unconvertible(tmp_path_factory):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), _Upper(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)).eval()
    path = _export(net, tmp_path_factory.mktemp("onnx") / "upper.onnx", channels=1,
                   size=32, opset_version=17, dynamic_axes={"input": {0: "N"}})
    return path, net


def _image(channels, size, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, channels, 4, 4), generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1


def _occlusion(model, x) -> np.ndarray:
    return explain_one(model, x, "occlusion", INPUT_LAYER, 1, {"patch": 16, "stride": 8})


def test_exported_resnet_loads_offline_and_runs_as_its_original(no_network, resnet):  # noqa: F811
    path, net = resnet
    model = load_model(path)
    assert model.kind == "onnx" and model.classes == ["class_0", "class_1", "class_2"]
    assert model.input.size == (SIZE, SIZE) and model.input.channels == 3
    assert model.layer_methods_reason is None
    assert not isinstance(model.module, OnnxRuntimeModule)  # the converted torch module
    assert list(model.files) == [str(path.resolve())]
    x = _image(3, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model.logits(torch.cat([x, -x])), net(torch.cat([x, -x])),
                                   rtol=1e-4, atol=1e-5)


def test_occlusion_on_the_onnx_model_equals_occlusion_on_its_torch_original(resnet, loaded):
    _path, net = resnet
    model = loaded
    original = LoadedModel.from_module(net, classes=model.classes, input=model.input)
    x = _image(3, SIZE, seed=3)
    ours, theirs = _occlusion(model, x), _occlusion(original, x)
    assert ours.shape == theirs.shape and np.abs(theirs).max() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())


def test_gradcam_on_the_converted_graph_equals_pytorch_grad_cam_on_the_original(resnet, loaded):
    _path, net = resnet
    model = loaded
    layer = "layer4/layer4/1/relu_1/Relu"  # the converted graph's name for layer4's output
    assert model.default_layer == layer
    x = _image(3, SIZE, seed=4)
    ours = explain_one(model, x, "gradcam", layer, 0)
    with GradCAM(net, [net.layer4]) as cam:
        theirs = cam(x, [ClassifierOutputTarget(0)])[0]
    up = F.interpolate(torch.from_numpy(ours)[None, None], size=(SIZE, SIZE), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    up = (up - up.min()) / (up.max() - up.min())
    assert float(np.corrcoef(up.ravel(), theirs.ravel())[0, 1]) >= 0.99


def test_a_graph_onnx2torch_cannot_convert_runs_with_onnxruntime(no_network, unconvertible):  # noqa: F811
    path, net = unconvertible
    model = load_model(path)
    assert isinstance(model.module, OnnxRuntimeModule)
    reason = model.layer_methods_reason
    assert "Trilu" in reason and "occlusion" in reason and "\n" not in reason
    x = _image(1, 32, seed=5)
    original = LoadedModel.from_module(net, classes=model.classes, input=model.input)
    ours, theirs = _occlusion(model, x), _occlusion(original, x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())
    with pytest.raises(ExplainerUnavailable, match="Trilu"):
        explain_one(model, x, "gradcam", "auto", 1)
    with pytest.raises(ExplainerUnavailable, match="Trilu"):
        explain_one(model, x, "saliency", INPUT_LAYER, 1)
    with pytest.raises(ModelError, match="cannot copy or randomise"):
        cascading_randomisation(model.module, lambda m: ours, ours, example=x)


def test_input_gradient_methods_are_refused_up_front_on_onnxruntime(unconvertible):
    from engine.explain.registry import registry

    model = load_model(unconvertible[0])
    reason = model.gradient_methods_reason
    assert reason == model.layer_methods_reason and "\n" not in reason
    reg = registry()
    gradient = [n for n in reg.names() if "input_gradients" in reg.get(n).needs]
    agnostic = [n for n in reg.names() if reg.get(n).needs == {"forward_fn"}]
    assert {"saliency", "intgrad", "smoothgrad", "inputxgrad"} <= set(gradient)
    for name in gradient:
        assert reason in reg.get(name).unavailable_reason(model), name
    assert {"occlusion", "rise", "lime", "kernelshap"} <= set(agnostic)
    assert all(reg.get(name).unavailable_reason(model) is None for name in agnostic)
    calls = []
    handle = model.module.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    try:
        with pytest.raises(ExplainerUnavailable) as err:
            explain_one(model, _image(1, 32), "intgrad", INPUT_LAYER, 1)
    finally:
        handle.remove()
    assert err.value.one_line().startswith(f"intgrad: {reason}")
    assert calls == []  # refused before the model ran once


def test_a_card_names_the_onnx_file(tmp_path, resnet):
    path, _net = resnet
    (tmp_path / "card.toml").write_text(
        f'name = "chest"\nmodel = "{path}"\nclasses = ["a", "b", "c"]\noutput = "sigmoid"\n'
        '[input]\nsize = [64, 64]\nchannels = 3\nmean = [0.5]\nstd = [0.25]\n')
    model = load_model(tmp_path / "card.toml")
    assert model.name == "chest" and model.classes == ["a", "b", "c"]
    assert model.output == "sigmoid" and model.input.mean == (0.5, 0.5, 0.5)
    assert str(tmp_path / "card.toml") in model.files
    (tmp_path / "card.toml").write_text(
        f'model = "{path}"\n[input]\nsize = [48, 48]\nchannels = 3\n')
    with pytest.raises(ModelError) as err:
        load_model(tmp_path / "card.toml")
    assert err.value.one_line().startswith(str(tmp_path / "card.toml"))
    assert "3 x 64 x 64" in err.value.one_line()


@pytest.mark.parametrize("what", ["vector", "five channels", "corrupt"])
def test_an_onnx_file_that_is_no_image_model_gives_one_line(tmp_path, what):
    path = tmp_path / "model.onnx"
    if what == "vector":
        _export_vector(path)
    elif what == "five channels":
        _export(nn.Sequential(nn.Conv2d(5, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(),
                path, channels=5, size=16)
    else:
        path.write_bytes(b"\x08\x07not an onnx model" * 8)
    with pytest.raises(ModelError) as err:
        load_model(path)
    line = err.value.one_line()
    assert line.startswith(str(path)) and "Fix:" in line and "\n" not in line
    assert ("not a readable ONNX" in line) == (what == "corrupt")
    if what != "corrupt":
        assert "not an image (N, C, H, W)" in line


def _export_vector(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Linear(10, 2).eval(), (torch.zeros(1, 10),), str(path),
                          dynamo=False)


def test_explain_on_the_command_line_writes_maps_named_after_converted_layers(
        tmp_path, resnet, capsys):
    from PIL import Image as PILImage

    from engine.cli import main as cli_main

    png = tmp_path / "chest.png"
    grey = (np.random.default_rng(0).random((80, 80)) * 255).astype(np.uint8)
    PILImage.fromarray(grey).save(png)
    code = cli_main(["explain", str(png), "--model", str(resnet[0]), "--method", "gradcam",
                     "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    (case,) = (tmp_path / "out").iterdir()
    heat = np.load(case / "heatmap_gradcam_layer4-layer4-1-relu_1-Relu.npy")
    assert heat.shape == (80, 80) and heat.max() > 0
