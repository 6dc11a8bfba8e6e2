"""Every report carries "Method and its validation" (CLAIM 2024 item 31): the PDF, the HTML page,
the JSON sidecar, result.json and the DICOM SR, which stays dciodvfy-clean."""

from __future__ import annotations

import json
import shutil
import subprocess
from html import unescape

import pydicom
import pytest
import torch
from export_fixtures import fake_result, write_fake_dicom
from pypdf import PdfReader
from torch import nn

from engine.export import FigureOptions, write_reports
from engine.export.dicom_sr import VALIDATION
from engine.export.results import result_json
from engine.export.validation import NOT_MEASURED, STANDARD
from engine.metrics.uncertainty import prediction_uncertainty
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from engine.studies.image import open_image
from tests.pacs_fixtures import dciodvfy_errors


def _uncertainty() -> dict:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Dropout(0.3), nn.Linear(4, 2))
    model = LoadedModel.from_module(net, classes=["normal", "nodule"],
                                    input=InputSpec(size=(24, 24), channels=1, mean=(0.5,),
                                                    std=(0.25,)))
    return prediction_uncertainty(model, torch.randn(1, 1, 24, 24), 1, "gradcam", "0", n=6,
                                  seed=11, draws=8)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    image = open_image(write_fake_dicom(root / "case.dcm"))
    result = fake_result(image)
    result.params = {"gradcam": {"relu": True}}
    metrics = {"method": "gradcam", "layer": "features.3", "deletion_auc": 0.125,
               "sanity_passed": True, "sanity_similarity": 0.21, "reference_spearman": 1.0,
               "summary": "faithful: removing the top 10% salient pixels drops it",
               "uncertainty": _uncertainty()}
    written = write_reports(result, image, root / "out", ["pdf", "html", "sr"],
                            metrics=metrics, figure_options=FigureOptions(dpi=80))
    return image, result, metrics, written


def _rows(written) -> list[list[str]]:
    data = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    return data["validation"]["rows"]


def test_the_section_names_method_parameters_seed_sanity_stability_and_use(case):
    _image, _result, metrics, written = case
    rows = dict(_rows(written))
    u = metrics["uncertainty"]
    assert rows["Standard"] == STANDARD
    assert rows["Method"] == "Grad-CAM (gradcam)" and rows["Layer"] == "features.3"
    assert rows["Target"] == "nodule" and rows["Parameters"] == "Grad-CAM: relu=True"
    assert "seed 11" in rows["Seeds"]
    assert rows["Sanity"].startswith("passed: similarity") and "0.21" in rows["Sanity"]
    assert f"map rank-correlation {u['map_spearman_mean']:.2f}" in rows["Stability"]
    assert "over 6 augmentations" in rows["Stability"]
    assert rows["Uncertainty"] == u["summary"]
    assert rows["MC dropout"].startswith("8 draws:")
    assert rows["Intended use"].startswith("unknown")


def test_pdf_and_html_show_every_row(case):
    _image, _result, _metrics, written = case
    pdf = " ".join(" ".join(p.extract_text().split())
                   for p in PdfReader(next(p for p in written if p.suffix == ".pdf")).pages)
    html = unescape(next(p for p in written if p.suffix == ".html").read_text())
    assert "Method and its validation" in pdf and "Method and its validation" in html
    for label, text in _rows(written)[1:]:
        assert " ".join(text.split()) in html, label
        # PDF text extraction breaks lines: compare the words of each value.
        assert all(w in pdf for w in text.split()[:6]), label


def test_the_sr_holds_the_section_and_passes_dciodvfy(case):
    _image, _result, _metrics, written = case
    path = next(p for p in written if p.name.endswith("sr.dcm"))
    sr = pydicom.dcmread(path)
    block = next(item for item in sr.ContentSequence
                 if item.ConceptNameCodeSequence[0].CodeValue == VALIDATION.value)
    got = [(i.ConceptNameCodeSequence[0].CodeMeaning, i.TextValue) for i in block.ContentSequence]
    assert got == [tuple(r) for r in _rows(written)]
    assert dciodvfy_errors(path) == []


def test_result_json_has_the_section_even_without_metrics(case):
    _image, result, _metrics, _written = case
    data = result_json(result, result.timings_ms)
    rows = dict(data["validation"]["rows"])
    assert rows["Uncertainty"] == NOT_MEASURED and rows["Sanity"] == NOT_MEASURED


def test_the_page_renders(case, tmp_path):
    _image, _result, _metrics, written = case
    pdf = next(p for p in written if p.suffix == ".pdf")
    run = subprocess.run([shutil.which("pdftoppm"), "-r", "40", "-png", str(pdf),
                          str(tmp_path / "page")], capture_output=True, timeout=60)
    assert run.returncode == 0 and sorted(tmp_path.glob("page*.png"))


def test_a_volume_result_names_its_three_d_augmentations():
    from engine.export.validation import validation_of

    u = {"augmentations": 4, "seed": 0, "kind": "3-D shift, contrast", "map_spearman_mean": 0.8,
         "map_spearman_min": 0.6, "map_top_overlap_mean": 0.5, "top_fraction": 0.1,
         "limits": {"shift": 0.04, "rotation_deg": 0.0, "gain": 0.1, "offset": 0.05},
         "summary": "stable: 4/4 augmentations agree", "mc_dropout": {"dropout_layers": 0}}
    rows = dict(validation_of({"method": "gradcam", "layer": "net.6", "target": "nodule",
                               "params": {}, "metrics": {"uncertainty": u},
                               "intended_use": {"status": "match", "message": "CT chest"}})
                ["rows"])
    assert "(3-D shift, contrast; shift up to 4%, rotation up to 0 degrees" in rows["Stability"]
    assert rows["MC dropout"] == "no dropout layers" and rows["Intended use"] == "match: CT chest"
