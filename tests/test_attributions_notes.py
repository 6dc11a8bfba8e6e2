"""What explainers report besides their maps reaches ``result.json``, and work is counted once.

Integrated Gradients' completeness gap and a guided method's warning about functional ReLUs are
notes on the capture view the explainer ran on; the core collects them, the session keeps them
with the finished map (cached maps included) and ``result.json`` writes them per map.
"""

from __future__ import annotations

import json

import pytest
import torch

from engine.explain import core
from engine.explain.api import resolve_params
from engine.explain.capture import run_capture
from engine.explain.registry import registry
from engine.explain.session import ExplainRequest, Session
from engine.export.results import result_json, write_explain_outputs
from tests.explain_fixtures import gapnet_model, mixed_relu_model, random_image


def _entry(content: dict, method: str) -> dict:
    (entry,) = [m for m in content["maps"] if m["method"] == method]
    return entry


def test_intgrad_completeness_gap_is_in_result_json(tmp_path):
    model = gapnet_model()
    image = random_image(48)
    session = Session(device="cpu")
    request = ExplainRequest(image, model, ["intgrad"], params={"intgrad": {"steps": 8}})
    result = session.explain(request)
    (mres,) = result.maps.values()
    record = mres.notes["completeness"]
    assert record["sum"] == pytest.approx(float(mres.raw.sum()), rel=1e-4, abs=1e-6)
    assert record["gap"] == pytest.approx(record["sum"] - record["expected"], abs=1e-6)
    write_explain_outputs(result, image, tmp_path, result.timings_ms)
    written = _entry(json.loads((tmp_path / "result.json").read_text()), "intgrad")
    assert written["notes"]["completeness"] == pytest.approx(record)
    # A second request is served from the session's cache: the note comes with the map.
    again = session.explain(request)
    assert _entry(result_json(again, again.timings_ms), "intgrad")["notes"] == written["notes"]


def test_functional_relu_warning_reaches_the_result_once():
    model = mixed_relu_model()
    result = Session(device="cpu").explain(
        ExplainRequest(random_image(16), model, ["guidedbackprop", "guidedgradcam"],
                       layers=["conv2"]))
    lines = [w for w in result.warnings if "ReLU(s) as functions" in w]
    assert len(lines) == 1 and "\n" not in lines[0]
    content = result_json(result, result.timings_ms)
    for method in ("guidedbackprop", "guidedgradcam"):
        assert _entry(content, method)["notes"]["warning"] == lines[0]
    # Methods with nothing to say write an empty record, not a missing key.
    plain = Session(device="cpu").explain(ExplainRequest(random_image(16), model, ["saliency"]))
    assert _entry(result_json(plain, plain.timings_ms), "saliency")["notes"] == {}


@pytest.mark.parametrize("batch", [1, 3])
def test_scored_images_are_counted_once(batch):
    model = gapnet_model()
    x = torch.cat([model.preprocess(random_image(48, seed=s)) for s in range(batch)])
    capture = run_capture(model, x, "top", [], gradients=False)
    explainer = registry().get("rise")
    params = resolve_params(explainer, {"n_masks": 16, "batch_size": 5})
    got = core.explain(capture, core.Plan([explainer], {"rise": params}, [], False))
    assert all(("rise", "input") in maps for maps in got.maps)
    # RISE scores each of its masks once per input; nothing else runs the model.
    assert capture.scored_images == 16 * batch
