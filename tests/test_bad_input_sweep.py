"""Regression tests from the bad-input sweep: each bad input gets one stderr line, the right exit
code and no half-written output (subprocess CLI runs, as a user would see them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "models" / "demo"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def assert_one_line(proc, rc: int, *needles: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == rc, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantoms")
    proc = cli("demo-data", "--out", str(out), "--n", "4", "--format", "dicom", "--size", "64")
    assert proc.returncode == 0, proc.stderr
    return out


def _nan_card(tmp_path: Path, body: str) -> Path:
    (tmp_path / "demo.safetensors").write_bytes((DEMO / "demo.safetensors").read_bytes())
    (tmp_path / "net.py").write_text(body)
    card = (DEMO / "card.toml").read_text().replace("lucida:demo_cnn", "python:net.py:build")
    (tmp_path / "card.toml").write_text(card)
    return tmp_path / "card.toml"


NAN_NET = """
from engine.demo.arch import DemoCNN
class NaNNet(DemoCNN):
    def forward(self, x):
        return super().forward(x) * float("nan")
def build(**kw):
    return NaNNet(**kw)
"""


def test_bad_report_format_fails_before_writing(phantoms, tmp_path):
    out = tmp_path / "out"
    proc = cli("explain", str(phantoms / "phantom_0001.dcm"), "--model", "demo",
               "--report", "docx", "--out", str(out))
    assert_one_line(proc, 2, "docx", "Fix:")
    assert not out.exists() or not any(out.rglob("*"))


def test_card_builder_that_raises_is_a_model_error(tmp_path):
    card = _nan_card(tmp_path, "def build(**kw):\n    raise ValueError('boom')\n")
    proc = cli("layers", "--model", str(card), "--trust-model")
    assert_one_line(proc, 2, str(card), "boom", "Fix:")
    assert "internal error" not in proc.stderr


def test_random_bytes_pt_names_the_cause_not_torch_preamble(tmp_path):
    bad = tmp_path / "random.pt"
    bad.write_bytes(bytes(range(256)) * 20)
    proc = cli("layers", "--model", str(bad))
    assert_one_line(proc, 2, str(bad), "Fix:")
    assert "Weights only load failed" not in proc.stderr


def test_evaluate_nan_model_fails_the_images_instead_of_scoring_them(phantoms, tmp_path):
    card = _nan_card(tmp_path, NAN_NET)
    proc = cli("evaluate", str(phantoms / "manifest.csv"), "--model", str(card),
               "--trust-model")
    assert_one_line(proc, 1, "4 of 4")
    assert '"n": 0' in proc.stdout and "NaN or infinite" in proc.stdout


def test_audit_nan_model_skips_the_images(phantoms, tmp_path):
    card = _nan_card(tmp_path, NAN_NET)
    out = tmp_path / "audit"
    proc = cli("audit", str(phantoms / "manifest.csv"), "--model", str(card), "--trust-model",
               "--out", str(out), "--no-pdf")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "4 image(s) could not be audited" in proc.stderr
    assert "NaN" not in (out / "results.jsonl").read_text().replace("NaN or infinite", "")


def test_demo_data_help_shows_a_plain_percent():
    proc = cli("demo-data", "--help")
    assert proc.returncode == 0
    assert "95% of images" in proc.stdout and "%%" not in proc.stdout


def test_render_to_an_unknown_format_writes_nothing(tmp_path):
    study = ROOT / "resources" / "studies" / "demo" / "phantom_0001.dcm"
    proc = cli("render", str(study), "--out", str(tmp_path / "sub" / "x.xyz"))
    assert_one_line(proc, 2, "x.xyz", "Fix:")
    assert not (tmp_path / "sub").exists()


def test_rendered_file_gets_ordinary_permissions(tmp_path):
    import os
    import stat

    study = ROOT / "resources" / "studies" / "demo" / "phantom_0001.dcm"
    out = tmp_path / "x.png"
    proc = cli("render", str(study), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
