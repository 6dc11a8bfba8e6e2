"""Decode processes: the same batches as in-process decoding, faults, abandoned runs, scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from audit_fixtures import small_model, write_phantom_dataset

from engine.audit import decode_pool
from engine.audit.loading import InputRecipe, load_batch
from engine.audit.manifest import load_dataset
from engine.audit.runner import AuditSettings, run_audit

ROOT = Path(__file__).resolve().parents[1]
N, STEP = 30, 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decode") / "data"
    manifest = write_phantom_dataset(folder, N, size=40)
    (folder / "img00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # a per-row error
    dataset, model = load_dataset(manifest), small_model(40)
    batches = [dataset.rows[i : i + STEP] for i in range(0, N, STEP)]
    assert decode_pool.wait_ready(1)
    yield dataset, model, batches
    decode_pool.close()


def _assert_same(got, rows, recipe):
    ref = load_batch(rows, recipe)
    assert got.rows == ref.rows
    assert got.errors == ref.errors
    assert got.ready == ref.ready
    assert got.intended_use == ref.intended_use
    assert torch.equal(got.x, ref.x)


def test_processes_decode_exactly_what_this_process_decodes(data):
    dataset, model, batches = data
    recipe = InputRecipe.from_model(model)
    counts = {}
    got = list(decode_pool.decoded(batches, recipe, 1, counts))
    # Only the first batch is read here: the process already runs the next ones.
    assert counts == {"processes": len(batches) - 1, "here": 1}
    assert "cannot" in got[0].errors[3]["error"]
    for loaded, rows in zip(got, batches, strict=True):
        _assert_same(loaded, rows, recipe)


def test_a_killed_decode_process_loses_no_batch(data):
    dataset, model, batches = data
    recipe = InputRecipe.from_model(model)
    assert decode_pool.wait_ready(1)
    counts = {}
    loads = decode_pool.decoded(batches, recipe, 1, counts)
    got = [next(loads)]
    (pid,) = decode_pool.process_ids()
    os.kill(pid, signal.SIGKILL)
    got += list(loads)
    assert len(got) == len(batches)
    assert counts["here"] >= len(batches) - 2  # the rest came back before the kill
    for loaded, rows in zip(got, batches, strict=True):
        _assert_same(loaded, rows, recipe)
    # The next audit starts a new process.
    assert decode_pool.wait_ready(1)
    assert decode_pool.process_ids() != [pid]


def test_an_abandoned_run_leaves_nothing_for_the_next(data):
    dataset, model, batches = data
    recipe = InputRecipe.from_model(model)
    assert decode_pool.wait_ready(1)
    first = decode_pool.decoded(batches, recipe, 1)
    next(first)
    first.close()  # cancelled: two batches are still on their way back
    counts = {}
    backwards = batches[::-1]
    got = list(decode_pool.decoded(backwards, recipe, 1, counts))
    assert counts["processes"] == len(batches) - 1
    for loaded, rows in zip(got, backwards, strict=True):
        _assert_same(loaded, rows, recipe)


def test_audit_rows_and_maps_do_not_depend_on_decode_processes(data, tmp_path):
    dataset, model, _ = data
    assert decode_pool.wait_ready(1)
    stores = {
        n: run_audit(dataset, model, AuditSettings(method="gradcam", batch_size=STEP,
                                                   heat_size=16, decode_processes=n),
                     tmp_path / str(n))
        for n in (0, 1)
    }
    records = {n: list(s.records()) for n, s in stores.items()}
    assert len(records[0]) == N and records[0] == records[1]
    maps = {n: [m for _, m in s.heatmaps()] for n, s in stores.items()}
    assert len(maps[0]) == N - 1
    for a, b in zip(maps[0], maps[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_script_without_a_main_guard_runs_once(data, tmp_path):
    dataset, _, _ = data
    marker = tmp_path / "runs.txt"
    script = tmp_path / "audit_script.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from audit_fixtures import small_model
        from engine.audit import decode_pool
        from engine.audit.manifest import load_dataset
        from engine.audit.runner import AuditSettings, run_audit

        with open({str(marker)!r}, "a") as fh:
            fh.write("run\\n")
        assert decode_pool.wait_ready(1)
        store = run_audit(load_dataset({str(dataset.source)!r}), small_model(40),
                          AuditSettings(method="gradcam", batch_size={STEP},
                                        decode_processes=1),
                          {str(tmp_path / "out")!r})
        print(len(list(store.records())))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(N)]
    assert marker.read_text() == "run\n"


def test_idle_processes_stop(data, monkeypatch):
    monkeypatch.setattr(decode_pool, "IDLE_S", 0.2)
    assert decode_pool.wait_ready(1)
    (pid,) = decode_pool.process_ids()
    for _ in range(100):
        if not decode_pool.process_ids() and not _exists(pid):
            break
        time.sleep(0.1)
    assert decode_pool.process_ids() == []
    assert not _exists(pid)  # ended and reaped, not left as a zombie


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
