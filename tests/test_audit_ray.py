"""The audit on a real local Ray instance: same answers as local, faults, resume, cancel."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import ray
from audit_fixtures import start_local_ray, write_phantom_dataset

from engine.audit.aggregate import aggregate
from engine.audit.manifest import load_dataset
from engine.audit.ray_engine import run_audit_ray
from engine.audit.runner import AuditSettings, run_audit
from engine.audit.store import ResultStore
from engine.cli import main as cli_main
from engine.core.cancel import Cancelled, CancelToken
from engine.models.loaded import load_model

N = 14


@pytest.fixture(scope="module")
def local_ray():
    start_local_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    manifest = write_phantom_dataset(folder / "data", N, size=40)
    with manifest.open("a") as fh:  # an unreadable image and a missing file
        fh.write("broken.png,nodule,A,\nmissing.png,normal,B,\n")
    (manifest.parent / "broken.png").write_bytes(b"not a png")
    return load_dataset(manifest), load_model("demo")


def _settings():
    return AuditSettings(method="gradcam", batch_size=4, heat_size=16)


def _rows(store):
    return {r["key"]: r for r in store.records()}


def _close(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6), path
    else:
        assert a == b, path


def test_ray_gives_the_local_rows_and_aggregates(local_ray, data, tmp_path):
    dataset, model = data
    local = _rows(run_audit(dataset, model, _settings(), tmp_path / "local"))
    remote = _rows(run_audit_ray(dataset, model, "demo", _settings(), tmp_path / "ray",
                                 workers=2))
    assert set(local) == set(remote) and len(local) == len(dataset.rows) == N + 1
    for key in local:
        a, b = dict(local[key]), dict(remote[key])
        a.pop("heat", None), b.pop("heat", None)  # batch file names differ by batching
        _close(a, b, key)
    errors = [r for r in remote.values() if "error" in r]
    by_row = {row.index: row.path.name for row in dataset.rows}
    assert [by_row[r["row"]] for r in errors] == ["broken.png"]
    assert all("path" not in r for r in remote.values())  # de-identified by default
    assert [p.path for p in dataset.problems] == ["missing.png"]  # a manifest problem
    _close(aggregate(list(local.values()), model.classes, dataset.roles),
           aggregate(list(remote.values()), model.classes, dataset.roles))


def test_a_killed_worker_loses_and_duplicates_nothing(local_ray, data, tmp_path):
    dataset, model = data
    marker = tmp_path / "killed"
    store = run_audit_ray(dataset, model, "demo", _settings(), tmp_path / "run", workers=2,
                          fault_marker=str(marker))
    assert marker.exists()  # a worker really died mid-run
    lines = (tmp_path / "run" / "results.jsonl").read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(set(keys)) == N + 1 == len(_rows(store))
    assert len(keys) == len(set(keys))


def test_cancel_leaves_a_store_that_either_engine_resumes(local_ray, data, tmp_path):
    dataset, model = data
    token = CancelToken()
    seen = []

    def cancel_after_first_batch(fraction, message):
        seen.append(message)
        if len(seen) == 2:
            token.cancel()

    out = tmp_path / "run"
    with pytest.raises(Cancelled):
        run_audit_ray(dataset, model, "demo", _settings(), out, cancel=token,
                      progress=cancel_after_first_batch)
    header = json.loads((out / "run.json").read_text())
    partial = _rows(ResultStore(out, header, resume=True))
    assert 0 < len(partial) < N + 1
    # The local engine finishes what Ray started, and Ray skips what is done.
    run_audit(dataset, model, _settings(), out, resume=True)
    done = run_audit_ray(dataset, model, "demo", _settings(), out, resume=True)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == N + 1 == len(_rows(done))
    assert "images/s" in seen[-1] and "ETA" in seen[-1]


def test_cli_audit_with_the_ray_engine_records_it(tmp_path, data):
    dataset, _ = data
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "main.py", "audit", str(dataset.source), "--model", "demo",
         "--out", str(out), "--engine", "ray", "--workers", "2", "--batch", "4", "--no-pdf"],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 1, done.stderr  # two rows could not be audited
    audit = json.loads((out / "audit.json").read_text())
    assert audit["engine"]["name"] == "ray" and audit["engine"]["workers"] == 2
    assert audit["engine"]["ray_version"] == ray.__version__
    assert audit["n"] == N
    assert "Traceback" not in done.stderr


def test_the_demo_audit_on_ray_gives_the_local_bias_table(local_ray, tmp_path, capsys):
    common = ["audit", "--demo", "--n", "12", "--batch", "4", "--no-pdf"]
    assert cli_main([*common, "--out", str(tmp_path / "local")]) == 0
    assert cli_main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray",
                     "--workers", "2"]) == 0
    local, remote = (json.loads((tmp_path / d / "comparison.json").read_text())
                     for d in ("local", "ray"))
    _close(local, remote)
    table = (tmp_path / "local" / "comparison.md").read_text()
    assert table == (tmp_path / "ray" / "comparison.md").read_text()
    assert "`demo-biased`" in table and "marker" in table
    for name in ("demo", "demo-biased"):
        audit = json.loads((tmp_path / "ray" / name / "audit.json").read_text())
        assert audit["engine"]["name"] == "ray" and audit["n"] == 24
