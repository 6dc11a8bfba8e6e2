"""case_metrics end to end on a small in-memory model: keys, ROI, cancel, progress, no mutation."""

from __future__ import annotations

import pytest
import torch
from metrics_fixtures import edge_registry, fake_result, nodule_phantom, write_png  # noqa: F401
from torch import nn

from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import UsageError
from engine.metrics import case_metrics
from engine.metrics.case import map_function
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from engine.studies.image import open_image


def _model():
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(16, 2),
    )
    spec = InputSpec(size=(32, 32), channels=1, mean=(0.3,), std=(0.2,))
    return LoadedModel.from_module(module, classes=["normal", "nodule"], input=spec, name="tiny")


@pytest.fixture
def case(tmp_path, edge_registry):  # noqa: F811
    phantom = nodule_phantom(size=64)
    image = open_image(write_png(phantom.pixels, tmp_path / "case.png"))
    model = _model()
    x = model.preprocess(image)
    maps = {
        ("gradcam", "4"): map_function(model, "gradcam", "4", x)(model.module, 1),
        ("edgecontrol", "input"): map_function(model, "edgecontrol", "input", x)(model.module, 1),
    }
    return model, image, fake_result(model, image, maps, target=1), phantom


def test_metrics_have_the_contract_keys_and_leave_the_model_alone(case):
    model, image, result, phantom = case
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    seen = []
    m = case_metrics(None, result, image, model, "gradcam", "4", roi=phantom.lesion_box,
                     steps=8, cascade_steps=2, progress=lambda f, msg="": seen.append(f))
    for key in ("deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence",
                "sanity_spearman", "pointing_hit", "energy_in_roi", "curves", "summary"):
        assert key in m, key
    assert len(m["curves"]["deletion"]["scores"]) == 9
    assert m["curves"]["deletion"]["scores"][0] == pytest.approx(m["score"], abs=1e-4)
    assert 0.0 <= m["energy_in_roi"] <= 1.0 and 0 <= m["deletion_auc"] <= 1
    assert len(m["sanity_cascade"]) == 2 and m["random_label_class"] == "normal"
    assert "nodule probability from" in m["summary"]
    assert seen == sorted(seen) and seen[-1] == 1.0
    for k, v in model.module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_edge_control_fails_the_sanity_check(case):
    model, image, result, _ = case
    m = case_metrics(None, result, image, model, "edgecontrol", "input", steps=4, cascade_steps=2)
    assert m["sanity_spearman"] > 0.99 and m["sanity_passed"] is False
    assert m["random_label_spearman"] > 0.99
    assert "sanity check failed" in m["summary"]
    assert any("does not tell the classes apart" in w for w in m["warnings"])


def test_without_sanity_or_roi_those_keys_are_absent(case):
    model, image, result, _ = case
    m = case_metrics(None, result, image, model, "gradcam", "4", sanity=False, steps=4)
    assert "sanity_spearman" not in m and "pointing_hit" not in m


def test_missing_map_and_bad_roi_are_usage_errors(case):
    model, image, result, _ = case
    with pytest.raises(UsageError, match="no scorecam map"):
        case_metrics(None, result, image, model, "scorecam", "4", sanity=False)
    with pytest.raises(UsageError):
        case_metrics(None, result, image, model, "gradcam", "4", roi=(500, 500, 600, 600),
                     sanity=False, steps=2)


def test_cancel_stops_the_metrics(case):
    model, image, result, _ = case
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        case_metrics(None, result, image, model, "gradcam", "4", cancel=token)


def test_summary_line_verdicts():
    from engine.metrics.case import summary_line

    assert summary_line("nodule", 0.93, 0.21, 0.2, 0.85, {}) == (
        "faithful: removing the top 10% salient pixels drops the nodule probability "
        "from 0.93 to 0.21"
    )
    assert summary_line("nodule", 0.9, 0.85, 0.6, 0.7, {}).startswith("weakly faithful")
    assert summary_line("nodule", 0.9, 0.95, 0.6, 0.6, {}).startswith("not faithful: removing "
                                                                      "the top 10% salient pixels "
                                                                      "moves")
    # The map ranks low what the model uses (a marker the map ignores): LeRF falls faster.
    assert summary_line("nodule", 1.0, 1.0, 0.9, 0.6, {}).endswith(
        "the model relies on pixels the map ranks low")
    assert "does not single out" in summary_line("nodule", 0.9, 0.95, 0.6, 0.6, {})
    # Both orders raise the score: the perturbation itself drives the model.
    assert "any order" in summary_line("nodule", 0.87, 0.96, 0.95, 0.96, {})
    assert summary_line("nodule", 0.05, 0.05, 0.0, 0.0, {}).startswith("inconclusive (the nodule")
    failed = summary_line("nodule", 0.9, 0.1, 0.1, 0.8, {"sanity_passed": False,
                                                         "sanity_similarity": 0.97})
    assert "sanity check failed" in failed and "0.97" in failed
