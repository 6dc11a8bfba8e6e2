"""A multi-label (sigmoid) model, end to end in the engine: its scores are each class's sigmoid
probability (never a softmax over the classes) in the prediction, the trust metrics' scorer and
the reports, and the reports list the findings at or above the threshold."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from export_fixtures import write_fake_dicom
from models_fixtures import grey_spec, tiny_cnn
from pypdf import PdfReader

from engine.core.case import Target
from engine.core.errors import ModelError, UsageError
from engine.explain.session import ExplainRequest, Session
from engine.export import ReviewedView, write_reports
from engine.metrics import case_metrics
from engine.metrics.case import case_scorer
from engine.models.card import read_card
from engine.models.findings import findings, prediction_table
from engine.models.loaded import LoadedModel
from engine.studies.image import open_image

CLASSES = [f"finding_{i:02d}" for i in range(14)]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 14-output CNN with spread biases (so several sigmoids pass 0.5), on a grey DICOM."""
    torch.manual_seed(0)
    net = tiny_cnn(1, len(CLASSES))
    with torch.no_grad():
        net[-1].bias.copy_(torch.linspace(-2.5, 2.5, len(CLASSES)))
    model = LoadedModel.from_module(net, classes=CLASSES, input=grey_spec(32),
                                    output="sigmoid", threshold=0.5)
    root = tmp_path_factory.mktemp("multilabel")
    image = open_image(write_fake_dicom(root / "case.dcm"))
    x = model.preprocess(image)
    with torch.no_grad():
        logits = net(x)[0].double()
    # The target: a class well below the top, where sigmoid and softmax disagree most.
    target = int(torch.argsort(logits)[len(CLASSES) // 2])
    result = Session(device="cpu").explain(ExplainRequest(
        image=image, model=model, methods=["gradcam"], layers="auto", target=target))
    return model, image, x, logits, target, result, root


def test_the_prediction_is_each_class_sigmoid(case):
    _model, _image, _x, logits, _target, result, _root = case
    sigmoid = torch.sigmoid(logits).numpy()
    assert np.allclose(result.scores, sigmoid, atol=1e-6)
    # Not a softmax: independent probabilities need not sum to one, and here do not.
    assert sum(result.scores) > 2.0


def test_the_metrics_scorer_and_score_are_the_targets_sigmoid(case):
    model, image, x, logits, target, result, _root = case
    _cap, forward = case_scorer(model, x, Target(target), None)
    rng = np.random.default_rng(1)
    pixels = torch.from_numpy(rng.random((5, 1, 32, 32)).astype(np.float32))
    spec = model.input
    normalised = (pixels - spec.mean[0]) / spec.std[0]
    with torch.no_grad():
        expected = torch.sigmoid(model.module(normalised))
    assert torch.allclose(forward(pixels), expected, atol=1e-5)
    method, layer = next(iter(result.maps))
    metrics = case_metrics(None, result, image, model, method, layer, sanity=False, steps=4)
    p = float(torch.sigmoid(logits[target]))
    softmax = float(torch.softmax(logits, 0)[target])
    assert abs(p - softmax) > 0.2
    assert metrics["score"] == pytest.approx(p, abs=1e-5)
    assert metrics["curves"]["deletion"]["scores"][0] == pytest.approx(p, abs=1e-5)


def test_the_table_sorts_and_marks_by_the_threshold(case):
    _model, _image, _x, logits, target, result, _root = case
    sigmoid = torch.sigmoid(logits).numpy()
    for cut in (0.5, 0.3, 0.8):
        table = prediction_table(result.classes, result.scores, target, "sigmoid", cut)
        assert [row.index for row in table.rows] == list(np.argsort(-sigmoid, kind="stable"))
        assert {row.name for row in table.positives()} == \
            {CLASSES[i] for i in np.flatnonzero(sigmoid >= cut)}
        assert [row.explained for row in table.rows].count(True) == 1
    single = prediction_table(result.classes, result.scores, target, "softmax")
    assert [row.index for row in single.rows] == list(range(len(CLASSES)))
    assert single.positives() == [] and not single.multilabel
    with pytest.raises(UsageError, match="between 0 and 1"):
        prediction_table(result.classes, result.scores, target, "sigmoid", 1.5)


def _html_text(path) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text()).split())


def test_reports_list_the_findings_at_the_threshold_used(case):
    _model, image, _x, logits, _target, result, root = case
    sigmoid = torch.sigmoid(logits).numpy()
    for cut, folder in ((None, "card"), (0.3, "chosen")):
        written = write_reports(result, image, root / folder, "html,pdf",
                                view=ReviewedView(finding_threshold=cut))
        files = {p.suffix: p for p in written}
        sidecar = json.loads(files[".json"].read_text())
        expected = [CLASSES[i] for i in np.argsort(-sigmoid, kind="stable")
                    if sigmoid[i] >= (cut or 0.5)]
        assert sidecar["findings"]["threshold"] == (cut or 0.5)
        assert [f["class"] for f in sidecar["findings"]["positive"]] == expected
        assert [f["probability"] for f in sidecar["findings"]["positive"]] == \
            pytest.approx(sorted(sigmoid[sigmoid >= (cut or 0.5)], reverse=True), abs=1e-6)
        page = _html_text(files[".html"])
        pdf = " ".join(" ".join(p.extract_text().split())
                       for p in PdfReader(files[".pdf"]).pages)
        line = f"threshold {cut or 0.5:.2f}"
        for text in (page, pdf):
            assert "Findings" in text and line in text
            assert all(name in text.split("Findings", 1)[1] for name in expected)
    assert findings({"output": "softmax"}, dict(zip(CLASSES, result.scores, strict=True))) \
        is None


def test_a_card_threshold_is_read_and_checked(tmp_path):
    body = ('name = "m"\narchitecture = "lucida:demo_cnn"\nweights = "w.safetensors"\n'
            'output = "sigmoid"\n')
    card = tmp_path / "card.toml"
    card.write_text(body)
    assert read_card(card).threshold == 0.5
    card.write_text(body + "threshold = 0.35\n")
    assert read_card(card).threshold == 0.35
    for bad in ("0", "1.2", '"high"'):
        card.write_text(body + f"threshold = {bad}\n")
        with pytest.raises(ModelError, match="threshold .* is not a probability"):
            read_card(card)


def test_a_volume_result_lists_the_findings_of_a_sigmoid_model():
    from volume_fixtures import memory_volume

    from engine.export.volume import volume_result_json

    volume = memory_volume(np.zeros((4, 8, 8), np.float32))
    scores = [0.9, 0.2, 0.55]

    def findings_of(output: str):
        model = {"name": "m", "sha256": "0" * 64, "files": {}, "output": output,
                 "task": "classification", "threshold": 0.5}
        return volume_result_json(volume, {}, model=model, classes=["a", "b", "c"],
                                  scores=scores, target=0, params={}, timings_ms={},
                                  warnings=[])["findings"]

    assert findings_of("sigmoid") == {"threshold": 0.5, "positive": [
        {"class": "a", "probability": 0.9}, {"class": "c", "probability": 0.55}]}
    assert findings_of("softmax") is None
