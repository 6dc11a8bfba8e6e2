"""The shipped 3-D demo model: its card, its accuracy, and where Grad-CAM points."""

from __future__ import annotations

import numpy as np

from engine.demo.volume_check import nodule_localisation
from engine.demo.volumes import VOLUME_CLASSES, in_memory_volume, volume_set
from engine.explain import core
from engine.models.loaded import load_model
from engine.models.volume_preprocess import VolumeSpec

#: Chests the model never saw: it trained on seed 4000 and was selected on 4001.
HELD_OUT_SEED = 4711


def test_the_card_declares_a_3d_grid_and_the_default_layer_is_spatial():
    model = load_model("demo-3d")
    assert isinstance(model.input, VolumeSpec) and model.is_volumetric
    assert model.input.spacing == (4.5, 4.5, 4.5) and model.input.orientation == "RAS"
    assert model.default_layer == "features.6"
    shapes = {info.name: info.shape for info in model.layers()}
    assert shapes["features"] == (32, 8, 16, 16) and shapes["features.6"] == (16, 16, 32, 32)


def test_demo_3d_tells_nodules_from_normal_chests_it_never_saw():
    model = load_model("demo-3d")
    right = 0
    chests = volume_set(16, HELD_OUT_SEED + 1)
    for chest, grid in chests:
        volume = in_memory_volume(chest.render(grid), grid)
        scores = core.predict(model, model.preprocess(volume))[0].numpy()
        right += VOLUME_CLASSES[int(np.argmax(scores))] == chest.label
    assert right / len(chests) >= 0.9


def test_gradcam_peaks_inside_the_nodule_box_in_at_least_80_percent_of_held_out_nodules():
    rows = nodule_localisation(load_model("demo-3d"), HELD_OUT_SEED, 24)
    assert len(rows) == 12
    hits = sum(r.hit for r in rows)
    assert hits / len(rows) >= 0.8, [(r.index, r.box, r.peak) for r in rows if not r.hit]
