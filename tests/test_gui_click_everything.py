"""Click everything: every enabled action and every enabled button of every dock, as a user would.

The window is opened on the demo study and then on the demo CT volume. Each enabled menu action
is triggered (``QAction.trigger``) and each enabled, visible button in each dock clicked
(``qtbot.mouseClick``); modal dialogs are answered "Cancel" by a fixture, and windows an action
opens are closed again. The test fails on any exception raised in a slot (pytest-qt), any error
line the window or the PACS dock emits, and any internal error the worker reports.
"""

from __future__ import annotations

import pytest
import shiboken6
from gui_fixtures import caught_urls, demo_window, pump
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDialog,
    QFileDialog,
    QInputDialog,
    QMessageBox,
    QWidget,
)

from engine.core.resources import RESOURCES

DEMO_CT = RESOURCES / "studies" / "demo-ct"
#: Actions left alone, with why: they end the session under test.
SKIP_ACTIONS = {"&Quit"}
#: Longest wait for the work one click started (a 2-core machine, busy).
SETTLE_MS = 120_000


@pytest.fixture
def answered(monkeypatch, tmp_path):
    """Every modal dialog is answered as a cautious user would: Cancel, No, nothing chosen.

    The user guide is built (a one-page site), as `make run` leaves it.
    """
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>Lucida</h1>")
    monkeypatch.setenv("LUCIDA_DOCS_SITE", str(site))
    rejected = QDialog.DialogCode.Rejected
    for cls in (QDialog, QMessageBox, QFileDialog, QInputDialog):
        monkeypatch.setattr(cls, "exec", lambda self, *a: rejected)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([], ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    for name in ("question", "warning", "information", "critical"):
        monkeypatch.setattr(QMessageBox, name,
                            lambda *a, **k: QMessageBox.StandardButton.Cancel)
    monkeypatch.setattr(QMessageBox, "about", lambda *a, **k: None)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("", False))
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("", False))
    with caught_urls(("file", "http", "https")) as urls:
        yield urls


def _menu_actions(window) -> list:
    """Every action reachable from the menu bar, submenus included, in menu order."""
    found, stack = [], [a.menu() for a in window.menuBar().actions() if a.menu()]
    while stack:
        menu = stack.pop(0)
        for action in menu.actions():
            if action.menu() is not None:
                stack.append(action.menu())
            elif not action.isSeparator():
                found.append(action)
    return found


def _settle(qapp, window, errors: list) -> None:
    """Let the work a click started finish (the worker idle), then collect any failure line."""
    assert pump(qapp, lambda: not window.worker.busy(), timeout_ms=SETTLE_MS), \
        "the worker never became idle"
    qapp.processEvents()
    errors.extend(line for line in _dock_failures(window) if line not in errors)


def _dock_failures(window) -> list[str]:
    """Failure lines a dock shows in its own status line (the audit view's, say)."""
    lines = []
    for dock in window.docks.values():
        status = getattr(dock.widget(), "status", None)
        text = status.text() if hasattr(status, "text") else ""
        if "failed" in text.lower():
            lines.append(text)
    return lines


def _close_new_windows(before: set) -> None:
    for widget in QApplication.topLevelWidgets():
        if widget not in before and widget.isVisible() and isinstance(widget, QWidget):
            widget.close()


def _click_everything(qapp, qtbot, window, errors: list) -> list[str]:
    done = []
    before = set(QApplication.topLevelWidgets())
    for action in _menu_actions(window):
        # A menu rebuilt by an earlier action (Open recent) drops its old actions.
        if not shiboken6.isValid(action) or not action.isEnabled() \
                or action.text() in SKIP_ACTIONS:
            continue
        text, was = action.text(), action.isChecked()
        action.trigger()
        _settle(qapp, window, errors)
        _close_new_windows(before)
        done.append(text)
        assert not errors, f"{text!r}: {errors}"
        if shiboken6.isValid(action) and action.isCheckable() and action.isChecked() != was:
            action.trigger()  # back again: a mode or hidden dock changes what later clicks mean
            _settle(qapp, window, errors)
            assert not errors, f"{text!r} toggled back: {errors}"
    for name, dock in window.docks.items():
        if dock.isHidden():
            continue
        dock.raise_()  # its tab brought to the front, as a user clicks it
        qapp.processEvents()
        # The dock's contents; its title bar's own close and float buttons are the layout's.
        for button in dock.widget().findChildren(QAbstractButton):
            if not (shiboken6.isValid(button) and button.isVisible() and button.isEnabled()):
                continue
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            _settle(qapp, window, errors)
            _close_new_windows(before)
            done.append(f"{name}: {button.text() or button.toolTip()}")
            assert not errors, f"{name} button {button.text()!r}: {errors}"
    return done


@pytest.fixture
def watched(qapp, tmp_path, answered):
    window = demo_window(qapp, tmp_path)
    errors: list[str] = []
    window.sig_error.connect(errors.append)
    pacs = getattr(window, "pacs", None)
    if pacs is not None and hasattr(pacs, "sig_error"):
        pacs.sig_error.connect(errors.append)
    yield window, errors
    window.close()


def test_every_action_and_button_on_the_demo(qapp, qtbot, watched):
    window, errors = watched
    done = _click_everything(qapp, qtbot, window, errors)
    assert len(done) > 30, done
    assert "Internal error" not in window.message.text()


def test_every_action_and_button_on_a_volume(qapp, qtbot, watched):
    window, errors = watched
    # The user picks the 3-D model, then opens the series: it opens as a volume.
    window.load_model("demo-3d")
    assert pump(qapp, lambda: window.model is not None and window.model.name == "demo-3d")
    window.files.open_paths([str(DEMO_CT / "chest_ct")])
    assert pump(qapp, lambda: getattr(window.image, "kind", None) == "volume")
    assert pump(qapp, lambda: window.volumes.heat is not None)
    _settle(qapp, window, errors)
    # Before the series opened, the 3-D model rightly refused the demo's 2-D image in one line.
    assert all("reads volumes, not 2-D images" in e for e in errors), errors
    errors.clear()
    done = _click_everything(qapp, qtbot, window, errors)
    assert len(done) > 30, done
    assert "Internal error" not in window.message.text()
