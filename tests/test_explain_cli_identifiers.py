"""A patient-named file through ``explain --metrics --report``: no output names the patient."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from export_leaks import found

from engine.cli import main
from engine.core.resources import DEMO_STUDY

# Long enough that a base64-embedded figure cannot hold one by chance.
SECRETS = ("DOE_JOHN", "DOE^JOHN", "1234567")


@pytest.fixture
def patient_files(tmp_path):
    """A demo PNG copied under a patient's name, and a demo DICOM of patient DOE^JOHN, both in
    a folder named for the patient."""
    folder = tmp_path / "DOE_JOHN_1234567"
    folder.mkdir()
    png = folder / "DOE_JOHN_1234567.png"
    shutil.copy(DEMO_STUDY / "phantom_0004.png", png)
    ds = pydicom.dcmread(DEMO_STUDY / "phantom_0001.dcm")
    ds.PatientName, ds.PatientID = "DOE^JOHN", "1234567"
    dcm = folder / "DOE_JOHN_1234567.dcm"
    ds.save_as(dcm)
    return png, dcm


def _leaks(out):
    leaks = []
    for path in [out, *out.rglob("*")]:
        for secret in SECRETS:
            if secret in str(path.relative_to(out.parent)):
                leaks.append(f"{path.name}: name")
            if path.is_file() and found(path, secret):
                leaks.append(f"{path.relative_to(out)}: {secret}")
    return leaks


def test_explain_reports_name_no_patient_by_default(patient_files, tmp_path, capsys):
    png, dcm = patient_files
    out = tmp_path / "out"
    code = main(["explain", str(png), str(dcm), "--model", "demo", "--method", "gradcam",
                 "--metrics", "--report", "pdf,html,dicom", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"case-001", "case-002"}
    assert len(list(out.rglob("*"))) > 10
    assert _leaks(out) == []


def test_keep_identifiers_keeps_them_on_purpose(patient_files, tmp_path, capsys):
    png, dcm = patient_files
    out = tmp_path / "kept"
    assert main(["explain", str(png), "--model", "demo", "--report", "html", "--out", str(out),
                 "--keep-identifiers"]) == 0, capsys.readouterr().err
    assert (out / "DOE_JOHN_1234567" / "result.json").is_file()
