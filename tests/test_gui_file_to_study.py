"""The export dialog's two kinds of export against a real Orthanc.

Filing into the patient's study is confirmed first, runs on a worker thread, and sends through
the same engine code as ``explain --send``; declining sends nothing; a research export of the
same image carries no identifier.
"""

from __future__ import annotations

import json
import urllib.request

import pydicom
import pytest
from export_leaks import found
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from engine.explain.session import ExplainRequest, Session
from engine.export.dicom_objects import PATIENT_STUDY, RESEARCH
from engine.models.loaded import load_model
from engine.studies.image import open_image
from tests.pacs_fixtures import CT_SMALL, Orthanc, dciodvfy_errors, retrieve_ct_slice

CT = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
VIEW_STATE = {"colormap": "jet", "opacity": 0.5, "method": "gradcam", "layer": "features"}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        assert server.upload(CT_SMALL)
        yield server


@pytest.fixture(scope="module")
def config_path(orthanc, tmp_path_factory):
    return orthanc.node_file(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def explained(config_path, tmp_path_factory):
    """The CT slice retrieved from Orthanc, explained with the demo model."""
    image = open_image(retrieve_ct_slice(config_path, tmp_path_factory.mktemp("retrieved")))
    result = Session().explain(ExplainRequest(image=image, model=load_model("demo"),
                                              methods=["gradcam"]))
    return image, result


@pytest.fixture
def dialog(qtbot, explained, config_path, monkeypatch):
    from gui.export_dialog import QtExportDialog

    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(config_path))
    image, result = explained
    widget = QtExportDialog(None, result, image, VIEW_STATE)
    qtbot.addWidget(widget)
    yield widget
    qtbot.waitUntil(widget.idle, timeout=30000)  # no preview outlives the dialog


def _series(orthanc) -> set[str]:
    url = f"{orthanc.dicomweb}/studies/{CT.StudyInstanceUID}/series"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return {s["0020000E"]["Value"][0] for s in json.loads(answer.read())}


def _answer(dialog, yes: bool, asked: list) -> None:
    """Answer the filing question once it is on screen, as a user would."""
    def click() -> None:
        box = dialog.confirm_box
        if box is None or not box.isVisible():
            QTimer.singleShot(20, click)
            return
        asked.append(box.text())
        button = QMessageBox.StandardButton.Yes if yes else QMessageBox.StandardButton.No
        box.button(button).click()

    QTimer.singleShot(0, click)


def _choose_filing(dialog, node: str, tmp_path):
    dialog.folder.setText(str(tmp_path / "case"))
    assert dialog.kind() == RESEARCH  # the default
    assert dialog.kinds.kind_file.isEnabled()
    dialog.kinds.kind_file.setChecked(True)
    dialog.kinds.node_box.setCurrentIndex(dialog.kinds.node_box.findData(node))
    assert dialog.kind() == PATIENT_STUDY and dialog.export_button.text() == "File to study…"
    assert dialog.deidentify.isHidden() and not dialog.kinds.filing_what.isHidden()


@pytest.mark.parametrize("node", ["web", "dimse"])
def test_confirmed_filing_sends_a_new_series_into_the_source_study(dialog, qtbot, orthanc,
                                                                   node, tmp_path):
    before = _series(orthanc)
    _choose_filing(dialog, node, tmp_path)
    asked: list[str] = []
    _answer(dialog, True, asked)
    with qtbot.waitSignal(dialog.sig_exported, timeout=60000) as blocker:
        dialog.export_button.click()
        # The question was answered and the send runs on a worker: the GUI is not blocked.
        assert asked and not dialog.export_button.isEnabled()
    (question,) = asked
    for value in (str(CT.PatientName), CT.PatientID, CT.StudyInstanceUID, node):
        assert value in question
    assert "Filed into the patient's study" in dialog.status.text()
    assert f"on {node}" in dialog.status.text()

    folder = tmp_path / "case"
    record = json.loads((folder / "result.json").read_text())["export"]
    assert record["kind"] == PATIENT_STUDY and record["sent"] is True
    assert record["study_uid"] == CT.StudyInstanceUID and record["node"] == node
    new = _series(orthanc) - before
    assert len(new) == 3  # Secondary Capture, Parametric Map and SR
    kept = {str(pydicom.dcmread(p).SeriesInstanceUID) for p in blocker.args[0]}
    assert kept == new
    for path in blocker.args[0]:
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == CT.StudyInstanceUID and ds.PatientID == CT.PatientID
        assert CT.SOPInstanceUID in {str(e.value) for e in ds.iterall()
                                     if e.keyword == "ReferencedSOPInstanceUID"}
        assert dciodvfy_errors(path) == [], path.name


def test_declined_filing_sends_and_writes_nothing(dialog, qtbot, orthanc, tmp_path):
    before = _series(orthanc)
    _choose_filing(dialog, "web", tmp_path)
    asked: list[str] = []
    _answer(dialog, False, asked)
    dialog.export_button.click()
    assert asked
    assert "Not filed" in dialog.status.text()
    assert dialog.export_button.isEnabled()
    qtbot.wait(500)
    assert _series(orthanc) == before
    assert not (tmp_path / "case").exists()


def test_research_export_of_the_same_image_carries_no_identifier(dialog, qtbot, tmp_path):
    out = tmp_path / "research"
    dialog.folder.setText(str(out))
    for fmt, box in dialog.output_checks.items():
        box.setChecked(fmt in ("dicom", "pm", "sr"))
    with qtbot.waitSignal(dialog.sig_exported, timeout=60000) as blocker:
        dialog.export_button.click()
    assert "research export: de-identified, new UIDs" in dialog.status.text()
    dicoms = [p for p in blocker.args[0] if p.suffix == ".dcm"]
    assert len(dicoms) == 3
    for path in blocker.args[0]:
        for value in (str(CT.PatientName), CT.PatientID, CT.StudyInstanceUID,
                      CT.SOPInstanceUID):
            assert not found(path, value), (path.name, value)
    for path in dicoms:
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"


def test_filing_needs_a_node_file(qtbot, explained, tmp_path, monkeypatch):
    from gui.export_dialog import QtExportDialog

    monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(tmp_path / "missing.toml"))
    image, result = explained
    widget = QtExportDialog(None, result, image, VIEW_STATE)
    qtbot.addWidget(widget)
    assert not widget.kinds.kind_file.isEnabled()
    assert "No PACS node" in widget.kinds.filing_note.text()
    qtbot.waitUntil(widget.idle, timeout=30000)
