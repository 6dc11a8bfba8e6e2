"""Running an audit: resume after a kill, unreadable images per row, outputs and the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from audit_fixtures import small_model, write_phantom_dataset

from engine.audit import runner
from engine.audit.manifest import load_dataset
from engine.audit.outputs import write_outputs
from engine.audit.runner import AuditSettings, audit_batch, plan, run_audit
from engine.audit.store import ResultStore
from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import UsageError
from engine.explain.capture import run_capture

N = 20


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    return load_dataset(write_phantom_dataset(folder / "data", N, size=40)), small_model(40)


def _settings(**kw):
    return AuditSettings(method="gradcam", batch_size=6, heat_size=16, **kw)


def _by_key(store):
    return {rec["key"]: rec for rec in store.records()}


def test_batched_captures_equal_single_image_captures(data):
    dataset, model = data
    the_plan = plan(model, _settings())
    x = torch_cat([model.preprocess(_open(r.path)) for r in dataset.rows[:4]])
    batch = run_capture(model, x, [None, 1, None, 0], the_plan.layers, True)
    assert len(batch) == 4
    for i in range(4):
        cap = batch.select(i)
        target = "top" if i in (0, 2) else [None, 1, None, 0][i]
        single = run_capture(model, x[i : i + 1], target, the_plan.layers, True)
        layer = the_plan.layers[0]
        assert cap.target == single.target
        np.testing.assert_allclose(cap.activations[layer], single.activations[layer], atol=1e-5)
        np.testing.assert_allclose(cap.gradients[layer], single.gradients[layer], atol=1e-5)


def torch_cat(xs):
    import torch

    return torch.cat(xs, 0)


def _open(path):
    from engine.studies.image import open_image

    return open_image(path)


def test_resume_after_cancel_and_crash_loses_and_duplicates_nothing(data, tmp_path, monkeypatch):
    dataset, model = data
    reference = _by_key(run_audit(dataset, model, _settings(), tmp_path / "ref"))
    assert len(reference) == N

    out = tmp_path / "run"
    token = CancelToken()
    seen = []

    def cancel_after_two_batches(fraction, message):
        seen.append(message)
        if len(seen) == 3:  # the initial report plus two finished batches
            token.cancel()

    with pytest.raises(Cancelled):
        run_audit(dataset, model, _settings(), out, progress=cancel_after_two_batches,
                  cancel=token)
    store = ResultStore(out, json.loads((out / "run.json").read_text()), resume=True)
    assert len(_by_key(store)) == 12

    # A crash in the middle of the next batch: the stored batches survive.
    real = runner.explain_batch
    calls = []

    def crash_on_second_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "explain_batch", crash_on_second_call)
    with pytest.raises(RuntimeError):
        run_audit(dataset, model, _settings(), out, resume=True)
    monkeypatch.setattr(runner, "explain_batch", real)
    # A kill mid-write leaves a torn last line and an orphan heatmap file.
    with (out / "results.jsonl").open("a") as fh:
        fh.write('{"key": "19:img00019.png", "row": 19, "pa')
    np.save(out / "heatmaps" / "batch_000999.npy", np.zeros((1, 16, 16), np.float16))

    store = run_audit(dataset, model, _settings(), out, resume=True)
    keys = [rec["key"] for rec in store.records()]
    raw_lines = (out / "results.jsonl").read_text().splitlines()
    assert len(keys) == len(set(keys)) == N == len(raw_lines)
    resumed = _by_key(store)
    assert resumed.keys() == reference.keys()
    for key, rec in reference.items():
        assert resumed[key]["pred"] == rec["pred"]
        for role, share in rec["shares"].items():
            assert resumed[key]["shares"][role] == pytest.approx(share, abs=1e-6)
    assert sum(1 for _ in store.heatmaps()) == N


def test_resume_refuses_a_different_run(data, tmp_path):
    dataset, model = data
    run_audit(dataset, model, _settings(), tmp_path)
    with pytest.raises(UsageError, match="differs"):
        run_audit(dataset, model, AuditSettings(method="gradcampp", batch_size=6,
                                                heat_size=16), tmp_path, resume=True)


def test_unreadable_images_and_bad_labels_are_reported_while_the_rest_runs(data, tmp_path):
    dataset, model = data
    folder = dataset.source.parent
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage")
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "site", "marker_box"])
        w.writerow([folder / "img00000.png", "normal", "A", ""])
        w.writerow([folder / "broken.png", "normal", "A", ""])
        w.writerow([folder / "missing.png", "normal", "A", ""])
        w.writerow([folder / "img00001.png", "giraffe", "A", ""])
        w.writerow([folder / "broken.dcm", "nodule", "B", "1 1 4 4"])
        w.writerow([folder / "img00003.png", "nodule", "B", "1 1"])
        w.writerow([folder / "img00002.png", "nodule", "B", "30 2 38 10"])
    ds = load_dataset(manifest)
    assert [p.line for p in ds.problems] == [4, 7]
    store = run_audit(ds, model, _settings(keep_identifiers=True), tmp_path / "out")
    header = json.loads((tmp_path / "out" / "run.json").read_text())
    audit = write_outputs(store, ds, model, header, tmp_path / "out", pdf=False)
    assert audit["n"] == 2
    reasons = {e["path"].rsplit("/", 1)[-1]: e["reason"] for e in audit["errors"]}
    assert set(reasons) == {"broken.png", "missing.png", "img00001.png", "broken.dcm",
                            "img00003.png"}
    assert "giraffe" in reasons["img00001.png"]
    assert "broken.png" in reasons["broken.png"]
    with (tmp_path / "out" / "audit.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7
    good = [r for r in rows if not r["error"]]
    assert [r["path"].rsplit("/", 1)[-1] for r in good] == ["img00000.png", "img00002.png"]
    assert good[0]["share_marker"] == "" and float(good[1]["share_marker"]) >= 0


def test_audit_batch_is_a_pure_function_of_its_inputs(data):
    dataset, model = data
    the_plan = plan(model, _settings())
    a_recs, a_maps = audit_batch(dataset.rows[:5], model, the_plan, dataset.roles, heat_size=16)
    b_recs, b_maps = audit_batch(dataset.rows[:5], model, the_plan, dataset.roles, heat_size=16)
    assert a_recs == b_recs
    np.testing.assert_array_equal(a_maps, b_maps)
    assert a_maps.shape == (5, 16, 16) and a_maps.dtype == np.float16
    assert float(a_maps.max()) == pytest.approx(1.0, abs=1e-3)


def test_outputs_follow_the_schema(data, tmp_path):
    dataset, model = data
    store = run_audit(dataset, model, _settings(), tmp_path)
    header = json.loads((tmp_path / "run.json").read_text())
    audit = write_outputs(store, dataset, model, header, tmp_path)
    on_disk = json.loads((tmp_path / "audit.json").read_text())
    assert on_disk == audit
    assert {"n", "model", "method", "layer", "accuracy", "roi_share", "flagged"} <= set(audit)
    assert audit["model"] == {"name": "tiny", "sha256": model.sha256}
    assert audit["method"] == "gradcam" and audit["layer"] == model.default_layer
    assert set(audit["accuracy"]) == {"overall", "by_group"}
    assert set(audit["accuracy"]["by_group"]) == {"site=A", "site=B"}
    assert set(audit["roi_share"]) == {"marker", "border"}
    marker = audit["roi_share"]["marker"]
    assert marker["n"] == N // 2  # only site-B images carry a marker box
    assert marker["ci95"][0] <= marker["mean"] <= marker["ci95"][1]
    assert set(marker["by_group"]) == {"site=B"}
    assert audit["roi_share"]["border"]["n"] == N
    for item in audit["flagged"]:
        assert set(item) == {"case", "reason"} and item["case"].startswith("case-")
    pngs = {p.name for p in (tmp_path / "mean_heatmaps").glob("*.png")}
    assert {"grid.png", "normal__all.png", "nodule__site_B.png"} <= pngs
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


def test_dicom_folder_audit_groups_by_tags_without_labels(data, tmp_path):
    from engine.demo.files import write_demo_set

    _, model = data
    write_demo_set(tmp_path / "dicoms", 4, 3, fmt="dicom", size=64)
    dataset = load_dataset(tmp_path / "dicoms")
    assert len(dataset.rows) == 4 and all(r.label is None for r in dataset.rows)
    store = run_audit(dataset, model, _settings(), tmp_path / "out")
    header = json.loads((tmp_path / "out" / "run.json").read_text())
    audit = write_outputs(store, dataset, model, header, tmp_path / "out")
    assert audit["n"] == 4 and audit["accuracy"]["overall"] is None
    assert audit["roi_share"]["border"]["n"] == 4
    groups = set(audit["roi_share"]["border"]["by_group"])
    assert groups and all("=" in g for g in groups)
    # Without labels, the per-class numbers follow the prediction.
    assert sum(s["n"] for s in audit["roi_share"]["border"]["by_class"].values()) == 4
