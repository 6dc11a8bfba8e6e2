"""Shortcut discovery: planted clusters, enrichment against scipy, the body mask, the demo."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from audit_fixtures import small_model, write_phantom_dataset
from scipy.stats import fisher_exact
from sklearn.metrics import adjusted_rand_score

import engine.models.loaded
from engine.audit.body_mask import body_mask, outside_shares
from engine.audit.discovery import adjust, discover, finding_lines
from engine.cli import main as cli_main
from engine.demo.heatmaps import planted_store

CLASSES = ("normal", "nodule")


def _found_labels(result: dict, n: int) -> np.ndarray:
    """The cluster discovery gave each planted image (records are keyed ``i:synthetic...``)."""
    (entry,) = result["classes"]
    by_case = {case: cl["id"] for cl in entry["clusters"] for case in cl["members"]}
    return np.array([by_case[f"{i}:synthetic{i:06d}"] for i in range(n)])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """600 maps in three planted clusters; site B is 90% of the first, 30% of the others."""
    store, labels, sites = planted_store(tmp_path_factory.mktemp("planted"), 600, 3,
                                         site_b=(0.9, 0.3, 0.3), seed=3, batch=128)
    return store, labels, sites, discover(store, CLASSES).clusters


def test_planted_clusters_are_recovered_and_the_eigengap_counts_them(planted):
    store, labels, _, result = planted
    (entry,) = result["classes"]
    assert entry["k_source"] == "eigengap" and entry["k_suggested"] == 3 == entry["k"]
    assert adjusted_rand_score(labels, _found_labels(result, len(labels))) >= 0.9
    # Asked for three, from a different start: the same partition.
    asked = discover(store, CLASSES, k=3).clusters
    assert asked["classes"][0]["k_source"] == "user"
    assert adjusted_rand_score(labels, _found_labels(asked, len(labels))) >= 0.9
    # The first planted cluster is the blob at the top right: its excess peak is there.
    first = max(entry["clusters"], key=lambda cl: np.mean(
        labels[[int(c.split(":")[0]) for c in cl["members"]]] == 0))
    row, col = first["difference"]["excess_peak"]
    assert row < 0.3 and col > 0.7
    # planted_store puts exactly the first cluster's saliency all outside the body: the
    # per-cluster and per-group shares are means of the records' shares.
    assert first["outside_body"]["mean"] > 0.9
    outside = np.array([rec["outside_body"] for rec in store.records()])
    sites = np.array([rec["groups"]["site"] for rec in store.records()])
    for site in ("A", "B"):
        summary = result["outside_body"]["by_group"][f"site={site}"]
        assert summary["n"] == (sites == site).sum()
        assert summary["mean"] == pytest.approx(outside[sites == site].mean())
    assert result["outside_body"]["overall"]["mean"] == pytest.approx(outside.mean())
    assert len(first["exemplars"]["central"]) == 5 and first["exemplars"]["atypical"]


def test_enrichment_and_p_values_equal_scipy_and_bh_over_every_test(planted):
    _, _, sites, result = planted
    (entry,) = result["classes"]
    n = len(sites)
    reference = []  # every (cluster, site value) test, with scipy's p
    for cl in entry["clusters"]:
        rows = np.array([int(c.split(":")[0]) for c in cl["members"]])
        for value in ("A", "B"):
            a = int((sites[rows] == value).sum())
            in_class = int((sites == value).sum())
            table = [[a, len(rows) - a], [in_class - a, n - len(rows) - (in_class - a)]]
            res = fisher_exact(table, alternative="greater")
            enrichment = (a / len(rows)) / (in_class / n)
            reference.append((cl["id"], value, enrichment, res.statistic, res.pvalue))
    # Benjamini–Hochberg by hand: p × m / rank, then the running minimum from the largest.
    p = np.array([r[4] for r in reference])
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    bh = np.empty_like(p)
    bh[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    reported = {(cl["id"], e["value"]): e for cl in entry["clusters"] for e in cl["enriched"]}
    assert reported, "some cluster must be enriched for a site"
    for (cl_id, value, enrichment, odds, pvalue), q in zip(reference, bh, strict=True):
        if enrichment <= 1.0:
            assert (cl_id, value) not in reported
            continue
        e = reported[(cl_id, value)]
        assert e["attribute"] == "site" and e["source"] == "manifest"
        assert e["enrichment"] == pytest.approx(enrichment, rel=1e-12)
        assert e["odds_ratio"] == pytest.approx(odds, rel=1e-12)
        assert e["p"] == pytest.approx(pvalue, rel=1e-12)
        assert e["p_adjusted"] == pytest.approx(q, rel=1e-9)
        assert e["significant"] == (q < result["alpha"])
    # The site-B cluster is found, far beyond chance, and the command line's summary says so.
    best = max((e for (_, v), e in reported.items() if v == "B"), key=lambda e: e["enrichment"])
    assert best["enrichment"] > 1.5 and best["significant"]
    lines = [line for line in finding_lines(result) if "site=B" in line]
    assert any(f"site=B ×{best['enrichment']:.2f} (p adj {best['p_adjusted']:.2g})" in line
               for line in lines)


def test_benjamini_hochberg_on_a_hand_case():
    # Sorted: 0.005, 0.01, 0.03, 0.04 -> × 4 / rank: 0.02, 0.02, 0.04, 0.04 (already monotone).
    assert adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # A later smaller value pulls earlier ones down: 0.02 × 3 / 1 = 0.06 > 0.03 × 3 / 2.
    assert adjust([0.02, 0.03, 0.9]) == pytest.approx([0.045, 0.045, 0.9])


def _body_image(size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A chest-like image: a bright ellipse with two dark lungs, a marker outside, noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((yy - 0.55) / 0.4) ** 2 + ((xx - 0.5) / 0.35) ** 2 <= 1.0
    img = np.where(body, 0.6, 0.05)
    for cx in (0.38, 0.62):
        img[((yy - 0.5) / 0.2) ** 2 + ((xx - cx) / 0.08) ** 2 <= 1.0] = 0.12
    img[4:16, 110:122] = 0.95  # a marker in the top-right corner, off the body
    img += np.random.default_rng(0).normal(0.0, 0.03, img.shape)
    return img.astype(np.float32), body


def test_body_mask_finds_the_body_with_its_lungs_and_without_the_marker():
    img, body = _body_image()
    mask = body_mask(img)
    assert mask.shape == body.shape
    iou = (mask & body).sum() / (mask | body).sum()
    assert iou > 0.95
    assert not mask[4:16, 110:122].any()
    # A larger image is reduced first; the mask keeps the body's outline.
    big = np.kron(img, np.ones((4, 4), np.float32))
    small = body_mask(big)
    assert small.shape == (128, 128)
    assert (small & body).sum() / (small | body).sum() > 0.95
    assert body_mask(np.full((50, 60), 0.3, np.float32)) is None


def test_outside_share_of_saliency_on_a_known_body():
    img, body = _body_image(128)
    heat = np.zeros((256, 256), np.float32)
    heat[8:32, 220:244] = 1.0  # on the marker: outside the body
    heat[120:168, 100:124] = 0.5  # inside the body, as much mass as on the marker
    heat[130:140, 10:20] = -3.0  # negative evidence carries no mass
    up = np.kron(body, np.ones((2, 2), bool))
    expected = heat.clip(min=0)[~up].sum() / heat.clip(min=0).sum()
    assert expected == pytest.approx(0.5)
    # The mask (128²) is brought to the map's grid (256²) by nearest neighbour.
    (share,) = outside_shares(torch.from_numpy(heat)[None], [body_mask(img)])
    assert share == pytest.approx(expected, abs=0.01)
    assert outside_shares(torch.zeros(2, 8, 8), [None, np.ones((8, 8), bool)]) == [None, None]


def test_cli_audit_writes_clusters_and_takes_their_number(monkeypatch, tmp_path):
    manifest = write_phantom_dataset(tmp_path / "data", 30, size=40)
    model = small_model(40)
    monkeypatch.setattr(engine.models.loaded, "load_model", lambda spec, **kw: model)
    out = tmp_path / "out"
    assert cli_main(["audit", str(manifest), "--model", "tiny", "--out", str(out),
                     "--clusters", "2", "--batch-size", "10"]) == 0
    result = json.loads((out / "clusters.json").read_text())
    assert (out / "clusters.png").read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["outside_body"] <= 1.0 for r in records)
    with (out / "audit.csv").open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert sorted(float(r["outside_body"]) for r in table) == pytest.approx(
        sorted(r["outside_body"] for r in records), abs=1e-4)
    for entry in result["classes"]:
        if entry["n"] >= 20:
            assert entry["k"] == 2 and entry["k_source"] == "user"
        members = [c for cl in entry["clusters"] for c in cl["members"]]
        assert len(members) == entry["n"] and all(c.startswith("case-") for c in members)
    # No file names: the audit did not keep identifiers.
    assert "phantom" not in (out / "clusters.json").read_text()
    assert cli_main(["audit", str(manifest), "--model", "tiny", "--out", str(out),
                     "--clusters", "0"]) == 2


#: Held-out data: the demo models were trained and validated on seeds 1000, 1001, 2000 and
#: 2001, and the demo audit uses 5000 and 5001.
HELD_OUT_SEED = 7300
PER_SET = 150


def _marker_share(mean_map: list, region: tuple[float, float, float, float]) -> float:
    """Share of a mean map's mass in ``region`` (x0, y0, x1, y1 as fractions of the side)."""
    heat = np.asarray(mean_map)
    s = heat.shape[0]
    x0, y0, x1, y1 = (round(v * s) for v in region)
    return float(heat[y0:y1, x0:x1].sum() / heat.sum())


