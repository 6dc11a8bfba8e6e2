"""The whole-batch map work agrees with the single-map functions it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from engine.audit.batchmaps import batch_shares, small_maps
from engine.audit.measures import region_shares
from engine.models.loaded import InputSpec
from engine.models.preprocess import map_to_image, maps_to_image
from engine.studies import raster
from engine.studies.image import open_image

BOXES = [
    {"marker": (30, 2, 41, 13), "lesion": (5.5, 10.2, 20, 25.9)},
    {"marker": (-4, -3, 6, 5)},  # partly outside the image
    {"lesion": (40, 40, 90, 90)},
    {"marker": (50, 50, 60, 60)},  # wholly outside: no mass
    {},
]
ROLES = ["marker", "lesion", "mask"]


def _maps(n=5, shape=(44, 48), seed=0):
    rng = np.random.default_rng(seed)
    heat = rng.normal(size=(n, *shape)).astype(np.float32)  # negatives must carry no mass
    heat[0, 3, 4] = np.nan
    heat[4] = -1.0  # no positive mass at all
    return heat


def test_batch_shares_equal_region_shares_per_image():
    heat = _maps()
    mask = np.zeros(heat.shape[1:], bool)
    mask[20:30, 5:40] = True
    masks = [{}, {"mask": mask}, {}, {"mask": mask}, {"mask": mask}]
    got = batch_shares(torch.from_numpy(heat), BOXES, masks, ROLES, "border")
    for i in range(len(heat)):
        want = region_shares(heat[i], BOXES[i], masks[i], border="border")
        for role in [*ROLES, "border"]:
            expected = want.get(role)
            if expected is None or not np.isfinite(expected):
                assert got[i][role] is None, (i, role)
            else:
                assert got[i][role] == pytest.approx(expected, abs=1e-9), (i, role)
    assert got[3]["marker"] == 0.0
    assert all(v is None for v in got[4].values())


@pytest.mark.parametrize("resize", ["resize", "letterbox"])
def test_batch_maps_to_image_equal_single_maps(resize):
    spec = InputSpec(size=(32, 32), channels=1, mean=(0.5,), std=(0.25,), resize=resize)
    raw = torch.rand(3, 8, 8)
    got = maps_to_image(raw, spec, (40, 64))
    assert got.shape == (3, 40, 64)
    for i in range(3):
        np.testing.assert_allclose(got[i].numpy(), map_to_image(raw[i].numpy(), spec, (40, 64)),
                                   atol=1e-6)


def test_small_maps_have_peak_one_and_ignore_nan():
    heat = torch.from_numpy(np.abs(_maps()[:4]))
    small = small_maps(heat, 16)
    assert small.shape == (4, 16, 16)
    assert torch.isfinite(small).all()
    np.testing.assert_allclose(small.flatten(1).amax(1).numpy(), 1.0, rtol=1e-6)
    for size in (16, 64):  # down- and upsampling windows both match adaptive pooling
        pooled = torch.nn.functional.adaptive_avg_pool2d(torch.nan_to_num(heat)[:, None],
                                                         size)[:, 0]
        pooled = pooled / pooled.flatten(1).amax(1)[:, None, None]
        np.testing.assert_allclose(small_maps(heat, size).numpy(), pooled.numpy(), atol=1e-5)


def test_open_image_with_decode_reads_a_raster_once_and_gives_the_same_pixels(tmp_path,
                                                                               monkeypatch):
    path = tmp_path / "grey.png"
    pixels = (np.arange(30 * 20).reshape(30, 20) % 251).astype(np.uint8)
    PILImage.fromarray(pixels).save(path)
    opened = []
    original = raster._open

    def counting(p):
        opened.append(p)
        return original(p)

    monkeypatch.setattr(raster, "_open", counting)
    eager = open_image(path, decode=True)
    eager_input = eager.model_input(window="minmax")
    assert len(opened) == 1
    lazy = open_image(path)
    np.testing.assert_array_equal(eager_input, lazy.model_input(window="minmax"))
    np.testing.assert_array_equal(eager.modality_frame(), pixels.astype(np.float32))
    assert len(opened) == 3  # the lazy image opens once for its header and once to decode
