"""timm hub folders (``config.json`` naming an ``architecture``, and ``model.safetensors``), written
with timm's own ``save_for_hf`` and opened offline as ``--model FOLDER``; timm's own local-folder
loader (``local-dir:``) is the reference for the network, the classes and the preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from models_fixtures import no_network  # noqa: F401 - a fixture
from PIL import Image as PILImage
from timm.models import save_for_hf

from engine.core.errors import ModelError
from engine.models.loaded import load_model
from engine.models.preprocess import prepare_array

#: Preprocessing unlike timm's registry default for the architecture, so that it can only come
#: from the folder's pretrained_cfg.
DATA_CONFIG = {"input_size": (3, 48, 48), "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6),
               "crop_pct": 0.8, "interpolation": "bilinear"}
LABELS = ["effusion", "nodule", "normal"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    net = timm.create_model("test_convnext", pretrained=False, num_classes=3).eval()
    path = tmp_path_factory.mktemp("timm") / "chest-convnext"
    save_for_hf(net, str(path), model_config={"label_names": LABELS}, safe_serialization=True,
                data_config=DATA_CONFIG)
    return path


def test_a_timm_hub_folder_opens_offline_as_timm_reads_it(no_network, folder):  # noqa: F811
    model = load_model(folder)
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    assert model.classes == LABELS and model.output == "softmax" and model.kind == "module"
    assert set(model.files) == {str(folder / "config.json"), str(folder / "model.safetensors")}
    cfg = timm.data.resolve_model_data_config(reference)
    assert model.input.size == tuple(cfg["input_size"][1:]) == (48, 48)
    assert model.input.mean == pytest.approx(cfg["mean"])
    assert model.input.std == pytest.approx(cfg["std"])
    assert model.input.crop_pct == pytest.approx(cfg["crop_pct"])
    assert model.input.interpolation == cfg["interpolation"] == "bilinear"
    rng = np.random.default_rng(0)
    pil = PILImage.fromarray(rng.integers(0, 255, (70, 60, 3), dtype=np.uint8))
    theirs = timm.data.create_transform(**cfg)(pil)[None]
    ours = prepare_array(np.asarray(pil, np.float32) / 255.0, model.input)
    assert ours.shape == theirs.shape
    assert float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]) > 0.999
    with torch.no_grad():
        torch.testing.assert_close(model.logits(theirs), reference(theirs))


def test_a_timm_folder_without_weights_gives_one_line(tmp_path, folder):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ModelError) as err:
        load_model(bare)
    line = err.value.one_line()
    assert str(bare) in line and "save_for_hf" in line and "\n" not in line