def _sits_on_marker_and_site_b(cluster: dict, region, class_map) -> tuple[bool, bool]:
    share = _marker_share(cluster["mean_map"], region)
    on_marker = share >= 0.35 and share >= 1.5 * _marker_share(class_map, region)
    site_b = any(e["attribute"] == "site" and e["value"] == "B" and e["significant"]
                 for e in cluster["enriched"])
    return on_marker, site_b


def test_demo_discovery_finds_the_marker_shortcut_unprompted(tmp_path):
    from engine.audit.job import AuditJob
    from engine.audit.settings import AuditRequest, AuditSettings
    from engine.demo.audit import build_demo_dataset

    written = build_demo_dataset(tmp_path / "data", PER_SET, HELD_OUT_SEED)
    with written.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # Where the markers are, for judging the clusters only; the audit gets no region at all.
    boxes = np.array([[float(v) for v in r["marker_box"].split()] for r in rows
                      if r["marker_box"]]) / 128.0
    pad = 0.15  # a Grad-CAM cell of the demo models' default layer is 1/8 of the side
    region = (max(0.0, boxes[:, 0].min() - pad), max(0.0, boxes[:, 1].min() - pad),
              min(1.0, boxes[:, 2].max() + pad), min(1.0, boxes[:, 3].max() + pad))
    manifest = tmp_path / "data" / "no_roi.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "site", "set"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("path", "label", "site", "set")} for r in rows)
    found = {}
    for model in ("demo-biased", "demo"):
        request = AuditRequest(dataset=str(manifest), model=model, out=str(tmp_path / model),
                               pdf=False, settings=AuditSettings(decode_processes=0,
                                                                 batch_size=32))
        audit = AuditJob(request).run().audit
        assert list(audit["roi_share"]) == ["border"]  # no region was given
        result = json.loads((tmp_path / model / "clusters.json").read_text())
        found[model] = [(entry["class"], cl["id"], *_sits_on_marker_and_site_b(
            cl, region, entry["mean_map"])) for entry in result["classes"]
            for cl in entry["clusters"]]
    assert any(on and b for _, _, on, b in found["demo-biased"]), found["demo-biased"]
    assert not any(on and b for _, _, on, b in found["demo"]), found["demo"]
    # The unbiased model's clusters do not even look at the marker.
    assert not any(on for _, _, on, _ in found["demo"])
