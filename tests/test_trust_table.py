"""The dataset-level trust table: bootstrap intervals in closed form, outputs, resume and Ray."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import ray
from audit_fixtures import start_local_ray, write_phantom_dataset

from engine.audit.manifest import load_dataset
from engine.core.cancel import Cancelled, CancelToken
from engine.jobs.trust_table import TrustSettings, bootstrap_ci, run_trust_table
from engine.models.loaded import load_model


def test_bootstrap_interval_closed_forms():
    assert bootstrap_ci([0.5]) == (None, None)
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25)
    values = np.random.default_rng(3).normal(2.0, 1.0, 400)
    low, high = bootstrap_ci(values, seed=1)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.2 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.2 * half)
    assert bootstrap_ci(values, seed=1) == (low, high)  # seeded


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trust")
    dataset = load_dataset(write_phantom_dataset(folder / "data", 3, size=32))
    return dataset, load_model("demo")


SETTINGS = TrustSettings(methods=["gradcam"], augmentations=2, batch_size=1)


def _records(folder):
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def local(data, tmp_path_factory):
    dataset, model = data
    out = tmp_path_factory.mktemp("local")
    return out, run_trust_table(dataset, model, SETTINGS, out)


def test_the_table_is_the_mean_of_the_records_in_every_format(local):
    out, doc = local
    records = _records(out)
    assert len(records) == 3 and not doc["errors"]
    row = next(r for r in doc["table"] if r["metric"] == "deletion_auc")
    values = [r["deletion_auc"] for r in records]
    assert row["n"] == 3 and row["mean"] == pytest.approx(np.mean(values))
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert min(values) <= row["ci_low"] and row["ci_high"] <= max(values)
    with (out / "trust_table.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["metric"] for r in rows} == {r["metric"] for r in doc["table"]}
    assert float(next(r for r in rows if r["metric"] == "deletion_auc")["mean"]) == \
        pytest.approx(row["mean"])
    html = (out / "trust_table.html").read_text()
    assert "Grad-CAM" in html and f"{row['mean']:.3f}" in html
    assert "map_spearman_mean" in {r["metric"] for r in doc["table"]}


def test_a_cancelled_run_resumes_without_redoing_or_duplicating(data, local, tmp_path):
    dataset, model = data
    token = CancelToken()

    def stop_after_first(fraction, _message=""):
        if fraction >= 1 / 3:
            token.cancel()

    with pytest.raises(Cancelled):
        run_trust_table(dataset, model, SETTINGS, tmp_path, progress=stop_after_first,
                        cancel=token)
    first = _records(tmp_path)
    assert 1 <= len(first) < 3
    doc = run_trust_table(dataset, model, SETTINGS, tmp_path, resume=True)
    again = _records(tmp_path)
    assert again[:len(first)] == first and len({r["key"] for r in again}) == 3
    assert doc["table"] == local[1]["table"]


def test_ray_gives_the_local_table(data, local, tmp_path):
    dataset, model = data
    start_local_ray()
    try:
        doc = run_trust_table(dataset, model, SETTINGS, tmp_path, engine="ray",
                              model_spec="demo", workers=2)
    finally:
        ray.shutdown()
    assert doc["engine"] == "ray"
    mine = {r["key"]: r for r in _records(tmp_path)}
    theirs = {r["key"]: r for r in _records(local[0])}
    assert mine.keys() == theirs.keys()
    for key, rec in mine.items():
        for metric, value in rec.items():
            if isinstance(value, float):
                assert value == pytest.approx(theirs[key][metric], abs=1e-5), (key, metric)


def test_the_command_prints_the_table_and_writes_it(data, tmp_path, capsys):
    from engine.cli import main as cli_main

    manifest = data[0].rows[0].path.parent / "manifest.csv"
    code = cli_main(["trust", str(manifest), "--model", "demo", "--methods", "gradcam",
                     "--augmentations", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0 and "| Metric | Grad-CAM |" in printed
    assert all((tmp_path / name).is_file()
               for name in ("trust_table.csv", "trust_table.json", "trust_table.html"))


def test_integrated_gradients_after_a_cam_method_on_the_same_image(data):
    from engine.jobs.trust_table import measure_rows

    dataset, model = data
    records = measure_rows(dataset.rows[:1], model,
                           TrustSettings(methods=["gradcam", "intgrad"], augmentations=2))
    assert [r["method"] for r in records] == ["gradcam", "intgrad"]
    assert all("error" not in r and "deletion_auc" in r for r in records), records
