"""Regenerate ``docs/verdict.png``: the review window with the reviewer's verdict given.

Opens the demo, clicks *Disagree* in the verdict box beside the prediction, types a comment,
and saves the window. Usage: ``python tools/verdict_screenshot.py [OUT.png]`` (default
``docs/verdict.png``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from screenshot_window import open_window, save_grab, wait

#: What the reviewer writes in the example.
COMMENT = "Map sits on the nodule, but the marker in the corner needs a second look"


def main(argv: list[str]) -> int:
    """Open the demo, give a verdict with the real widgets, and save the window."""
    out = Path(argv[0]) if argv else Path("docs/verdict.png")
    app, win = open_window()
    win.open_demo()
    wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    box = win.panel.verdict_box
    QTest.mouseClick(box.buttons["disagree"], Qt.MouseButton.LeftButton)
    QTest.keyClicks(box.comment, COMMENT)
    wait(app, lambda: win.verdict is not None and win.verdict.comment == COMMENT)
    save_grab(app, win, out)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
