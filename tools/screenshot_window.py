"""Shared set-up for the scripts that regenerate the README's screenshots.

Importing this module chooses Qt's offscreen platform (unless a display platform is already
set) and puts the repository root on ``sys.path``, so a script run as
``python tools/NAME_screenshot.py`` can import ``gui``. It then opens the review window with
throw-away settings, waits on conditions while processing events, and saves widget grabs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from gui.app import _virtual_screen, apply_dark_theme  # noqa: E402
from gui.main_window import QtMainWindow  # noqa: E402

#: Size of the review window in every screenshot (the README's desktop size).
WINDOW_SIZE = (1440, 900)
#: Seconds a script waits for the window before it gives up.
WAIT_LIMIT = 180.0
#: Seconds of event processing before a grab, so late layout passes settle.
SETTLE = 0.5


def open_window(scratch: Path | None = None) -> tuple[QApplication, QtMainWindow]:
    """Start the dark-themed application and show a review window with fresh settings.

    Parameters
    ----------
    scratch : Path or None
        Folder for the window's settings file; a new temporary folder when None. The
        settings are never the user's, so a screenshot shows the default layout.

    Returns
    -------
    tuple of (QApplication, QtMainWindow)
        The application (needed by :func:`wait`) and the shown window of
        :data:`WINDOW_SIZE`.
    """
    # Without a display the offscreen screen is 800 x 800 and caps the window's size.
    _virtual_screen()
    app = QApplication(["lucida"])
    apply_dark_theme(app)
    folder = scratch if scratch is not None else Path(tempfile.mkdtemp())
    settings = QSettings(str(folder / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.resize(*WINDOW_SIZE)
    win.show()
    return app, win


def wait(app: QApplication, condition: Callable[[], object], limit: float = WAIT_LIMIT) -> None:
    """Process events until ``condition()`` is true.

    Parameters
    ----------
    app : QApplication
        The application whose events are processed.
    condition : callable
        Called with no arguments; its truth ends the wait.
    limit : float
        Seconds to wait at most.

    Raises
    ------
    SystemExit
        When ``condition()`` is still false after ``limit`` seconds.
    """
    end = time.monotonic() + limit
    while not condition() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    if not condition():
        raise SystemExit("timed out waiting for the window")


def save_grab(app: QApplication, widget: QWidget, out: Path) -> None:
    """Let the layout settle for :data:`SETTLE` seconds, then save ``widget`` as a PNG.

    Parameters
    ----------
    app : QApplication
        The application whose events are processed while settling.
    widget : QWidget
        The shown widget to grab.
    out : Path
        The PNG to write; its folder is created when missing.

    Raises
    ------
    SystemExit
        When the image cannot be written.
    """
    settle = time.monotonic() + SETTLE
    wait(app, lambda: time.monotonic() > settle)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(out)):
        raise SystemExit(f"error: could not write {out}; check that its folder is writable")
