"""Regenerate ``docs/screenshot_compare_models.png``: demo against demo-biased on one case.

Usage: ``python tools/compare_models_screenshot.py OUT.png [FILE]`` with ``FILE`` a name in the
demo study (default: ``phantom_0002.dcm``, a nodule case from the site whose images carry the
marker the biased model learned).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.app import apply_dark_theme  # noqa: E402
from gui.main_window import DEMO_STUDY, QtMainWindow  # noqa: E402


def _wait(app: QApplication, condition, limit: float = 180.0) -> None:
    """Process events until ``condition()`` holds; fail loudly after ``limit`` seconds."""
    end = time.monotonic() + limit
    while not condition() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    if not condition():
        raise SystemExit("timed out waiting for the window")


def main(argv: list[str]) -> int:
    """Open the demo case, compare demo with demo-biased, and save the comparison view."""
    out = Path(argv[0])
    name = argv[1] if len(argv) > 1 else "phantom_0002.dcm"
    app = QApplication(["lucida"])
    apply_dark_theme(app)
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.resize(1200, 800)
    win.show()
    win.open_paths([str(DEMO_STUDY / name)])
    win.load_model("demo")
    _wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    compare = win.model_compare
    compare.compare("demo-biased")
    _wait(app, lambda: len(compare.results) == 2 and compare.view.maps_drawn())
    compare.view.resize(1100, 640)
    settle = time.monotonic() + 0.5
    _wait(app, lambda: time.monotonic() > settle)
    out.parent.mkdir(parents=True, exist_ok=True)
    compare.view.grab().save(str(out))
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
