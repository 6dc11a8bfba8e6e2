"""Orientation markers from Image Orientation (Patient) and Patient Orientation."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from engine.studies.image import open_image
from engine.studies.orientation import (
    EdgeLabels,
    direction_letters,
    edge_labels,
    labels_from_iop,
    labels_from_patient_orientation,
)


@pytest.fixture
def coronal_ct(tmp_path):
    """A copy of pydicom's axial CT_small.dcm whose orientation is made coronal."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    path = tmp_path / "coronal.dcm"
    ds.save_as(path)
    return open_image(path)


def test_axial_ct_small_reads_as_radiologists_see_it():
    image = open_image(get_testdata_file("CT_small.dcm"))
    assert edge_labels(image) == EdgeLabels(left="R", right="L", top="A", bottom="P")


def test_coronal_copy_has_head_up_and_feet_down(coronal_ct):
    assert edge_labels(coronal_ct) == EdgeLabels(left="R", right="L", top="H", bottom="F")


def test_oblique_direction_gets_two_letters_strongest_first():
    # Rows run 30 degrees from left towards posterior: mostly left, somewhat posterior.
    assert direction_letters([0.866, 0.5, 0.0]) == "LP"
    assert direction_letters([-0.5, -0.866, 0.0]) == "AR"
    labels = labels_from_iop([0.866, 0.5, 0.0, 0.0, 0.0, -1.0])
    assert (labels.right, labels.left, labels.bottom, labels.top) == ("LP", "RA", "F", "H")


def test_a_slight_tilt_keeps_one_letter():
    assert direction_letters([0.999, 0.04, 0.0]) == "L"


def test_sagittal_orientation():
    labels = labels_from_iop([0, 1, 0, 0, 0, -1])
    assert labels == EdgeLabels(left="A", right="P", top="H", bottom="F")


def test_patient_orientation_of_a_radiograph():
    assert labels_from_patient_orientation(["L", "F"]) == EdgeLabels("R", "L", "H", "F")
    assert labels_from_patient_orientation(["X", "F"]) is None


def test_malformed_or_missing_orientation_is_unknown(tmp_path):
    assert labels_from_iop([1, 0, 0]) is None
    assert labels_from_iop(["a", 0, 0, 0, 1, 0]) is None
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.ImageOrientationPatient
    ds.save_as(tmp_path / "none.dcm")
    assert edge_labels(open_image(tmp_path / "none.dcm")) is None
