"""Regenerate ``docs/screenshot_measure.png``: the viewer measuring pydicom's CT slice.

Usage: ``python tools/measure_screenshot.py OUT.png``. The review window shows CT_small.dcm
(pydicom's test data) with the demo model's map, an ellipse ROI with its statistics in HU and
the map's energy, a distance ruler in mm, orientation markers, the scale bar and the corners.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.data import get_testdata_file  # noqa: E402
from PySide6.QtCore import QPointF, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.app import _virtual_screen, apply_dark_theme  # noqa: E402
from gui.main_window import QtMainWindow  # noqa: E402


def _wait(app: QApplication, condition, limit: float = 180.0) -> None:
    """Process events until ``condition()`` holds; fail loudly after ``limit`` seconds."""
    end = time.monotonic() + limit
    while not condition() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    if not condition():
        raise SystemExit("timed out waiting for the window")


def main(argv: list[str]) -> int:
    """Open the CT slice, draw an ROI and a ruler, and save the window."""
    out = Path(argv[0])
    _virtual_screen()  # a desktop-sized screen: the offscreen one is 800 x 800
    app = QApplication(["lucida"])
    apply_dark_theme(app)
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.resize(1440, 900)
    win.show()
    win.open_paths([get_testdata_file("CT_small.dcm")])
    win.load_model("demo")
    _wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    win.set_roi((52, 50, 80, 74), "ellipse")
    tools = win.measure_tools
    _wait(app, lambda: tools.roi_stats.stats is not None and tools.roi_stats.stats.energy)
    tools.distance.measure(QPointF(18.0, 96.0), QPointF(110.0, 96.0))
    settle = time.monotonic() + 0.5
    _wait(app, lambda: time.monotonic() > settle)
    out.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(out))
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
