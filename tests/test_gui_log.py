"""Internal errors in the window: one line that says where the log is, the traceback in the log,
and Help ▸ Show log opens it."""

from __future__ import annotations

import textwrap

import pytest
from gui_fixtures import WAIT_MS, caught_urls, demo_window
from PySide6.QtCore import Qt, QUrl

from engine.core.log import TRACEBACK_NOTE, log_path
from gui.worker import QtEngineWorker

BOOM = textwrap.dedent(
    '''
    from engine.explain.api import Explainer

    class Boom(Explainer):
        name = "boom"
        title = "Boom (raises)"
        description = "A plugin with a bug."
        citation = "-"
        needs = frozenset({"activations"})

        def explain(self, capture, target, layers, params, progress, cancel):
            raise RuntimeError("boom from a plugin")
    '''
)


@pytest.fixture(scope="module")
def boom_window(qapp, tmp_path_factory):
    """A demo window whose user plugin folder holds a plugin that raises."""
    from engine.explain.registry import registry

    folder = tmp_path_factory.mktemp("plugins")
    (folder / "boom_plugin.py").write_text(BOOM)
    patch = pytest.MonkeyPatch()
    patch.setenv("LUCIDA_USER_PLUGINS", str(folder))
    registry(reload=True)
    win = demo_window(qapp, tmp_path_factory.mktemp("settings"))
    yield win
    win.close()
    patch.undo()
    registry(reload=True)


def test_a_plugin_that_raises_gives_one_line_naming_the_log_which_holds_the_traceback(
        boom_window, qtbot):
    window = boom_window
    combo = window.panel.method_combo
    row = combo.findData("boom")
    assert row >= 0
    combo.showPopup()  # choose it as a user does: open the list, click the row
    view = combo.view()
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS,
                          check_params_cb=lambda text: "boom" in text) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=view.visualRect(view.model().index(row, 0)).center())
    line = blocker.args[0]
    assert "\n" not in line
    assert "RuntimeError: boom from a plugin" in line
    assert f"{TRACEBACK_NOTE} {log_path()}" in line
    status = window.message.text()
    assert str(log_path()) in status and "Help ▸ Show log" in status
    log = log_path().read_text()
    assert "Traceback (most recent call last)" in log
    assert 'raise RuntimeError("boom from a plugin")' in log and "boom_plugin.py" in log


def test_help_show_log_opens_the_log_file(boom_window):
    window = boom_window
    action = window.actions_by_id["show_log"]
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert action in help_menu.actions() and action.isEnabled()
    with caught_urls() as opener:
        action.trigger()
    assert opener.urls == [QUrl.fromLocalFile(str(log_path()))]
    assert log_path().is_file()


def test_a_worker_job_that_raises_is_logged_with_its_traceback(qtbot):
    worker = QtEngineWorker()
    failed = []
    worker.sig_failed.connect(lambda _i, _k, text: failed.append(text))

    def buggy_step(progress, cancel, partial):
        return {}["missing key"]

    try:
        with qtbot.waitSignal(worker.sig_failed, timeout=5000):
            worker.submit("model", buggy_step)
    finally:
        worker.stop()
    (line,) = failed
    assert line.startswith("internal error (KeyError: 'missing key')")
    assert line.endswith(f"{TRACEBACK_NOTE} {log_path()}")
    log = log_path().read_text()
    assert "internal error in model job" in log and "in buggy_step" in log
