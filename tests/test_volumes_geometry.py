"""Series become volumes: sorting, per-slice rescale, affine conventions, and bad geometry."""

from __future__ import annotations

import csv
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from volume_fixtures import axial_positions, ramp, write_enhanced, write_series

from engine.core.errors import StudyError, UsageError
from engine.demo.volumes import write_volume_set
from engine.studies.nifti import LPS_FROM_RAS, open_nifti, write_nifti
from engine.studies.tree import open_paths
from engine.studies.volume import GeometryError, open_volume

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
    from nibabel.nicom.dicomwrappers import wrapper_from_data


def _along(volume) -> np.ndarray:
    return np.asarray([np.dot(volume.index_to_patient((k, 0, 0)), volume.normal)
                       for k in range(volume.shape[0])])


def test_a_shuffled_demo_series_comes_back_sorted_along_the_normal(tmp_path):
    manifest = write_volume_set(tmp_path, 1, seed=3, size=32, slices=12)
    row = next(csv.DictReader(open(manifest)))
    volume = open_volume(tmp_path / row["series"])
    files = sorted((tmp_path / row["series"]).glob("*.dcm"))
    z_by_name = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files]
    assert z_by_name != sorted(z_by_name), "the demo must write files out of slice order"
    assert volume.shape == (12, 32, 32)
    steps = np.diff(_along(volume))
    np.testing.assert_allclose(steps, 2.5, atol=1e-3)
    # Each slice's SOP Instance UID is the one of the file at that position.
    by_uid = {str(pydicom.dcmread(f).SOPInstanceUID): float(pydicom.dcmread(f)
              .ImagePositionPatient[2]) for f in files}
    zs = [by_uid[uid] for uid in volume.sop_uids]
    assert zs == sorted(zs)
    # The NIfTI twin holds the same voxels on the same grid.
    twin = open_nifti(tmp_path / row["nifti"])
    np.testing.assert_array_equal(twin.voxels, volume.voxels)
    np.testing.assert_allclose(twin.affine, volume.affine, atol=1e-3)


def test_voxels_are_hu_with_each_slice_rescaled_by_its_own_slope_and_intercept(tmp_path):
    hu = ramp(5)
    rescales = [(1.0, -1024.0), (0.5, -1000.0), (2.0, -2048.0), (1.0, 0.0), (0.25, -600.0)]
    order = [3, 0, 4, 1, 2]  # files written in no slice order
    positions = axial_positions(5)
    write_series(tmp_path / "s", hu[order], [positions[k] for k in order],
                 rescales=[rescales[k] for k in order])
    volume = open_volume(tmp_path / "s")
    np.testing.assert_allclose(volume.voxels, hu, atol=1.0)  # slope 2 stores even HU
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.8))  # positions, not SliceThickness


def test_the_affine_follows_the_dicom_plane_equation_and_nibabel(tmp_path):
    # An oblique plane: rows run along (cos a, sin a, 0), columns tilt out of the axial plane.
    a, b = np.radians(20.0), np.radians(15.0)
    row_dir = np.array([np.cos(a), np.sin(a), 0.0])
    col_dir = np.array([-np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)])
    normal = np.cross(row_dir, col_dir)
    origin = np.array([12.0, -30.0, 40.0])
    positions = [tuple(origin + k * 3.0 * normal) for k in range(4)]
    hu = ramp(4)
    paths = write_series(tmp_path / "s", hu, positions, orientation=(*row_dir, *col_dir),
                         spacing=(0.6, 0.9), names=[f"{n}.dcm" for n in "dbca"])
    volume = open_volume(tmp_path / "s")
    # PS3.3 C.7.6.2.1.1: P(i, j) = S + i * dc * X + j * dr * Y for column i and row j.
    i, j, k = 3, 2, 1
    expected = origin + i * 0.9 * row_dir + j * 0.6 * col_dir + k * 3.0 * normal
    # Positions are written with four decimals.
    np.testing.assert_allclose(volume.index_to_patient((k, j, i)), expected, atol=1e-3)
    np.testing.assert_allclose(volume.patient_to_index(expected), (k, j, i), atol=1e-3)
    # nibabel's wrapper of one slice maps (row, column, 0) to LPS: the same plane.
    first = wrapper_from_data(pydicom.dcmread(paths[0]))
    theirs = first.affine
    np.testing.assert_allclose(theirs[:3, 0], volume.affine[:3, 1], atol=1e-4)
    np.testing.assert_allclose(theirs[:3, 1], volume.affine[:3, 0], atol=1e-4)
    np.testing.assert_allclose(theirs[:3, 3], volume.affine[:3, 3], atol=1e-4)
    np.testing.assert_allclose(volume.affine[:3, 2], 3.0 * normal, atol=1e-3)
    # Written as NIfTI, nibabel places voxel (i, j, k) at the same point, in RAS.
    path = write_nifti(volume.voxels, volume, tmp_path / "v.nii.gz")
    img = nib.load(str(path))
    ras = nib.affines.apply_affine(img.affine, (i, j, k))
    np.testing.assert_allclose(ras, LPS_FROM_RAS[:3, :3] @ expected, atol=1e-3)
    np.testing.assert_allclose(np.asarray(img.dataobj)[i, j, k], hu[k, j, i])
    assert open_nifti(path).voxels.shape == volume.shape


