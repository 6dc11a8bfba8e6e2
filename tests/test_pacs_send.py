"""Filing explanations into the patient's study on a real Orthanc, and the research export.

A CT slice is retrieved from Orthanc, explained with ``--send`` over DICOMweb and over DIMSE, and
the new series are read back from Orthanc. Every Secondary Capture, Parametric Map and SR Lucida
writes is checked with dciodvfy (dicom3tools).
"""

from __future__ import annotations

import copy
import json
import urllib.request

import pydicom
import pytest
from pydicom.uid import generate_uid

from engine.cli import main
from engine.export.dicom_pm import PM_SOP_CLASS
from engine.export.dicom_sr import SR_SOP_CLASS
from engine.pacs.config import load_config
from engine.pacs.errors import PacsError, StoreRejected
from engine.pacs.send import send_datasets
from tests.pacs_fixtures import (
    CT_SMALL,
    Orthanc,
    dciodvfy_errors,
    free_port,
    retrieve_ct_slice,
)

CT = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        assert server.upload_pydicom_test_files() > 40
        yield server


@pytest.fixture(scope="module")
def config_path(orthanc, tmp_path_factory):
    return orthanc.node_file(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def retrieved(config_path, tmp_path_factory):
    """The CT slice as retrieved from Orthanc over DICOMweb."""
    return retrieve_ct_slice(config_path, tmp_path_factory.mktemp("retrieved"))


def _series_in_study(orthanc, study_uid) -> dict[str, list[dict]]:
    url = f"{orthanc.dicomweb}/studies/{study_uid}/series"
    with urllib.request.urlopen(url, timeout=30) as answer:
        series = json.loads(answer.read())
    uids = [s["0020000E"]["Value"][0] for s in series]
    return {uid: orthanc.instances_of_series(study_uid, uid) for uid in uids}


def _wado(orthanc, study, series, sop) -> pydicom.Dataset:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(orthanc.dicomweb).retrieve_instance(study, series, sop)


def _referenced_sops(ds) -> set[str]:
    """Every Referenced SOP Instance UID anywhere in a data set."""
    found = set()
    for elem in ds.iterall():
        if elem.keyword == "ReferencedSOPInstanceUID":
            found.add(str(elem.value))
    return found


@pytest.mark.parametrize("node", ["web", "dimse"])
def test_explain_send_files_into_the_patients_study(config_path, orthanc, retrieved, node,
                                                    tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(config_path))
    before = set(_series_in_study(orthanc, CT.StudyInstanceUID))
    out = tmp_path / "out"
    rc = main(["explain", str(retrieved), "--model", "demo", "--out", str(out), "--metrics",
               "--send", node, "--keep-identifiers"])
    assert rc == 0
    assert f"into study {CT.StudyInstanceUID} on {node}" in capsys.readouterr().out
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    record = json.loads((folder / "result.json").read_text())["export"]
    assert record["kind"] == "patient-study" and record["sent"] is True
    assert record["node"] == node and record["study_uid"] == CT.StudyInstanceUID
    assert all(item["stored"] for item in record["instances"])

    after = _series_in_study(orthanc, CT.StudyInstanceUID)
    new = {uid: items for uid, items in after.items() if uid not in before}
    assert len(new) == 3  # Secondary Capture, Parametric Map and SR, each its own series
    classes = {}
    for series_uid, items in new.items():
        (item,) = items
        sop = item["00080018"]["Value"][0]
        ds = _wado(orthanc, CT.StudyInstanceUID, series_uid, sop)
        classes[str(ds.SOPClassUID)] = ds
        assert ds.StudyInstanceUID == CT.StudyInstanceUID
        assert ds.PatientID == CT.PatientID and ds.PatientName == CT.PatientName
        assert ds.SeriesInstanceUID != CT.SeriesInstanceUID
        assert CT.SOPInstanceUID in _referenced_sops(ds)
    assert set(classes) == {SC_SOP_CLASS, PM_SOP_CLASS, SR_SOP_CLASS}
    pm, sr = classes[PM_SOP_CLASS], classes[SR_SOP_CLASS]
    assert pm.SOPInstanceUID in _referenced_sops(sr)
    assert pm.FloatPixelData and pm.Rows == CT.Rows and pm.Columns == CT.Columns
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "gradcam" and "features" in mapping.LUTExplanation
    texts = {str(e.value) for e in sr.iterall() if e.keyword == "TextValue"}
    assert {"gradcam", "features"} <= texts
    result = json.loads((folder / "result.json").read_text())
    assert result["model"]["sha256"] in texts
    numbers = [e.value for e in sr.iterall() if e.keyword == "NumericValue"]
    assert len(numbers) >= len(result["prediction"]) + 2  # probabilities and trust metrics

    for path in sorted((folder / "patient_study").glob("*.dcm")):
        assert dciodvfy_errors(path) == [], path.name


def test_send_twice_leaves_one_copy_and_a_rejection_shows_its_code(config_path, orthanc,
                                                                   retrieved):
    ds = pydicom.dcmread(retrieved)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    config = load_config(config_path)
    for name in ("web", "dimse", "web"):
        report = send_datasets(config.node(name), [ds])
        assert report.stored == [ds.SOPInstanceUID] and report.attempts == 1
    assert len(orthanc.instances_of_series(CT.StudyInstanceUID, ds.SeriesInstanceUID)) == 1

    broken = copy.deepcopy(ds)
    broken.SOPInstanceUID = generate_uid()
    broken.file_meta.MediaStorageSOPInstanceUID = broken.SOPInstanceUID
    del broken.StudyInstanceUID  # Orthanc cannot index an instance without it
    for name, code in (("web", "HTTP 400"), ("dimse", "0xA700")):
        with pytest.raises(StoreRejected) as info:
            send_datasets(config.node(name), [broken], sleep=lambda s: pytest.fail("retried"))
        assert info.value.codes == {broken.SOPInstanceUID: code}
        assert info.value.stored == [] and code.split()[-1] in info.value.one_line()


def test_send_refused_with_de_identification(config_path, retrieved, tmp_path, monkeypatch,
                                             capsys):
    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(config_path))
    rc = main(["explain", str(retrieved), "--model", "demo", "--out", str(tmp_path / "o"),
               "--send", "web"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "de-identifies" in err and "--keep-identifiers" in err
    assert not (tmp_path / "o").exists()


def test_send_to_a_dead_node_records_nothing_as_sent(retrieved, tmp_path, monkeypatch, capsys):
    path = tmp_path / "dead.toml"
    path.write_text(f'[nodes.dead]\nae_title = "X"\nhost = "127.0.0.1"\nport = {free_port()}\n'
                    "retries = 1\nbackoff = 0.01\ntimeout = 3\n", encoding="utf-8")
    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(path))
    out = tmp_path / "o"
    rc = main(["explain", str(retrieved), "--model", "demo", "--out", str(out), "--send", "dead",
               "--keep-identifiers"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: pacs node dead:")
    assert "0 of 3 instances confirmed stored" in err and "Fix:" in err
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    record = json.loads((folder / "result.json").read_text())["export"]
    assert record["sent"] is False and not any(i["stored"] for i in record["instances"])
    assert len(list((folder / "patient_study").glob("*.dcm"))) == 3  # kept, to send again


def test_research_export_carries_no_identifier_and_passes_dciodvfy(retrieved, tmp_path):
    out = tmp_path / "o"
    assert main(["explain", str(retrieved), "--model", "demo", "--out", str(out),
                 "--report", "dicom,pm,sr", "--metrics"]) == 0
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert json.loads((folder / "result.json").read_text())["export"] == {
        "kind": "research", "identifiers": "removed"}
    files = sorted(folder.glob("*.dcm"))
    assert [p.name for p in files] == ["explanation_pm_gradcam_features.dcm",
                                       "explanation_sr.dcm", "figure_sc.dcm"]
    source_uids = {CT.StudyInstanceUID, CT.SeriesInstanceUID, CT.SOPInstanceUID,
                   CT.FrameOfReferenceUID}
    for path in files:
        data = path.read_bytes()
        for value in (str(CT.PatientName), str(CT.PatientID), *source_uids):
            assert value.encode() not in data, (path.name, value)
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == "Anonymous"
        assert not source_uids & _referenced_sops(ds)
        assert dciodvfy_errors(path) == [], path.name
    pm, sr = (pydicom.dcmread(p) for p in files[:2])
    assert pm.SOPInstanceUID in _referenced_sops(sr)
    assert pm.StudyInstanceUID == sr.StudyInstanceUID


def test_raster_image_cannot_be_filed(config_path, tmp_path, monkeypatch, capsys):
    from PIL import Image

    png = tmp_path / "x.png"
    Image.new("L", (64, 64), 80).save(png)
    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(config_path))
    rc = main(["explain", str(png), "--model", "demo", "--out", str(tmp_path / "o"),
               "--send", "web", "--keep-identifiers"])
    err = capsys.readouterr().err
    assert rc == 2 and "no study to file into" in err and str(png) in err


def test_unknown_send_node_fails_before_the_model_loads(config_path, retrieved, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(config_path))
    rc = main(["explain", str(retrieved), "--model", "demo", "--out", str(tmp_path / "o"),
               "--send", "nowhere", "--keep-identifiers"])
    assert rc == 2 and "no PACS node named 'nowhere'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(PacsError):
        load_config(config_path).node("nowhere")
