"""Folders and mixed selections become a Patient → Study → Series → Image tree."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image as PILImage
from studies_fixtures import bundled, read

from engine.core.cancel import Cancelled, CancelToken
from engine.studies.tree import FAILED, SKIPPED, open_paths


def _series(tmp_path):
    """Three MR slices written out of order: instance numbers 3, 1, 2 in files a, b, c."""
    folder = tmp_path / "study" / "mr"
    folder.mkdir(parents=True)
    for name, number in (("a.dcm", 3), ("b.dcm", 1), ("c.dcm", 2)):
        ds = read("MR_small.dcm")
        ds.InstanceNumber = number
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{number}"
        ds.save_as(folder / name)
    return folder


def test_folder_tree_sorted_with_bad_files_skipped(tmp_path):
    folder = _series(tmp_path)
    nested = tmp_path / "study" / "more" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(bundled("CT_small.dcm"), nested / "ct.dcm")
    shutil.copy(bundled("rtplan.dcm"), nested / "plan.dcm")
    shutil.copy(bundled("MR_truncated.dcm"), nested / "broken.dcm")
    (nested / "notes.txt").write_text("not an image")
    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "photo.png")
    reports = []
    tree = open_paths(
        [tmp_path / "study", tmp_path / "photo.png", tmp_path / "missing.dcm"],
        progress=lambda fraction, message: reports.append(fraction),
    )
    skipped = {path.name: reason for path, reason in tree.skipped}
    assert set(skipped) == {"plan.dcm", "broken.dcm", "notes.txt", "missing.dcm"}
    kinds = {p.path.name: p.kind for p in tree.problems}
    assert kinds == {"plan.dcm": "skipped", "notes.txt": "skipped", "broken.dcm": "failed",
                     "missing.dcm": "failed"}
    assert "no pixel data" in skipped["plan.dcm"]
    assert "truncated" in skipped["broken.dcm"]
    assert "not a DICOM or image file" in skipped["notes.txt"]
    images = tree.all_images()
    assert sorted(i.path.name for i in images) == ["a.dcm", "b.dcm", "c.dcm", "ct.dcm", "photo.png"]
    mr = next(
        series
        for patient in tree.patients
        for study in patient.studies
        for series in study.series
        if series.modality == "MR"
    )
    assert [i.path.name for i in mr.images] == ["b.dcm", "c.dcm", "a.dcm"]
    assert all(i.path.parent == folder for i in mr.images)
    patient_ids = [p.id for p in tree.patients]
    assert read("MR_small.dcm").PatientID in patient_ids
    assert patient_ids[-1] == "(unknown)"  # the PNG, which carries no patient
    assert reports and reports[-1] == 1.0 and reports == sorted(reports)


def test_series_without_instance_numbers_sorted_by_position(tmp_path):
    for name, z in (("x1.dcm", 30.0), ("x2.dcm", -10.0), ("x3.dcm", 5.0)):
        ds = read("CT_small.dcm")
        del ds.InstanceNumber
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, z]
        ds.save_as(tmp_path / name)
    tree = open_paths([tmp_path])
    (series,) = tree.patients[0].studies[0].series
    assert [i.path.name for i in series.images] == ["x2.dcm", "x3.dcm", "x1.dcm"]


def test_multiframe_is_one_image_with_frames(tmp_path):
    shutil.copy(bundled("examples_ybr_color.dcm"), tmp_path / "cine.dcm")
    tree = open_paths([tmp_path])
    (image,) = tree.all_images()
    assert image.n_frames == 30 and tree.skipped == []


def test_cancel_stops_opening(tmp_path):
    _series(tmp_path)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        open_paths([tmp_path], cancel=token)


def _presentation_state(path):
    """A grayscale softcopy presentation state: a DICOM object with no pixel data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.PatientID, ds.StudyInstanceUID = "PR", "P1", generate_uid()
    ds.PresentationLUTShape = "IDENTITY"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_objects_without_images_are_skipped_and_broken_images_failed(tmp_path):
    for name in ("test-SR.dcm", "rtplan.dcm", "waveform_ecg.dcm", "MR_truncated.dcm"):
        shutil.copy(bundled(name), tmp_path / name)
    _presentation_state(tmp_path / "gsps.dcm")
    tree = open_paths([tmp_path])
    kinds = {p.path.name: p.kind for p in tree.problems}
    assert kinds == {"test-SR.dcm": SKIPPED, "rtplan.dcm": SKIPPED, "waveform_ecg.dcm": SKIPPED,
                     "gsps.dcm": SKIPPED, "MR_truncated.dcm": FAILED}
    reasons = {p.path.name: p.reason for p in tree.problems}
    assert "Grayscale Softcopy Presentation State" in reasons["gsps.dcm"]
    assert "ECG" in reasons["waveform_ecg.dcm"] and "SR" in reasons["test-SR.dcm"]
    assert [p.path.name for p in tree.failed] == ["MR_truncated.dcm"]
    assert tree.all_images() == []


def test_a_dicomdir_opens_as_the_index_of_its_images(tmp_path):
    index = bundled("dicomdirtests/DICOMDIR")
    tree = open_paths([index])
    assert tree.problems == []
    images = tree.all_images()
    assert len(images) == 31 and all(i.path.is_relative_to(index.parent) for i in images)
    assert {p.id for p in tree.patients} == {"77654033", "98890234"}
    # Its folder walked as well as the index itself: every image once.
    both = open_paths([index, index.parent / "77654033"])
    assert len(both.all_images()) == 31


def test_a_dicomdir_naming_missing_files_reports_them(tmp_path):
    src = bundled("dicomdirtests/DICOMDIR").parent
    shutil.copy(src / "DICOMDIR", tmp_path / "DICOMDIR")
    shutil.copytree(src / "77654033", tmp_path / "77654033")
    tree = open_paths([tmp_path / "DICOMDIR"])
    copied = [p for p in (tmp_path / "77654033").rglob("*") if p.is_file()]
    assert len(tree.all_images()) == len(copied)
    missing = [p for p in tree.problems if "but missing" in p.reason]
    assert missing and all(p.kind == FAILED for p in missing)
    assert len(tree.all_images()) + len(missing) == 31


def test_images_of_a_series_share_their_default_window(tmp_path):
    import numpy as np

    folder = tmp_path / "mr"
    folder.mkdir()
    for number, gain in ((1, 1), (2, 2), (3, 3)):
        ds = read("MR_small.dcm")
        for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.PixelData = (ds.pixel_array.astype(np.int32) * gain).astype(np.int16).tobytes()
        ds.InstanceNumber = number
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{number}"
        ds.save_as(folder / f"s{number}.dcm")
    from engine.studies.image import open_image

    alone = {open_image(folder / f"s{n}.dcm").default_window for n in (1, 2, 3)}
    assert len(alone) == 3, "on their own, the slices would open at different windows"
    (series,) = open_paths([folder]).patients[0].studies[0].series
    windows = {image.default_window for image in reversed(series.images)}
    assert len(windows) == 1
    assert windows == {open_image(folder / "s2.dcm").default_window}  # the middle slice's
