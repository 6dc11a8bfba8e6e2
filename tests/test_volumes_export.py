"""Volume exports: the map as NIfTI on the volume's affine, plane overlays and figures."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from engine.export.volume import plane_figure, plane_overlays, write_map_nifti
from engine.studies.nifti import LPS_FROM_RAS
from engine.studies.volume import Volume


def _volume() -> Volume:
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-20.0, -30.0, -60.0)
    hu = np.full((10, 24, 20), -800.0, np.float32)
    hu[:, 4:20, 3:17] = 40.0
    return Volume(path="mem", name="export", modality="CT", affine=affine, shape=hu.shape,
                  voxels=hu)


def _heat(volume) -> np.ndarray:
    heat = np.zeros(volume.shape, np.float32)
    heat[6, 12, 9] = 1.0
    heat[6, 11:14, 8:11] = np.maximum(heat[6, 11:14, 8:11], 0.5)
    return heat


def test_the_map_as_nifti_lands_on_the_voxels_it_explains(tmp_path):
    volume = _volume()
    heat = _heat(volume)
    path = write_map_nifti(heat, volume, tmp_path / "map.nii.gz", "gradcam", "features")
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    i, j, k = np.unravel_index(int(data.argmax()), data.shape)
    assert (k, j, i) == (6, 12, 9)
    ras = nib.affines.apply_affine(img.affine, (i, j, k))
    np.testing.assert_allclose(ras, (LPS_FROM_RAS[:3, :3] @ volume.index_to_patient((k, j, i))))
    assert img.header["descrip"].tobytes().startswith(b"Lucida gradcam features")


def test_plane_overlays_cross_at_the_peak_and_show_the_heat():
    volume = _volume()
    overlays = plane_overlays(volume, _heat(volume), opacity=1.0, threshold=0.1)
    assert set(overlays) == {"axial", "coronal", "sagittal"}
    for rgb in overlays.values():
        assert rgb.dtype == np.uint8 and rgb.ndim == 3
        # Heat is drawn in colour; the rest of the plane stays grey.
        colour = np.abs(rgb[..., 0].astype(int) - rgb[..., 2].astype(int)) > 30
        assert 0 < colour.sum() < colour.size / 4
    # Anisotropic voxels: 22.5 mm from the first slice to the last, on 0.8 mm pixels.
    assert overlays["coronal"].shape[0] == pytest.approx(22.5 / 0.8 + 1, abs=1)


def test_a_figure_has_a_row_of_three_planes_per_map():
    volume = _volume()
    one = plane_figure(volume, [("Grad-CAM", _heat(volume))], scale=1)
    two = plane_figure(volume, [("Grad-CAM", _heat(volume)), ("LayerCAM", _heat(volume))],
                       scale=1)
    assert one.dtype == np.uint8 and two.shape[1] == one.shape[1]
    assert two.shape[0] > one.shape[0] + 20
