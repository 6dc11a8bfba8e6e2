"""Regenerate ``docs/images/demo-vit.png``: the demo ViT's LeGrad map in the review window.

Opens the demo study, picks the ``demo-vit`` model and the LeGrad method as a person would,
waits for the map, and saves the window. Usage: ``python tools/demo_vit_screenshot.py
[OUT.png]`` (default ``docs/images/demo-vit.png``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from screenshot_window import open_window, save_grab, wait

METHOD = "legrad"


def main(argv: list[str]) -> int:
    """Open the demo with demo-vit, show its LeGrad map, and save the window."""
    out = Path(argv[0]) if argv else Path("docs/images/demo-vit.png")
    app, win = open_window()
    win.open_demo()
    wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    win.load_model("demo-vit")
    wait(app, lambda: win.model is not None and win.model.name == "demo-vit"
         and win.result is not None and win.layer_model.heatmap is not None
         and not win.worker.busy())
    before = win.layer_model.heatmap
    combo = win.panel.method_combo
    combo.setCurrentIndex(combo.findData(METHOD))
    combo.activated.emit(combo.currentIndex())
    # A new map drawn for the chosen method, and nothing left running.
    wait(app, lambda: win.layer_model.heatmap is not None
         and win.layer_model.heatmap is not before and not win.worker.busy())
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grab(app, win, out)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
