"""Performance by group: the figures against scikit-learn and a reference ECE, the bootstrap
by patient, multi-label models, and the files one audit writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from audit_fixtures import small_model, write_phantom_dataset
from sklearn.metrics import confusion_matrix, roc_auc_score

from engine.audit.job import run_audit_job
from engine.audit.performance import (
    PerformanceSettings,
    patient_weights,
    performance,
    weighted_auroc,
)
from engine.audit.settings import AuditRequest, AuditSettings

SOFTMAX = {"output": "softmax", "rule": "argmax"}
CLASSES = ["a", "b", "c"]


def reference_ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE as Guo et al. (2017) define it, bin by bin: bin b holds b/B <= p < (b+1)/B (1.0 in
    the last); the gap of each non-empty bin is weighted by its share of the images."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (p >= lo) & ((p < hi) if b < bins - 1 else (p <= hi))
        if inside.any():
            total += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return total


def _softmax_records(n: int = 240, seed: int = 1, patients_per: int = 1):
    """Records of a 3-class softmax model with two group columns; scores tied now and then."""
    rng = np.random.default_rng(seed)
    records, patients = [], {}
    for i in range(n):
        y = int(rng.integers(0, 3))
        logits = rng.normal(0, 1, 3)
        logits[y] += 1.2
        p = np.exp(logits) / np.exp(logits).sum()
        p = np.round(p, 2 if i % 5 == 0 else 6)  # some ties, as rounded scores give
        records.append({"key": f"k{i}", "row": i, "label": CLASSES[y], "label_index": y,
                        "scores": p.tolist(), "groups": {"site": "AB"[i % 2],
                                                         "sex": "FM"[(i // 3) % 2]}})
        patients[i] = f"patient-{i // patients_per}"
    return records, patients


def _arrays(records, group=None):
    keep = [r for r in records
            if group is None or f"site={r['groups']['site']}" == group]
    y = np.array([r["label_index"] for r in keep])
    s = np.array([r["scores"] for r in keep])
    return y, s


@pytest.mark.parametrize("group", [None, "site=A"])
def test_figures_equal_scikit_learn_and_the_reference_ece(group):
    records, patients = _softmax_records()
    perf = performance(records, CLASSES, SOFTMAX, patients, PerformanceSettings(n_boot=50))
    cell = perf["overall"] if group is None else perf["by_group"][group]
    y, s = _arrays(records, group)
    pred = s.argmax(1)
    assert cell["n"] == len(y)
    for c, name in enumerate(CLASSES):
        got = cell["by_class"][name]
        tn, fp, fn, tp = confusion_matrix(y == c, pred == c, labels=[False, True]).ravel()
        assert got["auroc"]["value"] == pytest.approx(roc_auc_score(y == c, s[:, c]), abs=1e-12)
        assert got["sensitivity"]["value"] == pytest.approx(tp / (tp + fn))
        assert got["specificity"]["value"] == pytest.approx(tn / (tn + fp))
        assert got["ppv"]["value"] == pytest.approx(tp / (tp + fp))
        assert got["npv"]["value"] == pytest.approx(tn / (tn + fn))
        assert got["ece"]["value"] == pytest.approx(reference_ece(s[:, c], y == c), abs=1e-12)
        lo, hi = got["auroc"]["ci95"]
        assert lo <= got["auroc"]["value"] <= hi
    top = cell["ece_top_label"]["value"]
    assert top == pytest.approx(reference_ece(s.max(1), pred == y), abs=1e-12)


def test_the_complement_is_every_labelled_image_outside_the_group():
    records, patients = _softmax_records()
    perf = performance(records, CLASSES, SOFTMAX, patients, PerformanceSettings(n_boot=20))
    rest = perf["by_group"]["site=A"]["complement"]
    y, s = _arrays(records, "site=B")
    assert rest["n"] == len(y)
    assert rest["by_class"]["b"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(y == 1, s[:, 1]))


def test_weighted_auroc_equals_scikit_learn_with_sample_weights():
    rng = np.random.default_rng(4)
    score = np.round(rng.random(300), 1)  # many ties
    truth = rng.random(300) < score
    weights = rng.integers(0, 4, size=(5, 300)).astype(float)
    got = weighted_auroc(score, truth, weights)
    want = [roc_auc_score(truth, score, sample_weight=w) for w in weights]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_bootstrap_draws_patients_so_their_images_stay_together():
    units = np.array([0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4])
    for w in patient_weights(units, 400, np.random.default_rng(0)):
        for u in np.unique(units):
            cols = w[:, units == u]
            assert (cols == cols[:, :1]).all()  # one weight per patient in every resample
        # Each resample draws as many patients as there are: weights sum to that per patient.
        per_patient = np.stack([w[:, units == u][:, 0] for u in np.unique(units)], 1)
        assert (per_patient.sum(1) == 5).all()


def test_copies_of_a_patients_image_do_not_narrow_the_interval():
    # Every patient's image three times over: resampled by patient the intervals are those of
    # one image per patient (the same draws weigh each copy alike); by image they narrow.
    once, patients = _softmax_records(n=90)
    thrice = [{**r, "key": f"{r['key']}-{k}", "row": 3 * r["row"] + k}
              for r in once for k in range(3)]
    by_patient = {3 * i + k: patients[i] for i in patients for k in range(3)}
    settings = PerformanceSettings(n_boot=300, seed=3)
    one = performance(once, CLASSES, SOFTMAX, patients, settings)["overall"]["by_class"]
    three = performance(thrice, CLASSES, SOFTMAX, by_patient, settings)["overall"]["by_class"]
    images = performance(thrice, CLASSES, SOFTMAX, {}, settings)["overall"]["by_class"]
    for name in CLASSES:
        for metric in ("auroc", "sensitivity", "ece"):
            assert three[name][metric]["ci95"] == pytest.approx(one[name][metric]["ci95"])
    width = np.diff(three["a"]["auroc"]["ci95"])[0]
    assert np.diff(images["a"]["auroc"]["ci95"])[0] < 0.8 * width


def test_the_same_records_in_another_order_give_the_same_table():
    records, patients = _softmax_records(n=60)
    settings = PerformanceSettings(n_boot=100)
    a = performance(records, CLASSES, SOFTMAX, patients, settings)
    b = performance(records[::-1], CLASSES, SOFTMAX, patients, settings)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_multi_label_is_one_vs_rest_on_each_sigmoid_at_the_threshold():
    rng = np.random.default_rng(7)
    classes = ["effusion", "nodule", "mass", "edema"]
    truth = rng.random((160, 4)) < 0.35
    scores = np.clip(0.3 * truth + rng.random((160, 4)) * 0.7, 0, 1)
    records = []
    for i in range(160):
        label = "|".join(c for c, t in zip(classes, truth[i], strict=True) if t)
        records.append({"key": str(i), "row": i, "label": label or None, "label_index": None,
                        "scores": scores[i].tolist(), "groups": {"site": "AB"[i % 2]}})
    labelled = np.array([bool(r["label"]) for r in records])
    for threshold in (0.5, 0.6):
        point = {"output": "sigmoid", "rule": "threshold", "threshold": threshold}
        perf = performance(records, classes, point, {}, PerformanceSettings(n_boot=20))
        assert perf["n"] == labelled.sum() and "ece_top_label" not in perf["overall"]
        y, s = truth[labelled], scores[labelled]
        for c, name in enumerate(classes):
            got = perf["overall"]["by_class"][name]
            tn, fp, fn, tp = confusion_matrix(y[:, c], s[:, c] >= threshold).ravel()
            assert got["auroc"]["value"] == pytest.approx(roc_auc_score(y[:, c], s[:, c]))
            assert got["sensitivity"]["value"] == pytest.approx(tp / (tp + fn))
            assert got["specificity"]["value"] == pytest.approx(tn / (tn + fp))
            assert got["ppv"]["value"] == pytest.approx(tp / (tp + fp))
            assert got["ece"]["value"] == pytest.approx(reference_ece(s[:, c], y[:, c]))


def test_the_audit_writes_the_table_and_names_no_patient(tmp_path):
    manifest = write_phantom_dataset(tmp_path / "data", 24, size=40)
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        row["patient_id"] = f"SMITH^{i // 2:04d}"  # two images per patient
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0]])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out"
    outcome = run_audit_job(AuditRequest(dataset=str(manifest), model="tiny", out=str(out),
                                         settings=AuditSettings(method="cam", batch_size=8)),
                            model=small_model(40))
    perf = json.loads((out / "performance.json").read_text())
    assert outcome.audit["performance"]["overall"] == perf["overall"]
    assert perf["bootstrap"]["unit"] == "patient" and perf["overall"]["patients"] == 12
    assert "patient_id=" not in json.dumps(perf) and (out / "reliability.png").stat().st_size
    # The figures are those of the stored scores.
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    y = np.array([r["label_index"] for r in records])
    s = np.array([r["scores"][1] for r in records])
    assert perf["overall"]["by_class"]["nodule"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(y, s))
    with (out / "performance.csv").open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert {(r["group"], r["subset"]) for r in table} >= {("all", "all"), ("site=A", "group"),
                                                          ("site=A", "complement")}
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".jsonl"):
            assert "SMITH" not in path.read_text()
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(out / "report.pdf").pages)
    assert "Performance by group" in text and "bootstrap CI, 1000 resamples by patient" in text


def test_the_operating_point_is_argmax_or_the_cards_threshold():
    from engine.audit.performance import operating_point
    from engine.models.loaded import LoadedModel

    tiny = small_model(32)
    assert operating_point(tiny) == SOFTMAX
    sigmoid = LoadedModel.from_module(tiny.module, classes=["normal", "nodule"],
                                      input=tiny.input, output="sigmoid", threshold=0.7)
    assert operating_point(sigmoid) == {"output": "sigmoid", "rule": "threshold",
                                        "threshold": 0.7}


def test_an_audit_of_a_multi_label_model_reads_several_classes_per_label(tmp_path):
    from engine.audit.loading import label_set
    from engine.models.loaded import LoadedModel

    manifest = write_phantom_dataset(tmp_path / "data", 8, size=32)
    lines = manifest.read_text().splitlines()
    lines[1:4] = [line.replace(",normal,", ",normal|nodule,").replace(",nodule,", ",nodule|normal,")
                  for line in lines[1:4]]
    manifest.write_text("\n".join(lines) + "\n")
    tiny = small_model(32)
    model = LoadedModel.from_module(tiny.module, classes=["normal", "nodule"], input=tiny.input,
                                    output="sigmoid", threshold=0.5)
    out = tmp_path / "out"
    run_audit_job(AuditRequest(dataset=str(manifest), model="tiny", out=str(out), pdf=False,
                               settings=AuditSettings(method="cam")), model=model)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert not [r for r in records if "error" in r]
    truth = np.array([[c in label_set(r["label"], model.classes) for c in (0, 1)]
                      for r in sorted(records, key=lambda r: r["row"])])
    assert truth.sum(1).tolist() == [2, 2, 2, 1, 1, 1, 1, 1]
    s = np.array([r["scores"] for r in sorted(records, key=lambda r: r["row"])])
    perf = json.loads((out / "performance.json").read_text())
    for c, name in enumerate(model.classes):
        got = perf["overall"]["by_class"][name]
        assert got["n_pos"] == truth[:, c].sum()
        assert got["auroc"]["value"] == pytest.approx(roc_auc_score(truth[:, c], s[:, c]))


def test_a_segmentation_models_pixel_shares_are_not_scored(tmp_path):
    from torch import nn

    from engine.audit.manifest import Manifest
    from engine.audit.performance import RELIABILITY_PNG, performance_outputs
    from engine.models.loaded import LoadedModel

    tiny = small_model(32)
    seg = LoadedModel.from_module(nn.Conv2d(1, 3, 1), classes=["bg", "lung", "nodule"],
                                  input=tiny.input, task="segmentation")
    records, _ = _softmax_records(n=20)
    perf, files = performance_outputs(records, Manifest(tmp_path, [], [], [], []), seg)
    assert perf["n"] == 0 and RELIABILITY_PNG not in files
    perf, files = performance_outputs(records, Manifest(tmp_path, [], [], [], []),
                                      LoadedModel.from_module(nn.Conv2d(1, 3, 1),
                                                              classes=CLASSES, input=tiny.input))
    assert perf["n"] == 20 and RELIABILITY_PNG in files
