"""Trust metrics answer the question the map answers: the case's target, versus and volume."""

from __future__ import annotations

import numpy as np
import pytest

from engine import api
from engine.explain.session import ExplainRequest, Session
from engine.metrics import case_metrics
from tests.explain_fixtures import gapnet_model, random_image
from tests.volume_fixtures import memory_volume


@pytest.fixture(scope="module")
def contrastive():
    model = gapnet_model(classes=5, size=48)
    image = random_image(48, seed=3)
    result = Session(device="cpu").explain(ExplainRequest(
        image=image, model=model, methods=["gradcam"], layers="all", target=1, versus=3))
    return model, image, result


def test_a_contrastive_map_is_reproduced_by_its_reference_rerun(contrastive):
    model, image, result = contrastive
    method, layer = next(iter(result.maps))
    m = case_metrics(None, result, image, model, method, layer, steps=4, cascade_steps=2)
    # The re-run explains logit[1] - logit[3], as the map does, not logit[1] alone.
    assert m["reference_spearman"] >= 0.99
    assert m["versus"] == 3 and m["versus_name"] == model.classes[3]
    assert not any("reproduces" in w for w in m["warnings"])


def test_a_contrastive_maps_curves_track_the_difference(contrastive):
    model, image, result = contrastive
    method, layer = next(iter(result.maps))
    m = case_metrics(None, result, image, model, method, layer, sanity=False, steps=4)
    difference = result.scores[1] - result.scores[3]
    assert m["tracks"] == "p[target] - p[versus]"
    assert m["curves"]["deletion"]["scores"][0] == pytest.approx(difference, abs=1e-5)
    assert m["score"] == pytest.approx(difference, abs=1e-5)


def test_a_map_that_cannot_be_made_twice_is_warned_about(contrastive):
    model, image, result = contrastive
    method, layer = next(iter(result.maps))
    rng = np.random.default_rng(0)
    shown = result.maps[method, layer]
    # A map the method does not make again (as dropout left on would give).
    shown.raw = rng.random(shown.raw.shape).astype(np.float32)
    try:
        m = case_metrics(None, result, image, model, method, layer, steps=2, cascade_steps=1)
    finally:
        shown.raw = Session(device="cpu").explain(ExplainRequest(
            image=image, model=model, methods=["gradcam"], layers="all", target=1,
            versus=3)).maps[method, layer].raw
    assert m["reference_spearman"] < 0.99
    assert any("reproduces the shown map only" in w for w in m["warnings"])


def test_volume_metrics_through_the_api():
    grid = np.mgrid[0:16, 0:24, 0:24].astype(np.float32)
    values = -700 + 900 * np.exp(-((grid[0] - 8) ** 2 + (grid[1] - 12) ** 2
                                   + (grid[2] - 12) ** 2) / 12)
    volume = memory_volume(values, spacing=(4.0, 4.0, 4.0))
    model = api.load_model("demo-3d", device="cpu")
    explanation = api.explain(volume, model, methods="gradcam")
    m = api.metrics(explanation, roi=(8, 8, 4, 16, 16, 12))
    assert 0.0 <= m["deletion_auc"] <= 1.0 and 0.0 <= m["insertion_auc"] <= 1.0
    assert len(m["deletion_curve"]["scores"]) == 21
    assert "pointing_hit" in m and "energy_in_roi" in m
    assert m["reference_spearman"] >= 0.99
