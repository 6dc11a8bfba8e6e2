"""The PACS dock alone, against a real Orthanc: search, results table, retrieve on a thread."""

from __future__ import annotations

import pydicom
import pytest
from PySide6.QtCore import Qt

from engine.pacs.config import load_config
from engine.studies.names import person_name
from gui.pacs_dock import COLUMNS, QtPacsDock
from tests.pacs_fixtures import CT_SMALL, Orthanc, free_port, synthetic_study

CT = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(folder).start()
    try:
        assert server.upload(CT_SMALL)
        server.big_study, paths = synthetic_study(folder / "big", 12)
        assert all(server.upload(p) for p in paths)
        yield server
    finally:
        server.stop()


@pytest.fixture
def dock(orthanc, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LUCIDA_PACS_CACHE", str(tmp_path / "cache"))
    widget = QtPacsDock(load_config(orthanc.node_file(tmp_path)))
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


def _search(dock, qtbot, node, **fields):
    dock.node.setCurrentText(node)
    for name, value in fields.items():
        getattr(dock, name).setText(value)
    with qtbot.waitSignal(dock.search_button.clicked, timeout=1000):
        qtbot.mouseClick(dock.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.search_button.isEnabled(), timeout=30000)


@pytest.mark.parametrize("node", ["web", "dimse"])
def test_search_fills_the_table(dock, qtbot, node):
    _search(dock, qtbot, node, patient_id=str(CT.PatientID))
    assert [dock.table.horizontalHeaderItem(i).text() for i in range(len(COLUMNS))] == \
        list(COLUMNS)
    assert dock.table.rowCount() == 1
    row = [dock.table.item(0, c).text() for c in range(len(COLUMNS))]
    assert row == [f"{person_name(CT.PatientName)} ({CT.PatientID})", str(CT.StudyDescription),
                   "2004-01-19", "CT", "1"]
    assert dock.study_uid(0) == CT.StudyInstanceUID


@pytest.mark.parametrize("node", ["web", "dimse"])
def test_double_click_retrieves_into_the_cache_as_it_arrives(dock, qtbot, orthanc, node):
    _search(dock, qtbot, node, patient_id="LUCIDA-BIG")
    assert dock.table.rowCount() == 1
    arrived = []
    dock.sig_study_arrived.connect(arrived.append)
    with qtbot.waitSignal(dock.sig_retrieved, timeout=60000) as done:
        rect = dock.table.visualItemRect(dock.table.item(0, 0))
        qtbot.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(dock.table.viewport(), Qt.MouseButton.LeftButton,
                          pos=rect.center())
    assert "retrieved 12 of 12 instances" in done.args[0]
    folder = dock.cache.folder / orthanc.big_study
    qtbot.waitUntil(lambda: str(folder) in arrived, timeout=5000)
    assert len(list(folder.rglob("*.dcm"))) == 12
    assert not dock.progress.isVisible() and dock.status.text() == done.args[0]


def test_cancel_then_resume(dock, qtbot, orthanc):
    dock.node.setCurrentText("web")
    dock.retrieve(orthanc.big_study)
    assert dock.progress.isVisible() and dock.cancel_button.isVisible()
    # Cancelled at once: the worker stops after its first batch of complete instances.
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock._retrieve is None, timeout=60000)
    assert "cancelled" in dock.status.text() and not dock.cancel_button.isVisible()
    files = list((dock.cache.folder / orthanc.big_study).rglob("*"))
    kept = sum(1 for p in files if p.is_file())
    assert 0 < kept < 12 and not [p for p in files if p.name.startswith(".")]
    with qtbot.waitSignal(dock.sig_retrieved, timeout=60000) as done:
        dock.retrieve(orthanc.big_study)
    assert f"retrieved {12 - kept} of 12 instances" in done.args[0]
    assert f"{kept} already here" in done.args[0]
    assert len(list((dock.cache.folder / orthanc.big_study).rglob("*.dcm"))) == 12


def test_unreachable_node_shows_one_line(qtbot, tmp_path):
    path = tmp_path / "pacs.toml"
    path.write_text(f'[nodes.down]\ndicomweb = "http://127.0.0.1:{free_port()}/dicom-web"\n'
                    "timeout = 3\n", encoding="utf-8")
    dock = QtPacsDock(load_config(path))
    qtbot.addWidget(dock)
    with qtbot.waitSignal(dock.sig_error, timeout=30000) as error:
        dock.search()
    assert error.args[0].startswith("pacs node down:") and "Fix:" in error.args[0]
    assert dock.status.text() == error.args[0] and dock.search_button.isEnabled()
    dock.date_from.setText("soon")
    with qtbot.waitSignal(dock.sig_error, timeout=1000) as error:
        dock.search()
    assert "--date" in error.args[0] or "date" in error.args[0]
    dock.shutdown()


def test_no_node_file_says_how_to_add_one(qtbot, tmp_path):
    dock = QtPacsDock(load_config(tmp_path / "missing.toml"))
    qtbot.addWidget(dock)
    assert "No PACS node" in dock.status.text() and not dock.search_button.isEnabled()
