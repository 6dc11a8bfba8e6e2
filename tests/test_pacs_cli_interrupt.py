"""Ctrl-C during ``python main.py pacs get``: exit 130, one line, nothing partial, a rerun resumes.

The CLI runs as its own process against a real Orthanc behind a forwarding proxy that holds the
transfer after about half the study, so the transfer is still under way when SIGINT arrives,
however fast or busy the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from tests.pacs_fixtures import (
    CT_SMALL,
    INTERRUPTIBLE,
    CuttingProxy,
    Orthanc,
    interrupt_after_progress,
    synthetic_study,
)

ROOT = Path(__file__).resolve().parents[1]
COUNT = 60
#: Bytes the proxy forwards before it holds the transfer: about half the study (1.2 MB), past
#: the first megabyte, which dicomweb-client reads whole before it hands over any instance in it.
HOLD_AFTER = COUNT * CT_SMALL.stat().st_size // 2


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(folder).start()
    try:
        study_uid, paths = synthetic_study(folder / "study", COUNT)
        assert all(server.upload(p) for p in paths)
        server.study = study_uid
        yield server
    finally:
        server.stop()


def _node_file(folder: Path, protocol: str, port: int) -> Path:
    body = (f'dicomweb = "http://127.0.0.1:{port}/dicom-web"' if protocol == "web"
            else f'ae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {port}\n'
                 'calling_ae = "LUCIDA"')
    path = folder / "slow.toml"
    path.write_text(f"[nodes.slow]\n{body}\ntimeout = 20\n", encoding="utf-8")
    return path


def _get(config: Path, study: str, out: Path) -> subprocess.Popen:
    env = dict(os.environ, LUCIDA_PACS_CONFIG=str(config), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "main.py", "pacs", "get", "slow", study,
                             "--out", str(out)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **INTERRUPTIBLE)


def _instances(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("protocol", ["web", "dimse"])
def test_ctrl_c_during_get_stops_cleanly_and_a_rerun_resumes(orthanc, protocol, tmp_path):
    port = orthanc.http_port if protocol == "web" else orthanc.dicom_port
    proxy = CuttingProxy(port, hold_after=HOLD_AFTER)
    try:
        config = _node_file(tmp_path, protocol, proxy.port)
        out = tmp_path / "out"
        process = _get(config, orthanc.study, out)
        code, stdout, rest = interrupt_after_progress(process, proxy)
    finally:
        proxy.close()
    assert code == 130, rest
    after = [line for line in rest.splitlines() if line.strip() and "%" not in line[:8]]
    assert len(after) == 1, rest  # one line, no traceback
    assert after[0].startswith("cancelled:") and "run the same command to resume" in after[0]
    assert "Traceback" not in rest and stdout == ""

    kept = _instances(out)
    assert 0 < len(kept) < COUNT
    assert not [p for p in kept if p.name.startswith(".")]  # no half-written part
    for path in kept:
        ds = pydicom.dcmread(path)
        assert len(ds.PixelData) == ds.Rows * ds.Columns * ds.BitsAllocated // 8

    # The same command, on a fast link, resumes: it fetches only what is missing.
    direct = orthanc.node_file(tmp_path)
    fast = tmp_path / "fast.toml"
    fast.write_text(direct.read_text(encoding="utf-8").replace(
        "[nodes.web]", "[nodes.slow]" if protocol == "web" else "[nodes.web]").replace(
        "[nodes.dimse]", "[nodes.slow]" if protocol == "dimse" else "[nodes.dimse]"),
        encoding="utf-8")
    rerun = _get(fast, orthanc.study, out)
    stdout, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert f"retrieved {COUNT - len(kept)} of {COUNT} instances" in stdout
    assert f"{len(kept)} already here" in stdout
    assert len(_instances(out)) == COUNT
