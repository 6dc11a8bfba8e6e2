"""The randomisation sanity check on the demo models: Grad-CAM passes, Guided Backprop is flagged.

Adebayo et al. 2018 found Guided Backprop nearly unchanged when the top layers of a model are
re-initialised, while Grad-CAM changes at once. The check judges the decision end of the cascade
(the stages that randomise at most half of the layers, from the output down) by both Spearman and
SSIM; it must flag Guided Backprop and pass Grad-CAM on the shipped demo models, and flag the
edge-detector control, which ignores the model altogether.
"""

from __future__ import annotations

import pytest
from metrics_fixtures import edge_registry  # noqa: F401

from engine.core.resources import DEMO_STUDY
from engine.explain.session import ExplainRequest, Session
from engine.metrics.case import case_metrics
from engine.models.loaded import load_model
from engine.studies.image import open_image

MODELS = ("demo", "demo-biased")


def _metrics(model_name: str, method: str) -> dict:
    model = load_model(model_name)
    image = open_image(DEMO_STUDY / "phantom_0001.dcm")
    session = Session(device="cpu")
    result = session.explain(ExplainRequest(image, model, [method]))
    (key, _), = result.maps.items()
    return case_metrics(session, result, image, model, method, key[1], steps=4)


@pytest.mark.parametrize("model_name", MODELS)
def test_gradcam_changes_as_soon_as_the_model_is_randomised(model_name):
    m = _metrics(model_name, "gradcam")
    assert m["sanity_passed"] is True
    assert m["sanity_similarity"] < 0.5
    assert all(abs(stage["spearman"]) < 0.5 for stage in m["sanity_cascade"]), m["sanity_cascade"]


@pytest.mark.parametrize("model_name", MODELS)
def test_guided_backprop_is_flagged_for_ignoring_the_top_layers(model_name):
    m = _metrics(model_name, "guidedbackprop")
    assert m["sanity_passed"] is False
    assert m["sanity_similarity"] >= 0.5
    assert m["sanity_top_spearman"] >= 0.5 and m["sanity_top_ssim"] >= 0.5
    # With the classifier re-initialised the map keeps rank and structure (Adebayo et al., Fig. 2)
    first = m["sanity_cascade"][0]
    assert first["spearman"] >= 0.7 and first["ssim"] >= 0.6, first
    # Only the decision end decides: by the first convolutions the map has changed as well,
    # which a rule on the full cascade alone would have counted as a pass.
    assert abs(m["sanity_spearman"]) < 0.5
    assert m["sanity_top_stages"] < len(m["sanity_cascade"])
    assert "sanity check failed" in m["summary"]


@pytest.mark.parametrize("model_name", MODELS)
def test_edge_detector_control_is_flagged(model_name, edge_registry):  # noqa: F811
    m = _metrics(model_name, "edgecontrol")
    assert m["sanity_passed"] is False
    assert m["sanity_similarity"] == pytest.approx(1.0)
    assert all(stage["ssim"] == pytest.approx(1.0) for stage in m["sanity_cascade"])
