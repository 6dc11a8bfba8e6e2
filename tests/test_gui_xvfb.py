"""The window starts on a real X server (Xvfb) through Qt's xcb plugin, as `make run` does on a
desktop: the system libraries `.ci/system-packages` installs are enough, and it draws."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]


def test_the_window_starts_under_xvfb_with_the_xcb_plugin_and_draws(tmp_path):
    out = tmp_path / "xcb.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "HOME": str(tmp_path)}
    env.pop("DISPLAY", None)  # xvfb-run's own server, never the desktop's
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable,
                           str(ROOT / "main.py"), "--demo", "--screenshot", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    pixels = np.asarray(PILImage.open(out).convert("RGB"))
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 800
    # Not blank: a drawn window has text, an image and a heatmap, so many distinct colours.
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 200 and pixels.std() > 10
