"""3-D model input: MONAI's orientation and spacing, crop/pad, windows, and the exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_fixtures import ArrayImage, grey_spec, save_state, tiny_cnn, write_card
from monai.data import MetaTensor
from monai.transforms import Orientation, ResizeWithPadOrCrop, Spacing
from torch import nn
from volume_fixtures import ramp, write_series

from engine.core.errors import ModelError, UsageError
from engine.demo.arch import DEMO_3D_ARCHITECTURE, build_demo_3d
from engine.models.card import read_card
from engine.models.loaded import LoadedModel
from engine.models.volume_preprocess import (
    VolumeSpec,
    crop_pad,
    maps_to_volume,
    model_grid,
    normalise_volume_spec,
    prepare_volume,
    resample,
)
from engine.studies.nifti import LPS_FROM_RAS
from engine.studies.volume import Volume, open_volume


def _spec(**kw) -> VolumeSpec:
    base = dict(size=(12, 20, 16), channels=1, mean=(0.0,), std=(1.0,), window=(0.0, 2000.0),
                spacing=(3.0, 1.5, 2.0), orientation="RAS")
    base.update(kw)
    return normalise_volume_spec(VolumeSpec(**base))


def _volume(shape=(17, 23, 19), affine=None, seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    if affine is None:
        affine = np.diag([0.8, 0.7, 2.5, 1.0])
        affine[:3, 3] = (-30.0, 12.0, 100.0)
    # Smooth values, so linear interpolation has something to interpolate.
    coarse = rng.normal(0, 300, (4, 5, 4)).astype(np.float32)
    values = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None, None], size=shape,
                                             mode="trilinear", align_corners=True)[0, 0]
    return Volume(path="mem", name="test volume", modality="CT", affine=affine, shape=shape,
                  voxels=values.numpy())


def _monai(volume: Volume, spec: VolumeSpec, crop: bool) -> np.ndarray:
    """MONAI's Orientation, Spacing (and ResizeWithPadOrCrop) on the same volume, (k, j, i)."""
    ras = LPS_FROM_RAS @ volume.affine
    data = torch.from_numpy(np.ascontiguousarray(np.transpose(volume.voxels, (2, 1, 0))))
    t = MetaTensor(data[None], affine=torch.as_tensor(ras))
    t = Orientation(axcodes=spec.orientation, labels=(("L", "R"), ("P", "A"), ("I", "S")))(t)
    t = Spacing(pixdim=tuple(reversed(spec.spacing)))(t)
    if crop:
        t = ResizeWithPadOrCrop(tuple(reversed(spec.size)))(t)
    return np.transpose(np.asarray(t[0]), (2, 1, 0))


def _oblique_flipped() -> np.ndarray:
    """An affine whose columns run P, L (mirrored), I: every axis permuted or flipped."""
    a = np.radians(7.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    axes = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]).T
    affine = np.eye(4)
    affine[:3, :3] = rot @ axes @ np.diag([0.9, 1.1, 3.0])
    affine[:3, 3] = (5.0, -8.0, 40.0)
    return affine


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "PIR"])
@pytest.mark.parametrize("oblique", [False, True])
def test_orientation_and_spacing_match_monai(orientation, oblique):
    volume = _volume(affine=_oblique_flipped() if oblique else None)
    spec = _spec(orientation=orientation)
    grid = model_grid(volume.affine, volume.shape, spec)
    ours = resample(volume.voxels, grid).numpy()
    theirs = _monai(volume, spec, crop=False)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=0.05)
    boxed = crop_pad(torch.from_numpy(ours), grid).numpy()
    np.testing.assert_allclose(boxed, _monai(volume, spec, crop=True), atol=0.05)


def test_the_model_affine_places_model_voxels_where_the_volume_has_them():
    volume = _volume(affine=_oblique_flipped())
    grid = model_grid(volume.affine, volume.shape, _spec())
    rng = np.random.default_rng(1)
    for dhw in rng.uniform(0, 10, (5, 3)):
        via_volume = volume.index_to_patient(grid.to_volume(dhw))
        direct = grid.affine[:3, :3] @ dhw[::-1] + grid.affine[:3, 3]
        np.testing.assert_allclose(via_volume, direct, atol=1e-9)
        np.testing.assert_allclose(grid.to_model(grid.to_volume(dhw)), dhw, atol=1e-9)


@pytest.mark.parametrize("oblique", [False, True])
def test_a_marked_voxel_round_trips_through_preprocessing_within_one_voxel(oblique):
    shape = (17, 23, 19)
    base = _volume(shape, affine=_oblique_flipped() if oblique else None)
    spec = _spec(window=(0.0, 2.0))
    grid = model_grid(base.affine, shape, spec)
    rng = np.random.default_rng(2)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    voxels = np.stack([k, j, i], axis=-1)
    checked = 0
    for mark in rng.integers((2, 2, 2), np.array(shape) - 2, (12, 3)):
        model_mark = grid.to_model(mark)
        if np.any(model_mark < 0) or np.any(model_mark > np.array(spec.size) - 1):
            continue  # cropped away: the model never sees it
        # Volume to model: the voxels within half a model voxel of the mark (a single voxel
        # can fall between the samples of a coarser grid, in MONAI's resampling too).
        near = np.all(np.abs(grid.to_model(voxels) - model_mark) <= 0.5, axis=-1)
        volume = Volume(path="mem", name="marked", modality="CT", affine=base.affine,
                        shape=shape, voxels=near.astype(np.float32))
        x, _ = prepare_volume(volume, spec)
        peak = np.array(np.unravel_index(int(x[0, 0].argmax()), spec.size))
        assert np.all(np.abs(peak - model_mark) <= 1.0), (peak, model_mark)
        # Model to volume: a map marking that model voxel comes back on the marked voxel.
        heat = torch.zeros((1, *spec.size))
        heat[(0, *peak)] = 1.0
        back = maps_to_volume(heat, grid, shape)[0].numpy()
        found = np.array(np.unravel_index(int(back.argmax()), shape))
        assert np.all(np.abs(found - grid.to_volume(peak)) <= 1.0), (found, peak)
        assert np.all(np.abs(grid.to_model(found) - model_mark) <= 1.5)
        checked += 1
    assert checked >= 6


