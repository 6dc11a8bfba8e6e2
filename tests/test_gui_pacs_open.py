"""A PACS retrieve opens in the window, against a real Orthanc; the node file is followed as it
changes, says where it goes, and a failure is listed in Problems."""

from __future__ import annotations

import pydicom
import pytest
from gui_fixtures import WAIT_MS, pump
from PySide6.QtCore import QSettings, Qt

from engine.pacs.config import CONFIG_ENV
from engine.studies.filetypes import FAILED
from tests.pacs_fixtures import CT_SMALL, Orthanc, free_port

CT = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        assert server.upload(CT_SMALL)
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_window(qapp, tmp_path, monkeypatch):
    """A review window whose PACS dock reads ``tmp_path/nodes/pacs.toml``."""
    from gui.main_window import QtMainWindow

    node_file = tmp_path / "nodes" / "pacs.toml"
    node_file.parent.mkdir()
    monkeypatch.setenv(CONFIG_ENV, str(node_file))
    monkeypatch.setenv("LUCIDA_PACS_CACHE", str(tmp_path / "cache"))
    made = []

    def make():
        win = QtMainWindow(settings=QSettings(str(tmp_path / "lucida.ini"),
                                              QSettings.Format.IniFormat))
        win.node_file = node_file
        win.show()
        win.docks["pacs"].show()
        win.docks["pacs"].raise_()
        made.append(win)
        assert pump(qapp, lambda: not win.worker.busy())  # its start-up jobs are done
        return win

    yield make
    for win in made:
        win.close()


def _click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.text()} is disabled"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_a_retrieved_study_opens_in_the_window(make_window, orthanc, qtbot, qapp, tmp_path):
    win = make_window()
    dock = win.pacs
    orthanc.node_file(win.node_file.parent)
    qtbot.waitUntil(lambda: dock.node.count() == 2, timeout=WAIT_MS)  # the file was re-read
    dock.node.setCurrentText("web")
    qtbot.keyClicks(dock.patient_id, str(CT.PatientID))
    _click(qtbot, dock.search_button)
    qtbot.waitUntil(lambda: dock.table.rowCount() == 1, timeout=WAIT_MS)
    assert "^" not in dock.table.item(0, 0).text()
    assert dock.table.item(0, 0).text().startswith("CompressedSamples, CT1")
    rect = dock.table.visualItemRect(dock.table.item(0, 0))
    qtbot.mouseClick(dock.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(dock.sig_retrieved, timeout=WAIT_MS):
        _click(qtbot, dock.retrieve_button)
    folder = dock.cache.folder
    assert pump(qapp, lambda: win.image is not None and not win.worker.busy()), \
        "the retrieved study never opened"
    assert str(win.image.path).startswith(str(folder))
    assert win.image.dataset.SOPInstanceUID == CT.SOPInstanceUID
    assert win.browser.image_items() and win.files.paths[0].startswith(str(folder))
    # Its frame is decoded by a job queued after the open: wait for it to be drawn.
    assert pump(qapp, lambda: not win.viewer.rendered_image().isNull()), \
        "the retrieved image was never drawn"


def test_no_node_says_where_the_file_goes_and_a_failure_is_in_problems(
        make_window, qtbot, qapp):
    win = make_window()
    dock = win.pacs
    assert str(win.node_file) in dock.status.text() and "No PACS node" in dock.status.text()
    assert not dock.search_button.isEnabled()
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    win.node_file.write_text(f'[nodes.down]\ndicomweb = "{url}"\ntimeout = 3\nretries = 0\n',
                             encoding="utf-8")
    qtbot.waitUntil(lambda: dock.search_button.isEnabled(), timeout=WAIT_MS)
    assert dock.node.currentText() == "down"
    with qtbot.waitSignal(dock.sig_error, timeout=WAIT_MS) as error:
        _click(qtbot, dock.search_button)
    assert error.args[0].startswith("pacs node down:")
    rows = win.problems.rows()
    assert ("PACS", FAILED, error.args[0]) in rows
    assert win.banner.isVisible() and win.banner.label.text() == error.args[0]
