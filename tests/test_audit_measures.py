"""ROI share maths on maps with known answers, bootstrap CIs, and the merge of records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.audit.aggregate import aggregate, flag_reason, mean_heatmaps, verdicts
from engine.audit.measures import (
    RunningMeanMap,
    bootstrap_ci,
    border_mask,
    box_mask,
    classification_summary,
    confusion_matrix,
    region_shares,
    roi_shares,
)


def test_uniform_map_shares_equal_area_fractions():
    heat = np.ones((100, 100), np.float32)
    masks = {"left": box_mask(heat.shape, (0, 0, 50, 100)), "border": border_mask(heat.shape)}
    shares = roi_shares(heat, masks)
    assert shares["left"] == pytest.approx(0.5)
    # An 8 px band on a 100 px side leaves an 84 x 84 interior.
    assert shares["border"] == pytest.approx(1 - 84 * 84 / 10000)


def test_point_mass_is_all_inside_its_box_and_none_elsewhere():
    heat = np.zeros((64, 48), np.float32)
    heat[10, 30] = 3.0
    masks = {
        "hit": box_mask(heat.shape, (30, 10, 31, 11)),
        "miss": box_mask(heat.shape, (0, 0, 30, 64)),
    }
    assert roi_shares(heat, masks) == {"hit": 1.0, "miss": 0.0}


def test_negative_and_nan_values_carry_no_mass():
    heat = np.ones((10, 10), np.float32)
    heat[:5] = -7.0
    heat[9, 9] = np.nan
    top = box_mask(heat.shape, (0, 0, 10, 5))
    shares = roi_shares(heat, {"top": top, "bottom": ~top})
    assert shares["top"] == 0.0
    assert shares["bottom"] == pytest.approx(1.0)


def test_empty_map_gives_nan_not_a_fake_share():
    shares = roi_shares(np.zeros((8, 8)), {"a": box_mask((8, 8), (0, 0, 4, 4))})
    assert math.isnan(shares["a"])


def test_shares_do_not_depend_on_the_map_scale():
    rng = np.random.default_rng(1)
    heat = rng.random((32, 32))
    masks = {"a": box_mask(heat.shape, (3.5, 2.2, 17.9, 20.0))}
    assert roi_shares(heat, masks)["a"] == pytest.approx(roi_shares(heat * 1e-4, masks)["a"])


def test_fractional_box_covers_every_touched_pixel_and_clips_to_the_image():
    mask = box_mask((10, 10), (1.5, 2.5, 3.2, 4.0))
    assert mask.sum() == 3 * 2 and mask[2, 1] and mask[3, 3] and not mask[4, 1]
    assert box_mask((10, 10), (8, 8, 40, 40)).sum() == 4


def test_slice_shares_equal_mask_shares():
    rng = np.random.default_rng(2)
    heat = rng.normal(size=(37, 53))
    boxes = {"a": (3.5, 2.2, 17.9, 20.0), "b": (40, 30, 80, 80), "c": (0, 0, 53, 37)}
    masks = {r: box_mask(heat.shape, b) for r, b in boxes.items()}
    masks["border"] = border_mask(heat.shape)
    lung = rng.random(heat.shape) > 0.5
    masks["lung"] = lung
    fast = region_shares(heat, boxes, {"lung": lung})
    slow = roi_shares(heat, masks)
    assert fast.keys() == slow.keys()
    for role in slow:
        assert fast[role] == pytest.approx(slow[role], abs=1e-12)
    assert fast["c"] == pytest.approx(1.0)


def test_border_band_is_at_least_one_pixel():
    mask = border_mask((5, 5))
    assert mask[0].all() and mask[:, -1].all() and not mask[2, 2]


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    trials, hits = 200, 0
    for t in range(trials):
        sample = rng.exponential(1.0, size=60)  # true mean 1, skewed
        lo, hi = bootstrap_ci(sample, n_boot=500, seed=t)
        hits += lo <= 1.0 <= hi
    coverage = hits / trials
    assert 0.86 <= coverage <= 0.99, coverage


def test_bootstrap_ci_is_seeded_and_narrows_with_more_data():
    rng = np.random.default_rng(3)
    small, large = rng.normal(size=30), rng.normal(size=3000)
    assert bootstrap_ci(small, seed=5) == bootstrap_ci(small, seed=5)
    w_small = np.diff(bootstrap_ci(small))[0]
    w_large = np.diff(bootstrap_ci(large))[0]
    assert w_large < w_small / 5
    assert bootstrap_ci([np.nan, 0.25]) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_confusion_recall_and_accuracy():
    cm = confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 2)
    assert cm.tolist() == [[1, 1], [1, 2]]
    s = classification_summary(cm, ["normal", "nodule"])
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["recall"] == {"normal": 0.5, "nodule": pytest.approx(2 / 3)}


def test_running_mean_map_matches_numpy_mean():
    maps = np.random.default_rng(0).random((7, 4, 4))
    acc = RunningMeanMap((4, 4))
    for m in maps:
        acc.add(m)
    np.testing.assert_allclose(acc.mean(), maps.mean(0), rtol=1e-6)


def _record(i, site, label, pred, marker):
    return {
        "key": str(i), "row": i, "path": f"img{i}.png", "label": str(label),
        "label_index": label, "pred": pred, "groups": {"site": site},
        "shares": {"marker": marker, "border": 0.1},
    }


def test_aggregate_per_group_numbers_flags_and_verdict():
    recs = [_record(i, "B", 1, 1, 0.7) for i in range(20)]
    recs += [_record(20 + i, "A", 0, i % 2, 0.02) for i in range(20)]
    recs.append({"key": "x", "row": 99, "path": "bad.png", "error": "cannot read"})
    out = aggregate(recs, ["normal", "nodule"], ["marker"])
    assert out["n"] == 40
    assert out["accuracy"]["overall"] == pytest.approx(30 / 40)
    assert out["accuracy"]["by_group"] == {"site=A": 0.5, "site=B": 1.0}
    marker = out["roi_share"]["marker"]
    assert marker["by_group"]["site=B"]["mean"] == pytest.approx(0.7)
    assert marker["by_class"]["normal"]["mean"] == pytest.approx(0.02)
    assert marker["by_class_group"]["nodule|site=B"]["n"] == 20
    assert len(out["flagged"]) == 20 and "marker" in out["flagged"][0]["reason"]
    # A record that kept its path lists it beside its name (the key, without pseudonyms).
    assert out["errors"] == [{"case": "x", "path": "bad.png", "reason": "cannot read"}]
    assert aggregate(recs, ["normal", "nodule"], ["marker"], {"x": "case-041"})["errors"] == [
        {"case": "case-041", "path": "bad.png", "reason": "cannot read"}]
    assert "site=B: 70% of saliency on `marker` (CI 70–70%) vs 2.0% for site=A" in out["verdicts"]


def test_flag_reasons():
    assert flag_reason({"marker": 0.2, "border": 0.6}) == "60% of saliency on `border`"
    assert flag_reason({"anatomy": 0.3, "border": 0.1}) == "70% of saliency outside `anatomy`"
    assert flag_reason({"lesion": 0.9, "anatomy": 0.95, "border": 0.0}) is None


def test_verdicts_need_two_groups_and_name_a_missing_region():
    entry = {"mean": 0.5, "ci95": [0.4, 0.6], "n": 5}
    assert verdicts({"marker": {"by_group": {"site=A": entry}}}) == []
    border = {"by_group": {"site=A": entry, "site=B": {**entry, "mean": 0.1}}}
    lines = verdicts({"marker": {"by_group": {"site=B": entry}}, "border": border})
    assert lines == [
        "site=A: 50% of saliency on `border` (CI 40–60%) vs 10% for site=B",
        "site=B: 50% of saliency on `marker` (CI 40–60%); no other site group has a "
        "`marker` region",
    ]


def test_mean_heatmaps_per_class_and_group():
    recs = [_record(i, "AB"[i % 2], i % 2, 0, 0.1) for i in range(4)]
    maps = [np.full((2, 2), float(i)) for i in range(4)]
    cells = mean_heatmaps(zip(recs, maps, strict=True), ["normal", "nodule"], (2, 2))
    assert cells[("normal", "all")][1] == 2
    np.testing.assert_allclose(cells[("normal", "site=A")][0], 1.0)  # maps 0 and 2
    np.testing.assert_allclose(cells[("nodule", "site=B")][0], 2.0)  # maps 1 and 3
