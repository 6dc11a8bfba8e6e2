"""The battery over a batch of images gives, image by image, what the one-image battery gives
with the same seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.core.case import Target
from engine.explain.core import explain_one
from engine.metrics.case import case_scorer, map_function
from engine.metrics.families import FAMILIES, metric_families
from engine.metrics.families_batch import metric_families_batch
from engine.metrics.robustness import batch_explainer
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec


def _tiny():
    torch.manual_seed(5)
    module = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        nn.Linear(8, 4))
    spec = InputSpec(size=(24, 24), channels=1, mean=(0.3,), std=(0.2,))
    return LoadedModel.from_module(module, classes=["a", "b", "c", "d"], input=spec,
                                   name="tiny")


def _values(out: dict) -> dict:
    return {f["name"]: f["value"] for fam in FAMILIES for f in out[fam]}


@pytest.mark.parametrize("versus", [None, 3])
def test_batch_battery_equals_the_one_image_battery(versus):
    model = _tiny()
    g = torch.Generator().manual_seed(1)
    pixels = torch.rand(3, 1, 24, 24, generator=g)
    x = (pixels - 0.3) / 0.2
    target = Target(1, versus)
    rois = np.zeros((3, 12, 12), bool)
    rois[:, 3:7, 4:9] = True
    raws = np.stack([explain_one(model, x[i:i + 1], "gradcam", "3", target)
                     for i in range(3)])
    kw = {"samples": 3, "runs": 16, "road_percentages": (20, 50, 80), "seed": 4}
    got = metric_families_batch(model, x, "gradcam", "3", target, saliency=raws,
                                roi_regions=rois, explain_batch_size=5, **kw)
    assert len(got) == 3
    for i in range(3):
        xi = x[i:i + 1]
        cap, forward = case_scorer(model, xi, target, None)
        one = map_function(model, "gradcam", "3", xi)
        want = metric_families(
            forward, batch_explainer(model, "gradcam", "3", xi, target),
            lambda c, one=one: one(model.module, Target(c, versus)), cap.to_pixels(xi),
            raws[i], 1, num_classes=4, versus=versus, roi_region=rois[i], **kw)
        a, b = _values(got[i]), _values(want)
        assert a.keys() == b.keys() and len(a) == 15
        for name in a:
            assert a[name] == pytest.approx(b[name], abs=1e-5), name
        np.testing.assert_allclose(got[i]["road_curves"]["morf"], want["road_curves"]["morf"],
                                   atol=1e-5)
        assert got[i]["random_logit_class"] == want["random_logit_class"]
        assert [f["judgement"] for f in got[i]["robustness"]] == \
            [f["judgement"] for f in want["robustness"]]


def test_batch_battery_explains_the_maps_itself():
    model = _tiny()
    x = (torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(2)) - 0.3) / 0.2
    got = metric_families_batch(model, x, "gradcam", "3", 0, samples=2, runs=8,
                                road_percentages=None, random_logit=False)
    raw = explain_one(model, x[1:], "gradcam", "3", 0)
    want = metric_families(*case_scorer(model, x[1:], Target(0), None)[1:],
                           None, None, (x[1:] * 0.2 + 0.3), raw, 0, num_classes=4,
                           runs=8, road_percentages=None)
    fc = [f for f in got[1]["faithfulness"] if f["name"] == "faithfulness_correlation"][0]
    assert fc["value"] == pytest.approx(want["faithfulness"][0]["value"], abs=1e-5)
    assert got[1]["randomisation"] == [] and len(got[1]["robustness"]) == 4
