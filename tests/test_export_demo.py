"""End to end on the demo: the real model explains a demo DICOM, every format is exported."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from export_leaks import found
from pypdf import PdfReader

from engine.export import FigureOptions, write_reports
from engine.studies.image import open_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    from engine.demo.files import write_demo_set
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model

    studies = sorted((ROOT / "resources" / "studies" / "demo").glob("**/*.dcm"))
    if not studies:
        # The shipped demo study is written by the same generator; make one file like it.
        folder = tmp_path_factory.mktemp("demo_study")
        write_demo_set(folder, n=1, seed=7, fmt="dicom")
        studies = sorted(folder.glob("**/*.dcm"))
    image = open_image(studies[0])
    model = load_model("demo")
    result = Session(device="cpu").explain(
        ExplainRequest(image=image, model=model, methods=["gradcam", "cam"], layers="auto")
    )
    return image, model, result


def test_demo_exports_every_format_without_identifiers(explained, tmp_path):
    image, model, result = explained
    ids = image.identifiers()
    assert ids["PatientName"].startswith("DEMO^PATIENT") and len(ids["PatientID"]) >= 6
    written = write_reports(
        result,
        image,
        tmp_path / "anon",
        ["png", "pdf", "html", "dicom"],
        figure_options=FigureOptions(dpi=72),
    )
    assert len(written) == 5
    for path in written:
        assert not found(path, ids["PatientName"]), path.name
        assert not found(path, ids["PatientID"]), path.name

    text = " ".join(
        " ".join(p.extract_text().split())
        for p in PdfReader(next(p for p in written if p.suffix == ".pdf")).pages
    )
    layer = next(iter(result.maps))[1]
    for needle in (model.sha256, "Grad-CAM", layer, *model.classes, result.target_name):
        assert needle in text, needle
    for sha in model.files.values():
        assert sha in text
    sidecar = json.loads((tmp_path / "anon" / "report.json").read_text())
    assert sidecar["model"]["sha256"] == model.sha256
    assert sidecar["prediction"] == dict(zip(model.classes, result.scores, strict=True))
    ds = pydicom.dcmread(tmp_path / "anon" / "figure_sc.dcm")
    assert ds.PatientIdentityRemoved == "YES" and "SourceImageSequence" not in ds


def test_demo_keeps_identifiers_on_purpose(explained, tmp_path):
    image, _model, result = explained
    ids = image.identifiers()
    written = write_reports(
        result,
        image,
        tmp_path,
        ["pdf", "dicom"],
        keep_identifiers=True,
        figure_options=FigureOptions(dpi=72),
    )
    for path in written:
        assert found(path, ids["PatientID"]), path.name
    ds = pydicom.dcmread(tmp_path / "figure_sc.dcm")
    assert str(ds.PatientName) == ids["PatientName"]
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == image.dataset.SOPInstanceUID
