"""A slow read in the window: an explanation does not wait for it, and the real Cancel button and
Esc stop it, after which explaining works again. Synchronised on signals only."""

from __future__ import annotations

import threading

from gui_fixtures import WAIT_MS
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_bounded_reads import slow_start, sparse

from engine.core.resources import DEMO_STUDY
from gui.file_opening import read_tree
from gui.worker import EngineWorkers


def _read_started(window, qtbot, path):
    """Open ``path`` in the window; return the open job's id once its read runs."""
    with qtbot.waitSignal(window.worker.sig_started, timeout=WAIT_MS,
                          check_params_cb=lambda _i, kind: kind == "open") as started:
        window.open_paths([str(path)])
    return started.args[0]


def _cancelled_by(window, qtbot, job, press) -> None:
    with qtbot.waitSignal(window.worker.sig_cancelled, timeout=WAIT_MS,
                          check_params_cb=lambda i, _kind: i == job):
        press()
    assert window.message.text() == "Cancelled"


def _explains_again(window, qtbot) -> None:
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(DEMO_STUDY)])


def test_the_cancel_button_stops_a_slow_read_and_explaining_works_after(window, qtbot,
                                                                         tmp_path):
    job = _read_started(window, qtbot, sparse(tmp_path / "slow.dcm", slow_start()))
    button = window.cancel_button
    assert button.isEnabled()
    _cancelled_by(window, qtbot, job,
                  lambda: qtbot.mouseClick(button, Qt.MouseButton.LeftButton))
    _explains_again(window, qtbot)


def test_esc_stops_a_slow_read_and_explaining_works_after(window, qtbot, tmp_path):
    job = _read_started(window, qtbot, sparse(tmp_path / "slow.dcm", slow_start()))
    window.activateWindow()
    _cancelled_by(window, qtbot, job,
                  lambda: QTest.keyClick(window.viewer, Qt.Key.Key_Escape))
    _explains_again(window, qtbot)


def test_an_explanation_does_not_wait_for_a_slow_read(qtbot, tmp_path):
    workers = EngineWorkers()
    slow = sparse(tmp_path / "slow.dcm", slow_start())
    events = []
    workers.sig_finished.connect(lambda i, kind, _r: events.append(("done", kind)))
    workers.sig_cancelled.connect(lambda i, kind: events.append(("cancelled", kind)))
    reading = threading.Event()

    def read(progress, cancel, partial):
        reading.set()
        return read_tree([str(slow)], progress, cancel)

    try:
        with qtbot.waitSignal(workers.sig_started, timeout=WAIT_MS,
                              check_params_cb=lambda _i, kind: kind == "open"):
            workers.submit("open", read)
        with qtbot.waitSignal(workers.sig_finished, timeout=WAIT_MS,
                              check_params_cb=lambda _i, kind, _r: kind == "explain"):
            workers.submit("explain", lambda p, c, o: "a map")
        assert reading.is_set() and workers.busy()  # the read still runs
        with qtbot.waitSignal(workers.sig_cancelled, timeout=WAIT_MS):
            workers.cancel()
        with qtbot.waitSignal(workers.sig_idle, timeout=WAIT_MS, raising=False):
            pass
    finally:
        workers.stop()
    assert events == [("done", "explain"), ("cancelled", "open")]
