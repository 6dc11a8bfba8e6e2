"""Every benchmark runs to the end in smoke mode, in its own process, as ``make bench`` runs it.

The scripts are found by glob, so a new benchmark is covered from the day it lands. Smoke mode
(tiny sizes, goals printed but never judged) keeps a script from rotting between real runs; the
PACS and Ray benchmarks start the Orthanc, dcmtk and Ray that ``make venv`` installs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted((ROOT / "bench").glob("bench_*.py"))


def test_every_benchmark_is_found():
    assert len(BENCHES) >= 11 and ROOT / "bench" / "bench_volumes.py" in BENCHES


@pytest.mark.parametrize("script", BENCHES, ids=lambda path: path.stem)
def test_benchmark_runs_in_smoke_mode(script):
    run = subprocess.run([sys.executable, "bench/run_all.py", "--smoke", script.stem], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"== {script.stem} ==" and len(lines) > 1, run.stdout


def test_benchmarks_run_apart_so_one_cannot_change_the_next(tmp_path):
    # Two stand-in benchmarks: the first patches a module and sets a variable, the second
    # fails if it sees either (as one benchmark's patched load_model once broke the next).
    bench = tmp_path / "bench"
    bench.mkdir()
    for name in ("run_all.py", "smoke.py"):
        (bench / name).write_text((ROOT / "bench" / name).read_text())
    (bench / "bench_a.py").write_text(
        "import json, os\njson.dumps = None\nos.environ['LEAK'] = '1'\nprint('a ran')\n")
    (bench / "bench_b.py").write_text(
        "import json, os, sys\nprint('b ran')\n"
        "sys.exit(1 if json.dumps is None or 'LEAK' in os.environ else 0)\n")
    (bench / "bench_c.py").write_text("raise SystemExit(3)\n")
    run = subprocess.run([sys.executable, str(bench / "run_all.py")], capture_output=True,
                         text=True, timeout=120)
    assert "a ran" in run.stdout and "b ran" in run.stdout
    assert "bench_c failed (exit code 3)" in run.stdout
    assert run.stdout.splitlines()[-1] == "failed: bench_c" and run.returncode == 1
