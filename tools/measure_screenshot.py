"""Regenerate ``docs/screenshot_measure.png``: the viewer measuring pydicom's CT slice.

Usage: ``python tools/measure_screenshot.py OUT.png``. The review window shows CT_small.dcm
(pydicom's test data) with the demo model's map, an ellipse ROI with its statistics in HU and
the map's energy, a distance ruler in mm, orientation markers, the scale bar and the corners.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydicom.data import get_testdata_file
from PySide6.QtCore import QPointF
from screenshot_window import open_window, save_grab, wait


def main(argv: list[str]) -> int:
    """Open the CT slice, draw an ROI and a ruler, and save the window."""
    out = Path(argv[0])
    app, win = open_window()
    win.open_paths([get_testdata_file("CT_small.dcm")])
    win.load_model("demo")
    wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    win.set_roi((52, 50, 80, 74), "ellipse")
    tools = win.measure_tools
    wait(app, lambda: tools.roi_stats.stats is not None and tools.roi_stats.stats.energy)
    tools.distance.measure(QPointF(18.0, 96.0), QPointF(110.0, 96.0))
    save_grab(app, win, out)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