def test_an_enhanced_object_stacks_its_frames_by_position_with_per_frame_rescale(tmp_path):
    hu = ramp(4)
    order = [2, 0, 3, 1]
    rescales = [(1.0, -1024.0), (0.5, -1000.0), (1.0, -500.0), (2.0, -2000.0)]
    path = write_enhanced(tmp_path / "enh.dcm", hu, axial_positions(4, step=1.25), order,
                          rescales=rescales)
    volume = open_volume(path)
    assert volume.frames == [1, 3, 0, 2]
    np.testing.assert_allclose(volume.voxels, hu, atol=1.0)  # slope 2 stores even HU
    assert volume.spacing[0] == pytest.approx(1.25)


def _bad(tmp_path, n=6, **kw):
    positions = kw.pop("positions", axial_positions(n))
    write_series(tmp_path / "bad", ramp(len(positions)), positions, **kw)
    with pytest.raises(GeometryError) as info:
        open_volume(tmp_path / "bad")
    line = info.value.one_line()
    assert "\n" not in line and 'series 7 "TEST SERIES"' in line and str(tmp_path) in line
    return line


def test_a_missing_slice_is_reported_not_interpolated(tmp_path):
    positions = axial_positions(7)
    del positions[3]
    line = _bad(tmp_path, positions=positions)
    assert "1 slice(s) missing" in line and "-45.00 and -40.00 mm" in line


def test_uneven_spacing_is_reported(tmp_path):
    positions = [(0.0, 0.0, z) for z in (0.0, 2.5, 5.0, 8.0, 10.5)]
    assert "uneven slice spacing (steps from 2.5 to 3 mm)" in _bad(tmp_path, positions=positions)


def test_duplicate_positions_are_reported(tmp_path):
    positions = axial_positions(5)
    positions[3] = positions[2]
    assert "1 duplicate slice position(s)" in _bad(tmp_path, positions=positions)


def test_gantry_tilt_is_reported(tmp_path):
    # Each slice steps 2.5 mm up and 0.22 mm sideways: a 5 degree tilt.
    step = np.tan(np.radians(5.0)) * 2.5
    positions = [(0.0, k * step, k * 2.5) for k in range(5)]
    assert "gantry tilt of 5.00 degrees" in _bad(tmp_path, positions=positions)


def test_mixed_orientations_and_sizes_are_reported(tmp_path):
    line = _bad(tmp_path, orientations={2: (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)})
    assert "mixed slice orientations" in line
    line = _bad(tmp_path / "b", sizes={4: (6, 4)})
    assert "mixed slice sizes (4x6, 5x6 columns x rows)" in line


def test_a_folder_of_several_series_or_none_is_a_clear_error(tmp_path):
    write_series(tmp_path / "two" / "a", ramp(3), axial_positions(3))
    write_series(tmp_path / "two" / "b", ramp(3), axial_positions(3))
    with pytest.raises(UsageError, match="holds 2 series"):
        open_volume(tmp_path / "two")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError, match="holds no DICOM series"):
        open_volume(tmp_path / "empty")


def test_a_four_dimensional_nifti_is_refused_in_one_line(tmp_path):
    path = tmp_path / "t.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), str(path))
    with pytest.raises(StudyError, match="4-D NIfTI image of shape"):
        open_nifti(path)


def test_the_study_tree_makes_volumes_of_ct_series_and_says_why_not(tmp_path):
    write_series(tmp_path / "good", ramp(4), axial_positions(4))
    positions = axial_positions(5)
    del positions[2]
    write_series(tmp_path / "gap", ramp(4), positions)
    tree = open_paths([tmp_path])
    series = [s for p in tree.patients for st in p.studies for s in st.series]
    assert len(series) == 2
    made = [s for s in series if s.volume is not None]
    refused = [s for s in series if s.volume_error]
    assert len(made) == 1 and made[0].volume.shape == (4, 6, 5)
    assert len(refused) == 1 and "1 slice(s) missing" in refused[0].volume_error
    # The refused series still opens slice by slice.
    assert len(refused[0].images) == 4
