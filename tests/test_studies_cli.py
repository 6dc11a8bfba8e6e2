"""``main.py render`` and ``main.py info`` in a subprocess, as users and scripts run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from studies_fixtures import bundled

from engine.studies.image import open_image

ROOT = Path(__file__).resolve().parents[1]


def _main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("name", "options", "frame", "window"),
    [
        ("CT_small.dcm", [], 0, None),
        ("MR_small_RLE.dcm", ["--window", "600,1200"], 0, (600.0, 1200.0)),
        ("examples_ybr_color.dcm", ["--frame", "3"], 3, None),
    ],
)
def test_render_writes_what_the_api_renders(tmp_path, name, options, frame, window):
    out = tmp_path / "sub" / "out.png"
    done = _main("render", str(bundled(name)), "--out", str(out), *options)
    assert done.returncode == 0, done.stderr
    written = np.asarray(PILImage.open(out))
    expected = open_image(bundled(name)).render(frame, window=window)
    assert written.shape == expected.shape
    assert np.array_equal(written, expected)


def test_info_prints_json_for_one_and_many(tmp_path):
    done = _main("info", str(bundled("MR_small_jp2klossless.dcm")))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["modality"] == "MR" and info["photometric"] == "MONOCHROME2"
    assert (info["rows"], info["columns"], info["frames"]) == (64, 64, 1)
    assert info["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.90"
    assert info["window_presets"][0] == {
        "name": "window 1",
        "center": 600.0,
        "width": 1600.0,
        "function": "LINEAR",
    }
    done = _main("info", str(bundled("examples_ybr_color.dcm")), str(bundled("rtplan.dcm")))
    assert done.returncode == 1
    entries = json.loads(done.stdout)
    assert entries[0]["frames"] == 30 and entries[0]["is_color"] is True
    assert "no pixel data" in entries[1]["error"]
    assert "1 of 2" in done.stderr


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rtplan.dcm", "holds no image"),
        ("JPGExtended.dcm", "pip install pylibjpeg-libjpeg"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, name, expected):
    done = _main("render", str(bundled(name)), "--out", str(tmp_path / "x.png"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert name in lines[0] and expected in lines[0] and "Fix:" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_bad_frame_is_a_usage_error(tmp_path):
    path = str(bundled("MR_small.dcm"))
    done = _main("render", path, "--out", str(tmp_path / "x.png"), "--frame", "3")
    assert done.returncode == 2 and "frame 3 is out of range" in done.stderr
