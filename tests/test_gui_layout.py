"""The window fits its screen: at start, with every dock open, in compare mode, with long texts.

One test runs the window on a 1366 × 768 screen (Qt's offscreen platform, configured by file);
the others use the test session's own offscreen screen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gui_fixtures import WAIT_MS, pump

ROOT = Path(__file__).resolve().parents[1]

#: What the child process prints: the window's geometry at each step, against the screen's.
PROBE = r"""
import json, sys, tempfile, time
from pathlib import Path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication(["probe"])
from gui.main_window import QtMainWindow
settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
win = QtMainWindow(settings=settings)
win.show()
drawn = []
win.sig_map_drawn.connect(lambda *a: drawn.append(a))
win.open_demo()
end = time.monotonic() + 120
while not drawn and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
def frame():
    app.processEvents()
    g = win.frameGeometry()
    return [g.x(), g.y(), g.width(), g.height(), win.minimumSizeHint().height()]
steps = {"start": frame()}
win.open_trust_panel(); win.open_audit_view()
for _ in range(20):
    app.processEvents(); time.sleep(0.01)
steps["docks"] = frame()
win.set_compare(True)
end = time.monotonic() + 30
while not win.compare.complete() and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
steps["compare"] = frame()
win.set_compare(False)
steps["after"] = frame()
area = win.screen().availableGeometry()
print(json.dumps({"area": [area.x(), area.y(), area.width(), area.height()], **steps}))
win.close()
"""


def test_the_window_fits_a_1366_by_768_screen(tmp_path):
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0,
                                               "width": 1366, "height": 768,
                                               "logicalDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=WAIT_MS / 1000 + 120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    ax, ay, aw, ah = report["area"]
    assert (aw, ah) == (1366, 768)
    for step in ("start", "docks", "compare", "after"):
        x, y, w, h, minimum = report[step]
        assert ax <= x and ay <= y and x + w <= ax + aw and y + h <= ay + ah, (step, report)
        assert minimum <= ah, (step, report)
    # Compare mode does not grow the window, nor does leaving it.
    assert report["compare"][2:4] == report["docks"][2:4] == report["after"][2:4]


def test_the_window_opens_within_the_screen(window):
    area = window.screen().availableGeometry()
    frame = window.frameGeometry()
    assert area.contains(frame), (area, frame)
    # The side columns give way on a small screen: the image keeps the larger share.
    assert window.viewer.width() >= window.width() // 3


def test_a_long_caption_does_not_move_the_image(window, qapp):
    assert pump(qapp, lambda: window.layer_model.heatmap is not None)
    before = window.viewer.geometry()
    window.caption.set_caption("a" * 300 + ".dcm", ["CT", "x" * 400], "warning " * 60)
    pump(qapp, lambda: False, 50)
    assert window.viewer.geometry() == before
    assert window.caption.details.elided().endswith("…")
    assert window.caption.details.toolTip().endswith("x" * 400)
    window.update_caption()


def test_open_docks_do_not_force_a_height_beyond_the_screen(window, qapp):
    window.open_trust_panel()
    window.open_audit_view()
    pump(qapp, lambda: False, 100)
    area = window.screen().availableGeometry()
    assert window.minimumSizeHint().height() <= area.height()
    assert window.minimumSizeHint().width() <= area.width()
    window.docks["trust"].hide()
    window.docks["audit"].hide()


def test_compare_mode_keeps_the_window_size(window, qapp, qtbot):
    size = window.size()
    layers = [info.name for info in window.model.layers()]
    window.panel.set_compare_selection(["gradcam", "gradcampp"], layers)
    window.set_compare(True)
    assert pump(qapp, window.compare.complete)
    pump(qapp, lambda: False, 100)
    assert len(window.compare.cells) == 2 * len(layers)
    assert window.size() == size
    window.set_compare(False)
    pump(qapp, lambda: False, 50)
    assert window.size() == size
