"""The notebook facade: the docs example runs, and the facade agrees with the session."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from engine import api
from engine.core.resources import DEMO_STUDY
from engine.explain.session import ExplainRequest, Session

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_notebook_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(DOCS / "notebook_example.py"), run_name="__main__")
    assert isinstance(ns["fig"], PILImage.Image) and ns["fig"].size[0] > 100
    assert 0.0 <= ns["trust"]["deletion_auc"] <= 1.0
    out = capsys.readouterr().out
    assert "nodule" in out and "faithful" in out


def test_explain_returns_the_sessions_maps_as_numpy():
    image = api.open_image(DEMO_STUDY / "phantom_0001.dcm")
    model = api.load_model("demo", device="cpu")
    got = api.explain(image, model, methods="gradcam", target="nodule")
    ref = Session(device="cpu").explain(ExplainRequest(image, model, ["gradcam"],
                                                       target="nodule"))
    np.testing.assert_array_equal(got.maps["gradcam", "features"],
                                  ref.maps[("gradcam", "features")].heatmap)
    assert got.prediction == dict(zip(ref.classes, ref.scores, strict=True))
    assert got.target == "nodule" and got.provenance["model"]["sha256"] == model.sha256
    assert "<table>" in got._repr_html_()
