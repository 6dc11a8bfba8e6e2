"""De-identification: the Annex E basic profile on data sets, and scrubbing of free text."""

from __future__ import annotations

import io

import pydicom
import pytest
from export_fixtures import FAKE, write_fake_dicom
from export_leaks import found
from pydicom.dataset import Dataset

from engine.core.errors import ExportError
from engine.export.deid import REMOVED, Scrubber, deidentify_dataset


@pytest.fixture()
def source(tmp_path):
    ds = pydicom.dcmread(write_fake_dicom(tmp_path / "case.dcm", size=16))
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ref.PerformingPhysicianName = "PERFORMER^PAUL"
    ref.VerifyingObserverName = "OBSERVER^OLGA"  # a name the profile table does not list
    ds.ReferencedImageSequence = [ref]
    ds.add_new(0x60003000, "OW", b"\0\1" * 8)  # overlay data can hold burned-in text
    return ds


def test_basic_profile_empties_removes_and_marks(source):
    out = deidentify_dataset(source)
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDate",
        "StudyTime",
        "StudyID",
    ):
        assert keyword in out and out[keyword].value in ("", None), keyword
    for keyword in ("InstitutionName", "OperatorsName"):
        assert keyword not in out
    assert not any(elem.tag.is_private for elem in out.iterall())
    assert 0x60003000 not in out
    item = out.ReferencedImageSequence[0]
    assert "PerformingPhysicianName" not in item and item.VerifyingObserverName == ""
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    # The source is untouched, and the pixels survive.
    assert str(source.PatientName) == FAKE["PatientName"]
    assert out.PixelData == source.PixelData


def test_uids_are_replaced_consistently(source):
    out = deidentify_dataset(source)
    assert out.SOPInstanceUID != source.SOPInstanceUID
    assert out.StudyInstanceUID != source.StudyInstanceUID
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPClassUID == source.SOPClassUID  # a class UID identifies no one


def test_deidentified_dataset_holds_no_identifier_bytes(source, tmp_path):
    out = deidentify_dataset(source)
    path = tmp_path / "anon.dcm"
    out.save_as(path, enforce_file_format=True)
    for value in FAKE.values():
        assert not found(path, value), value
    source.save_as(tmp_path / "orig.dcm", enforce_file_format=True)
    assert found(tmp_path / "orig.dcm", FAKE["PatientName"])


def test_scrubber_blanks_every_form_of_a_name():
    scrub = Scrubber({"PatientName": "DOE^JOHN", "PatientID": "ID-1234567", "StudyDate": ""})
    text = scrub.text("DOE^JOHN / John Doe? DOE JOHN, id-1234567 in /data/ID-1234567/x.dcm")
    assert "JOHN" not in text.upper().replace("[REMOVED]", "")
    assert "1234567" not in text
    assert text.count(REMOVED) == 5
    assert scrub.deep({"a": ["DOE^JOHN", 3], "ID-1234567": None}) == {
        "a": [REMOVED, 3],
        REMOVED: None,
    }
    assert Scrubber({"PatientName": "DOE^JOHN"}, active=False).text("DOE^JOHN") == "DOE^JOHN"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "latin-1"])
def test_byte_guard_catches_every_encoding(encoding):
    scrub = Scrubber({"PatientID": "LUCIDA-ID-424242"})
    with pytest.raises(ExportError, match="patient identifier"):
        scrub.check(b"...." + "lucida LUCIDA-ID-424242".encode(encoding), "x.pdf")
    scrub.check(b"LUCIDA-ID-42424", "x.pdf")  # a different ID passes
    Scrubber({"PatientID": "LUCIDA-ID-424242"}, active=False).check(b"LUCIDA-ID-424242", "x")


def test_leak_finder_sees_inside_compressed_pdf_streams(tmp_path):
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pageCompression=1)
    pdf.drawString(72, 720, FAKE["PatientID"])
    pdf.save()
    path = tmp_path / "compressed.pdf"
    path.write_bytes(buf.getvalue())
    assert FAKE["PatientID"].encode() not in path.read_bytes()
    assert found(path, FAKE["PatientID"])