def test_maps_outside_the_model_box_are_zero_and_coarse_maps_span_the_input():
    volume = _volume()
    spec = _spec(size=(4, 6, 6))  # a small box: most of the volume is cropped away
    grid = model_grid(volume.affine, volume.shape, spec)
    back = maps_to_volume(torch.ones(1, 2, 3, 3), grid, volume.shape)[0].numpy()
    inside = back > 0
    assert 0 < inside.sum() < inside.size
    model_idx = grid.to_model(np.argwhere(inside))
    assert np.all(model_idx >= -0.5) and np.all(model_idx <= np.array(spec.size) - 0.5)
    np.testing.assert_allclose(back[inside], 1.0)


def test_roi_crop_centres_the_box_on_the_roi():
    volume = _volume()
    spec = _spec(size=(4, 6, 6), crop="roi")
    roi = (2, 3, 1, 6, 7, 4)  # x0 y0 z0 x1 y1 z1: columns 2-5, rows 3-6, slices 1-3
    grid = model_grid(volume.affine, volume.shape, spec, roi)
    centre = grid.to_model(((1 + 3) / 2, (3 + 6) / 2, (2 + 5) / 2))
    assert np.all(np.abs(centre - (np.array(spec.size) - 1) / 2) <= 1.0)
    centred = model_grid(volume.affine, volume.shape, _spec(size=(4, 6, 6)))
    assert centred.offset != grid.offset


def test_windows_scale_hu_and_padding_is_the_floor():
    volume = _volume(shape=(6, 8, 8))
    x, grid = prepare_volume(volume, _spec(size=(12, 20, 16), window=(-100.0, 200.0),
                                           mean=(0.5,), std=(0.25,)))
    assert x.shape == (1, 1, 12, 20, 16)
    assert min(grid.start) < 0  # padded
    pixels = x * 0.25 + 0.5
    assert float(pixels.min()) == pytest.approx(0.0) and float(pixels.max()) <= 1.0
    assert float(pixels[0, 0, 0, 0, 0]) == 0.0  # a padded corner
    x_mm, _ = prepare_volume(volume, _spec(size=(4, 4, 4), window="minmax", channels=3))
    assert x_mm.shape == (1, 3, 4, 4, 4) and 0.0 <= float(x_mm.min()) <= float(x_mm.max()) <= 1


def test_a_card_with_a_3d_input_makes_a_volume_model(tmp_path):
    save_state(build_demo_3d(), tmp_path / "w.safetensors")
    card = write_card(tmp_path, f"""
name = "vol"
architecture = "{DEMO_3D_ARCHITECTURE}"
weights = "w.safetensors"
classes = ["normal", "nodule"]
[input]
size = [16, 32, 32]
spacing = [5.0, 4.0, 4.0]
orientation = "LPS"
channels = 1
mean = [0.5]
std = [0.25]
window = [-500, 1400]
""")
    spec = read_card(card).input
    assert isinstance(spec, VolumeSpec)
    assert (spec.size, spec.spacing, spec.orientation, spec.window) == (
        (16, 32, 32), (5.0, 4.0, 4.0), "LPS", (-500.0, 1400.0))
    for bad, message in (("spacing = [5.0, 4.0]", "spacing"),
                         ('orientation = "RRS"', "orientation"),
                         ('crop = "middle"', "crop")):
        text = card.read_text().replace("spacing = [5.0, 4.0, 4.0]", bad) if "spacing" in bad \
            else card.read_text().replace('orientation = "LPS"', bad) if "orient" in bad \
            else card.read_text() + bad + "\n"
        broken = write_card(tmp_path, text, name=f"bad_{message}.toml")
        with pytest.raises(ModelError, match=message):
            read_card(broken)


def test_a_3d_model_refuses_a_2d_image_and_a_2d_model_a_volume(tmp_path):
    volume_model = LoadedModel.from_module(
        nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                      nn.Linear(2, 2)), classes=["a", "b"], input=_spec(size=(4, 8, 8)))
    with pytest.raises(UsageError, match="reads volumes"):
        volume_model.preprocess(ArrayImage(np.zeros((8, 8))))
    flat_model = LoadedModel.from_module(tiny_cnn(), classes=["a", "b"], input=grey_spec())
    write_series(tmp_path / "s", ramp(3), [(0.0, 0.0, 2.0 * k) for k in range(3)])
    with pytest.raises(UsageError, match="slice by slice"):
        flat_model.preprocess(open_volume(tmp_path / "s"))
