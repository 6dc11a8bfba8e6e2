"""Regenerate ``docs/images/multilabel.png``: a 14-class multi-label model in the window.

Writes the multi-label demo model (:mod:`engine.demo.multilabel`) into a scratch folder, opens
the demo study with it, sets the finding threshold in the panel as a person would, and saves
the window. Usage: ``python tools/multilabel_screenshot.py [OUT.png]`` (default
``docs/images/multilabel.png``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from screenshot_window import open_window, save_grab, wait

from engine.demo.multilabel import write_multilabel_demo

#: The threshold typed into the panel (the card says 0.5).
THRESHOLD = "0.40"


def main(argv: list[str]) -> int:
    """Open the demo with the multi-label model, set the threshold, and save the window."""
    out = Path(argv[0]) if argv else Path("docs/images/multilabel.png")
    folder = Path(tempfile.mkdtemp()) / "models" / "chest14"
    write_multilabel_demo(folder)
    app, win = open_window()
    win.open_demo()
    wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    win.load_model(str(folder))
    wait(app, lambda: win.model is not None and win.model.output == "sigmoid"
         and win.result is not None and len(win.result.classes) == 14
         and win.layer_model.heatmap is not None and not win.worker.busy())
    edit = win.panel.prediction_table.threshold.lineEdit()
    QTest.mouseClick(edit, Qt.MouseButton.LeftButton)
    edit.selectAll()
    QTest.keyClicks(edit, THRESHOLD)
    QTest.keyClick(edit, Qt.Key.Key_Return)
    wait(app, lambda: win.panel.finding_threshold() == float(THRESHOLD))
    win.viewer.setFocus()  # the box shows its value, not a selection
    # The Explanation dock as tall as its contents, as a user drags its edge.
    win.resizeDocks([win.docks["explain"], win.docks["overlay"]], [700, 150],
                    Qt.Orientation.Vertical)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grab(app, win, out)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
