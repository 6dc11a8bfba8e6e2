"""Three planes in patient space, with the overlay resampled alike, crosshairs, scroll and MIP."""

from __future__ import annotations

import numpy as np
import pytest
from volume_fixtures import index_ramp, memory_volume

from engine.core.errors import UsageError
from engine.studies.planes import (
    mip,
    peak_point,
    plane_through,
    scroll_step,
    three_planes,
)


def test_the_axial_plane_of_an_axial_series_is_its_slice():
    volume = memory_volume(index_ramp(), spacing=(2.5, 0.7, 0.7))
    point = volume.index_to_patient((3, 4, 5))
    view = plane_through(volume, "axial", point)
    np.testing.assert_allclose(view.image, volume.voxels[3], atol=1e-3)
    assert view.geometry.to_pixel(point) == pytest.approx((4.0, 5.0))


def test_anisotropic_voxels_keep_their_proportions_and_the_head_is_up():
    values = index_ramp()
    volume = memory_volume(values, spacing=(2.5, 0.7, 0.7))
    view = plane_through(volume, "coronal", volume.index_to_patient((2, 5, 0)))
    # 6 slices 2.5 mm apart span 12.5 mm: about 18 rows of 0.7 mm; 8 columns of 0.7 mm.
    assert view.geometry.shape[1] == 8 and view.geometry.shape[0] in (18, 19)
    # Head up: the top row is the highest slice, the rows below go down in z.
    top = volume.index_to_patient((5, 5, 0))
    assert view.geometry.to_patient(0, 0)[2] == pytest.approx(top[2], abs=0.7)
    row, _ = view.geometry.to_pixel(top)
    np.testing.assert_allclose(view.image[int(round(row))], values[5, 5], atol=100 * 0.7 / 2.5)
    row, _ = view.geometry.to_pixel(volume.index_to_patient((2, 5, 0)))
    np.testing.assert_allclose(view.image[int(round(row))], values[2, 5], atol=1e-3)
    sagittal = plane_through(volume, "sagittal", volume.index_to_patient((2, 0, 3)))
    # Screen right is posterior: row index j grows to the right.
    assert np.all(np.diff(sagittal.image[5]) > 0)


def test_a_volume_stored_upside_down_shows_the_same_planes():
    values = index_ramp()
    upright, flipped = memory_volume(values), memory_volume(values, flip_rows=True)
    point = upright.index_to_patient((2, 3, 4))
    for plane in ("axial", "coronal", "sagittal"):
        a = plane_through(upright, plane, point).image
        b = plane_through(flipped, plane, point).image
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_the_overlay_is_resampled_on_the_same_pixels_and_crosshairs_link():
    volume = memory_volume(np.zeros((8, 12, 10), np.float32), spacing=(3.0, 0.8, 0.8))
    heat = np.zeros(volume.shape, np.float32)
    heat[5, 7, 2] = 1.0
    point = peak_point(volume, heat)
    np.testing.assert_allclose(point, volume.index_to_patient((5, 7, 2)))
    views = three_planes(volume, point, heat)
    for view in views.values():
        row, col = view.geometry.to_pixel(point)
        assert view.overlay[int(round(row)), int(round(col))] == pytest.approx(1.0)
        assert view.overlay.max() == pytest.approx(1.0)
    # A click on the coronal view lands on a patient point the axial view finds again.
    coronal = views["coronal"].geometry
    clicked = coronal.to_patient(3.0, 6.0)
    assert coronal.depth(clicked) == pytest.approx(0.0)
    axial = plane_through(volume, "axial", clicked).geometry
    assert axial.to_pixel(clicked)[1] == pytest.approx(6.0)


def test_mip_takes_the_largest_value_along_the_normal():
    volume = memory_volume(np.zeros((6, 9, 7), np.float32), spacing=(2.0, 1.0, 1.0))
    heat = np.zeros(volume.shape, np.float32)
    heat[1, 2, 3], heat[4, 6, 5] = 0.5, 1.0
    projection, geometry = mip(heat, volume.affine, volume.shape, "axial")
    np.testing.assert_allclose(projection, heat.max(axis=0), atol=1e-6)
    coronal, _ = mip(heat, volume.affine, volume.shape, "coronal")
    assert coronal.max() == pytest.approx(1.0) and np.sort(coronal.ravel())[-2] >= 0.5
    assert geometry.plane == "axial"


def test_scroll_steps_one_voxel_along_the_normal_and_planes_are_named():
    volume = memory_volume(index_ramp(), spacing=(2.5, 0.7, 0.9))
    assert scroll_step(volume.affine, "axial") == pytest.approx(2.5)
    assert scroll_step(volume.affine, "coronal") == pytest.approx(0.7)
    assert scroll_step(volume.affine, "sagittal") == pytest.approx(0.9)
    with pytest.raises(UsageError, match="unknown plane"):
        scroll_step(volume.affine, "oblique")
