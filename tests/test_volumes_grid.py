"""The viewer's patient grid: planes as array slices, in patient space, whatever the storage."""

from __future__ import annotations

import numpy as np
import pytest
from volume_fixtures import index_ramp, memory_volume

from engine.core.errors import UsageError
from engine.studies.planes import mip, patient_grid, resample_plane


def test_the_grid_covers_the_volume_on_cubes_of_its_finest_spacing():
    volume = memory_volume(index_ramp((6, 10, 8)), spacing=(2.5, 0.7, 0.5))
    grid = patient_grid(volume.affine, volume.shape)
    assert grid.pixel_mm == pytest.approx(0.5)
    # 12.5 mm of slices, 6.3 mm of rows and 3.5 mm of columns, on 0.5 mm cubes.
    assert grid.shape == (26, 13, 8)
    assert np.allclose(grid.point((0, 0, 0)), (-20.0, -30.0, 112.5))


def test_a_coronal_slice_of_the_grid_is_the_coronal_plane_sampled_directly():
    volume = memory_volume(index_ramp(), spacing=(2.5, 0.7, 0.7), flip_rows=True)
    grid = patient_grid(volume.affine, volume.shape)
    values = grid.sample(volume.voxels, volume.affine, fill=-1.0)
    index = (3, 5, 2)
    direct = resample_plane(volume.voxels, volume.affine, grid.geometry("coronal", index), -1.0)
    assert np.allclose(grid.plane(values, "coronal", index), direct, atol=1e-3)
    sagittal = resample_plane(volume.voxels, volume.affine, grid.geometry("sagittal", index), -1)
    assert np.allclose(grid.plane(values, "sagittal", index), sagittal, atol=1e-3)


def test_a_marked_voxel_lands_where_it_is_in_patient_space_in_all_three_planes():
    values = np.zeros((6, 10, 8), np.float32)
    values[2, 7, 3] = 1000.0
    volume = memory_volume(values, spacing=(2.1, 0.7, 0.7), flip_rows=True)
    grid = patient_grid(volume.affine, volume.shape)
    sampled = grid.sample(volume.voxels, volume.affine)
    # Rows were stored anterior-first, so the mark's patient position is not its row index.
    point = volume.index_to_patient((2, 2, 3))
    index = grid.index(point)
    for plane in ("axial", "coronal", "sagittal"):
        view = grid.plane(sampled, plane, index)
        row, col = grid.geometry(plane, index).to_pixel(point)
        assert np.unravel_index(int(np.argmax(view)), view.shape) == (round(row), round(col))


def test_the_grid_projection_matches_the_patient_space_mip():
    volume = memory_volume(index_ramp(), spacing=(2.8, 0.7, 0.7))
    grid = patient_grid(volume.affine, volume.shape)
    sampled = grid.sample(volume.voxels, volume.affine)
    for plane in ("axial", "coronal", "sagittal"):
        reference, _geometry = mip(volume.voxels, volume.affine, volume.shape, plane)
        ours = grid.projection(sampled, plane)
        assert ours.shape == reference.shape
        assert np.allclose(ours, reference, atol=1e-3)


def test_a_large_volume_is_shown_on_coarser_voxels_within_the_budget():
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    grid = patient_grid(affine, (400, 512, 512), max_voxels=1_000_000)
    assert np.prod(grid.shape) <= 1_000_000
    assert grid.pixel_mm > 0.7


def test_an_unknown_plane_is_refused():
    grid = patient_grid(np.eye(4), (2, 3, 4))
    with pytest.raises(UsageError):
        grid.plane(np.zeros(grid.shape), "oblique", (0, 0, 0))


def test_a_point_outside_the_volume_is_clipped_onto_its_last_plane():
    volume = memory_volume(index_ramp(), spacing=(2.5, 0.7, 0.7))
    grid = patient_grid(volume.affine, volume.shape)
    inside = grid.point((2, 3, 4))
    far = inside + np.array([0.0, 0.0, 500.0])  # far above the head
    clipped = grid.clip(far)
    assert np.allclose(clipped, grid.point((0, 3, 4)))
    assert np.allclose(grid.clip(inside), inside)
