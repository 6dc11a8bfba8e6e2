"""Regenerate ``docs/trust_panel.png``: the review window with a lesion ROI and trust metrics.

Usage: ``python tools/trust_panel_screenshot.py OUT.png [box|ellipse] [demo|demo-biased] [FILE]``
with ``FILE`` a name in the demo study (default: the study's first nodule case).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from screenshot_window import open_window, save_grab, wait

from gui.main_window import DEMO_STUDY

#: Pixels added around the lesion box so the ROI outline does not hide the lesion.
ROI_PAD = 4
#: Width of the trust dock in the screenshot.
TRUST_SHOT_WIDTH = 430


def main(argv: list[str]) -> int:
    """Open the demo, draw an ROI on the lesion, compute trust metrics and save the window."""
    out = Path(argv[0])
    shape = argv[1] if len(argv) > 1 else "ellipse"
    model = argv[2] if len(argv) > 2 else "demo"
    name = argv[3] if len(argv) > 3 else None

    app, win = open_window()
    if name:
        win.open_paths([str(DEMO_STUDY / name)])
        win.load_model(model)
    else:
        win.open_demo()
    wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)

    with open(DEMO_STUDY / "manifest.csv", newline="") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    x0, y0, x1, y1 = (int(v) for v in rows[win.image.path.name]["lesion_box"].split())
    win.set_roi((x0 - ROI_PAD, y0 - ROI_PAD, x1 + ROI_PAD, y1 + ROI_PAD), shape)
    win.open_trust_panel()
    wait(app, lambda: "pointing_hit" in (win.trust_panel.metrics or {}))
    # Wide enough that the figures and their family headings read without wrapping much.
    win.docks["explain"].hide()
    win.resizeDocks([win.docks["trust"]], [TRUST_SHOT_WIDTH], Qt.Orientation.Horizontal)
    app.processEvents()
    save_grab(app, win, out)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
