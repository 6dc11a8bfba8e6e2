"""The explain core's contract: needs are enforced, failures stay with the input they hit."""

from __future__ import annotations

import numpy as np
import torch
from audit_fixtures import small_model, write_phantom_dataset

from engine.audit.manifest import load_dataset
from engine.audit.runner import AuditSettings, run_audit
from engine.explain import core
from engine.explain.api import Explainer
from engine.explain.capture import run_capture
from engine.explain.registry import Registry
from tests.explain_fixtures import gapnet_model, random_image


class Sneaky(Explainer):
    """Reads the final linear layer without declaring ``fc_weights``."""

    name = "sneaky"
    needs = frozenset({"activations"})

    def explain(self, capture, target, layers, params, progress, cancel):
        return {layer: capture.activations[layer].sum(1) * capture.fc_weights.sum()
                for layer in layers}


class FailsOnBright(Explainer):
    """A batched explainer that raises when any input of its batch is bright."""

    name = "failsonbright"
    needs = frozenset({"activations"})
    batched = True

    def explain(self, capture, target, layers, params, progress, cancel):
        if bool((capture.input.flatten(1).mean(1) > 1.0).any()):
            raise ValueError("too bright")
        return {layer: capture.activations[layer].sum(1) for layer in layers}


def _registry(monkeypatch, *explainers) -> Registry:
    reg = Registry()
    reg.load_builtins()
    for e in explainers:
        reg.add(e, "test")
    monkeypatch.setattr("engine.explain.core.registry", lambda: reg)
    return reg


def test_undeclared_needs_fail_with_one_line_for_that_method_only(monkeypatch):
    _registry(monkeypatch, Sneaky)
    model = gapnet_model()
    the_plan = core.plan(model, ["sneaky", "gradcam"], ["features.4"])
    cap = core.capture(model, model.preprocess(random_image(48)), "top", the_plan)
    got = core.explain(cap, the_plan)
    assert "does not declare it" in got.errors[0]["sneaky"]
    assert "fc_weights" in got.errors[0]["sneaky"]
    assert ("gradcam", "features.4") in got.maps[0]


def test_a_batched_explainer_failing_on_one_input_only_fails_that_input(monkeypatch):
    _registry(monkeypatch, FailsOnBright)
    model = gapnet_model()
    dark, bright = random_image(48), random_image(48, seed=1)
    bright.pixels = bright.pixels * 0 + 1.0
    x = torch.cat([model.preprocess(dark), model.preprocess(bright), model.preprocess(dark)])
    the_plan = core.plan(model, ["failsonbright"], ["features.4"])
    got = core.explain(run_capture(model, x, "top", the_plan.layers, False), the_plan)
    assert [bool(e) for e in got.errors] == [False, True, False]
    assert "too bright" in got.errors[1]["failsonbright"]
    assert ("failsonbright", "features.4") in got.maps[0]
    assert ("failsonbright", "features.4") in got.maps[2]
    # The per-input results equal what a batch of one gives.
    alone = core.explain(run_capture(model, x[:1], "top", the_plan.layers, False), the_plan)
    torch.testing.assert_close(alone.maps[0][("failsonbright", "features.4")],
                               got.maps[0][("failsonbright", "features.4")])


def test_the_audit_records_an_explainer_failure_per_image_and_goes_on(monkeypatch, tmp_path):
    from PIL import Image as PILImage

    _registry(monkeypatch, FailsOnBright)
    dataset = load_dataset(write_phantom_dataset(tmp_path / "data", 6, size=40))
    bright = {dataset.rows[1].key, dataset.rows[4].key}
    for row in dataset.rows:
        if row.key in bright:  # white images read as bright model input (minmax of a flat
            # image is 0, so draw one dark pixel to keep a range)
            pixels = np.full((40, 40), 255, np.uint8)
            pixels[0, 0] = 0
            PILImage.fromarray(pixels).save(row.path)
    store = run_audit(dataset, small_model(40), AuditSettings(method="failsonbright",
                                                              batch_size=6), tmp_path / "out")
    records = {dataset.rows[r["row"]].key: r for r in store.records()}
    assert len(records) == 6
    failed = {k for k, r in records.items() if "error" in r}
    assert failed == bright
    assert all("too bright" in records[k]["error"] for k in failed)
