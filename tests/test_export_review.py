"""What was reviewed, in the reports: the same engine function for the window and the CLI.

A report holds the trust metrics computed for the map shown, the colour scale, the ROI, the
contrasted class and the window; the reviewer's verdict is saved in the review file, printed in
the PDF and HTML reports (its comment scrubbed when de-identified) and coded in the SR.
"""

from __future__ import annotations

import json
from html import unescape

import pydicom
import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom
from pypdf import PdfReader

from engine.cli import main as cli_main
from engine.core.case import Verdict
from engine.core.resources import DEMO_STUDY
from engine.export import ReviewedView, write_reports
from engine.export.dicom_objects import PATIENT_STUDY, explanation_objects
from engine.export.dicom_sr import REVIEW, VERDICT_CODES
from engine.review import Review, ReviewFile, load_review, save_review
from engine.studies.image import open_image
from tests.pacs_fixtures import dciodvfy_errors

DCM = DEMO_STUDY / "phantom_0001.dcm"
ROI = (30, 30, 90, 90)


def _pdf_text(path) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(path).pages)


def _html_text(path) -> str:
    return unescape(path.read_text())


def _numbers(metrics: dict) -> list[str]:
    """The metrics as the report tables print them."""
    return [f"{float(v):.4g}" for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "score"]


def _assert_reviewed(text: str, metrics: dict, window: tuple[float, float]) -> None:
    for number in _numbers(metrics):
        assert number in text, number
    assert "C {:g} / W {:g}".format(*window) in text
    assert "nodule versus normal" in text
    assert "x0 30, y0 30, x1 90, y1 90" in text


@pytest.fixture(scope="module")
def cli_case(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    code = cli_main(["explain", str(DCM), "--model", "demo", "--method", "gradcam",
                     "--target", "nodule", "--versus", "normal", "--metrics",
                     "--roi", ",".join(map(str, ROI)), "--report", "pdf,html",
                     "--out", str(out)])
    assert code == 0
    folder = next(out.rglob("report.pdf")).parent
    return folder, json.loads((folder / "result.json").read_text())


def test_the_cli_report_holds_metrics_window_roi_and_versus(cli_case):
    folder, result = cli_case
    window = open_image(DCM).default_window_for(0)
    metrics = result["metrics"]
    assert "deletion_auc" in metrics and "energy_in_roi" in metrics
    for text in (_pdf_text(folder / "report.pdf"), _html_text(folder / "report.html")):
        _assert_reviewed(text, metrics, (window.center, window.width))
    report = json.loads((folder / "report.json").read_text())
    assert report["review"]["versus"] == "normal" and report["review"]["roi"] == list(ROI)


def test_the_window_exports_what_it_shows_through_the_same_function(cli_case, qtbot,
                                                                    tmp_path):
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model
    from gui.export_dialog import QtExportDialog

    _folder, cli_result = cli_case
    image = open_image(DCM)
    result = Session(device="cpu").explain(ExplainRequest(
        image=image, model=load_model("demo"), methods=("gradcam",), target="nodule",
        versus="normal"))
    # The trust panel's numbers for this map and ROI (the same measures the CLI computed).
    metrics = cli_result["metrics"]
    layer = next(iter(result.maps))[1]
    view = ReviewedView(method="gradcam", layer=layer, window=(1000.0, 1500.0), colormap="turbo",
                        scale="absolute", roi=ROI, versus="normal", metrics=metrics,
                        verdict=Verdict("disagree", "the map sits on the marker",
                                        "2024-05-06T07:08:09+00:00"))
    dialog = QtExportDialog(None, result, image, view)
    qtbot.addWidget(dialog)
    out = tmp_path / "gui"
    dialog.folder.setText(str(out))
    dialog.resolution_box.setCurrentIndex(0)
    for fmt, box in dialog.output_checks.items():
        box.setChecked(fmt in ("pdf", "html"))
    with qtbot.waitSignal(dialog.sig_exported, timeout=60000):
        dialog.export_button.click()
    for text in (_pdf_text(out / "report.pdf"), _html_text(out / "report.html")):
        _assert_reviewed(text, metrics, (1000.0, 1500.0))
        assert "shared maximum" in text
        assert "disagree" in text and "the map sits on the marker" in text
    report = json.loads((out / "report.json").read_text())
    assert report["display"]["colormap"] == "turbo"
    assert report["review"]["verdict"]["value"] == "disagree"


@pytest.fixture()
def fake_case(tmp_path):
    image = open_image(write_fake_dicom(tmp_path / "case.dcm", size=32))
    return image, fake_result(image)


def test_the_verdict_comment_is_scrubbed_when_deidentified(fake_case, tmp_path):
    image, result = fake_case
    comment = f"agrees with the chart of {FAKE['PatientName']}"
    view = ReviewedView(method="gradcam", layer="features.3",
                        verdict=Verdict("agree", comment))
    for keep in (False, True):
        out = tmp_path / f"keep_{keep}"
        write_reports(result, image, out, ["pdf", "html"], keep_identifiers=keep,
                      figure_options={"dpi": 60}, view=view)
        text = _pdf_text(out / "report.pdf")
        assert "agree" in text and "agrees with the chart of" in text
        assert (FAKE["PatientName"] in _html_text(out / "report.html")) is keep


def _verdict_items(sr) -> list:
    for item in sr.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == REVIEW.value:
            return list(item.ContentSequence)
    return []


def test_the_sr_codes_the_verdict_and_passes_dciodvfy(fake_case, tmp_path):
    image, result = fake_case
    verdict = Verdict("unsure", f"ask {FAKE['PatientName']}'s radiologist",
                      "2024-05-06T07:08:09+02:00")
    view = ReviewedView(method="gradcam", layer="features.3", verdict=verdict)
    written = write_reports(result, image, tmp_path / "research", ["sr"], view=view)
    research = pydicom.dcmread(next(p for p in written if p.name.endswith("sr.dcm")))
    filed = next(o.dataset for o in explanation_objects(result, image, kind=PATIENT_STUDY,
                                                        verdict=verdict)
                 if o.name == "sr.dcm")
    filed_path = tmp_path / "filed_sr.dcm"
    filed.save_as(filed_path, enforce_file_format=True)
    for sr, path in ((research, next(p for p in written if p.name.endswith("sr.dcm"))),
                     (filed, filed_path)):
        items = _verdict_items(sr)
        assert items[0].ConceptCodeSequence[0].CodeValue == VERDICT_CODES["unsure"].value
        assert str(items[2].DateTime).startswith("20240506070809")
        assert dciodvfy_errors(path) == []
    assert items[1].TextValue == verdict.comment  # filed: identified, kept as written
    assert "[removed]" in _verdict_items(research)[1].TextValue  # research: scrubbed


def test_the_review_file_keeps_the_verdict_and_old_files_load(tmp_path):
    shown = ReviewFile(str(tmp_path / "a.dcm"), "ab" * 32)
    review = Review([shown], shown, {"spec": "demo", "sha256": "cd" * 32}, {"method": "cam"},
                    verdict=Verdict("disagree", "wrong side", "2024-05-06T07:08:09+00:00"))
    path = save_review(tmp_path / "r", review)
    assert load_review(path).verdict == review.verdict
    doc = json.loads(path.read_text())
    del doc["verdict"]  # a review saved before verdicts were recorded
    path.write_text(json.dumps(doc))
    assert load_review(path).verdict is None
    doc["verdict"] = {"value": "maybe"}
    path.write_text(json.dumps(doc))
    with pytest.raises(Exception, match="verdict is malformed"):
        load_review(path)
