"""Regenerate ``docs/screenshot_compare_models.png``: demo against demo-biased on one case.

Usage: ``python tools/compare_models_screenshot.py OUT.png [FILE]`` with ``FILE`` a name in the
demo study (default: ``phantom_0002.dcm``, a nodule case from the site whose images carry the
marker the biased model learned).
"""

from __future__ import annotations

import sys
from pathlib import Path

from screenshot_window import open_window, save_grab, wait

from gui.main_window import DEMO_STUDY


def main(argv: list[str]) -> int:
    """Open the demo case, compare demo with demo-biased, and save the comparison view."""
    out = Path(argv[0])
    name = argv[1] if len(argv) > 1 else "phantom_0002.dcm"
    app, win = open_window()
    win.open_paths([str(DEMO_STUDY / name)])
    win.load_model("demo")
    wait(app, lambda: win.layer_model.heatmap is not None and win.result is not None)
    compare = win.model_compare
    compare.compare("demo-biased")
    wait(app, lambda: len(compare.results) == 2 and compare.view.maps_drawn())
    compare.view.resize(1100, 640)
    save_grab(app, compare.view, out)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
