"""Enrichment (share over area) and each group against the rest, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.audit.aggregate import contrasts
from engine.audit.measures import bootstrap_ci, region_shares


def _rec(row, site, marker, border):
    return {"row": row, "groups": {"site": site}, "shares": {"marker": marker, "border": border}}


RECORDS = [
    _rec(0, "A", 0.02, 0.30),
    _rec(1, "A", 0.04, 0.20),
    _rec(2, "B", 0.30, 0.40),
    _rec(3, "B", 0.50, 0.50),
    {"row": 4, "error": "unreadable"},
]
AREAS = {row: {"marker": 0.01, "border": 0.25} for row in range(4)}


def test_enrichment_is_mean_share_over_mean_area_fraction():
    out = contrasts(RECORDS, ["marker"], AREAS)
    marker = out["marker"]
    assert marker["area_fraction"] == pytest.approx(0.01)
    assert marker["enrichment"] == pytest.approx(((0.02 + 0.04 + 0.30 + 0.50) / 4) / 0.01)
    assert marker["by_group"]["site=A"]["enrichment"] == pytest.approx(0.03 / 0.01)
    assert marker["by_group"]["site=B"]["enrichment"] == pytest.approx(0.40 / 0.01)
    assert out["border"]["by_group"]["site=B"]["enrichment"] == pytest.approx(0.45 / 0.25)


def test_each_group_is_contrasted_with_its_complement():
    vs = contrasts(RECORDS, ["marker"], AREAS)["marker"]["by_group"]
    assert vs["site=B"]["vs_rest"]["diff"] == pytest.approx(0.40 - 0.03)
    assert vs["site=A"]["vs_rest"]["diff"] == pytest.approx(0.03 - 0.40)
    assert vs["site=B"]["vs_rest"]["n"] == 2 and vs["site=B"]["vs_rest"]["n_rest"] == 2
    lo, hi = vs["site=B"]["vs_rest"]["ci95"]
    # Resampling {0.3, 0.5} against {0.02, 0.04}: the difference lies between the extremes.
    assert 0.30 - 0.04 <= lo < 0.37 < hi <= 0.50 - 0.02
    assert (lo, hi) == bootstrap_ci([0.30, 0.50], minus=[0.02, 0.04])


def test_a_group_without_a_complement_or_area_has_no_number():
    one = [_rec(0, "A", 0.1, 0.2)]
    out = contrasts(one, ["marker"], {})
    assert math.isnan(out["marker"]["enrichment"])
    vs = out["marker"]["by_group"]["site=A"]["vs_rest"]
    assert math.isnan(vs["diff"]) and all(math.isnan(v) for v in vs["ci95"])


def test_the_difference_ci_is_the_plain_ci_shifted_when_the_rest_is_constant():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 50)
    lo, hi = bootstrap_ci(x, minus=[0.25] * 30)
    plo, phi = bootstrap_ci(x)
    # Resamples of a constant sample all have its mean; the draws of x come first, unchanged.
    assert (lo, hi) == pytest.approx((plo - 0.25, phi - 0.25))


def test_area_fraction_of_a_box_is_the_share_of_a_uniform_map():
    fr = region_shares(np.ones((100, 200)), {"marker": (0, 0, 20, 10)}, border="border")
    assert fr["marker"] == pytest.approx(200 / 20000)
    inner = (100 - 16) * (200 - 32)
    assert fr["border"] == pytest.approx(1 - inner / 20000)
