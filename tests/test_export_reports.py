"""Every export format, written from a DICOM with fake identifiers, read back and checked."""

from __future__ import annotations

import json
import shutil
import subprocess
from html import unescape

import pydicom
import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom
from export_leaks import file_views, found
from PIL import Image as PILImage
from pypdf import PdfReader

from engine.core.errors import UsageError
from engine.export import FigureOptions, write_reports
from engine.studies.image import open_image

FORMATS = ["png", "pdf", "html", "dicom"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    image = open_image(write_fake_dicom(root / "case.dcm"))
    result = fake_result(image, methods=("gradcam", "scorecam"))
    options = FigureOptions(dpi=100)
    metrics = {
        "method": "gradcam",
        "layer": "features.3",
        "deletion_auc": 0.125,
        "insertion_auc": 0.75,
        "sanity_passed": True,
        "summary": "faithful: deleting the top pixels drops the score",
        "curves": {"deletion": [1.0, 0.5]},
    }
    out = {}
    for keep in (False, True):
        out[keep] = write_reports(
            result,
            image,
            root / f"keep_{keep}",
            FORMATS,
            keep_identifiers=keep,
            metrics=metrics,
            figure_options=options,
            all_maps=True,
        )
    return image, result, out


def test_every_format_is_written(case):
    _image, _result, out = case
    for keep in (False, True):
        names = sorted(p.name for p in out[keep])
        assert names == ["figure.png", "figure_sc.dcm", "report.html", "report.json", "report.pdf"]
        assert all(p.stat().st_size > 500 for p in out[keep])
        leftovers = [p.name for p in out[keep][0].parent.iterdir() if p.name.startswith(".")]
        assert leftovers == []


@pytest.mark.parametrize("keep", [False, True])
def test_pdf_text_holds_provenance(case, keep):
    _image, result, out = case
    pdf = next(p for p in out[keep] if p.suffix == ".pdf")
    reader = PdfReader(pdf)
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    for needle in (
        result.model["sha256"],
        result.model["files"]["card.toml"],
        "Grad-CAM",
        "Score-CAM",
        "features.3",
        "normal",
        "nodule",
        "0.812",
        "Research use only",
        "deletion auc",
        "sanity passed yes",
        "Trust metrics (Grad-CAM, features.3)",
        "faithful: deleting",
    ):
        assert needle in text, needle
    assert "explanation report" in reader.metadata.title
    assert ("CONTAINS PATIENT IDENTIFIERS" in text) is keep
    # Real vector text, not a picture of text: the page streams carry the words themselves.
    assert b"Grad-CAM" in pdf.read_bytes()


def test_secondary_capture_reads_back(case):
    image, _result, out = case
    source = image.dataset
    for keep in (False, True):
        ds = pydicom.dcmread(next(p for p in out[keep] if p.suffix == ".dcm"))
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns, 3)
        assert ds.pixel_array.std() > 10  # a figure, not a blank frame
        assert ds.BurnedInAnnotation == "YES"
        assert ds.ConversionType == "WSD"
        assert "Grad-CAM" in ds.DerivationDescription
        for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert ds[uid].value != source[uid].value
            assert pydicom.uid.UID(ds[uid].value).is_valid
        if keep:
            assert str(ds.PatientName) == FAKE["PatientName"]
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
            assert "PatientIdentityRemoved" not in ds
        else:
            assert "SourceImageSequence" not in ds
            assert ds.PatientIdentityRemoved == "YES"
            assert "Annex E" in ds.DeidentificationMethod
            assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
            assert ds.PatientID.startswith("ANON-") and ds.StudyDate == ""


def test_secondary_capture_opens_in_gdcm(case):
    import gdcm

    for keep in (False, True):
        reader = gdcm.ImageReader()
        reader.SetFileName(str(next(p for p in case[2][keep] if p.suffix == ".dcm")))
        assert reader.Read()
        assert reader.GetImage().GetPhotometricInterpretation().GetString().strip() == "RGB"


@pytest.mark.parametrize("key", ["PatientName", "PatientID", "AccessionNumber"])
def test_no_byte_of_a_deidentified_export_holds_identifiers(case, key):
    _image, _result, out = case
    value = FAKE[key]
    for path in out[False]:
        assert not found(path, value), f"{key} in {path.name}"
    # With identifiers kept on purpose, they are there: the check can fail.
    kept = {p.suffix: found(p, value) for p in out[True]}
    assert kept[".pdf"] and kept[".html"] and kept[".json"] and kept[".dcm"]


def test_deidentified_exports_hold_no_other_identifiers(case):
    _image, _result, out = case
    for path in out[False]:
        views = file_views(path)
        for key in ("InstitutionName", "ReferringPhysicianName", "OperatorsName"):
            value = FAKE[key].encode()
            assert not any(value in v for v in views), f"{key} in {path.name}"


def test_sidecar_extends_result_json(case):
    image, result, out = case
    data = json.loads(next(p for p in out[False] if p.suffix == ".json").read_text())
    for key in (
        "model",
        "prediction",
        "target",
        "method",
        "layer",
        "params",
        "timings_ms",
        "metrics",
        "version",
    ):
        assert key in data, key
    assert data["model"]["sha256"] == result.model["sha256"]
    assert data["prediction"] == {"normal": 0.1875, "nodule": 0.8125}
    assert [(m["method"], m["layer"]) for m in data["maps"]] == list(result.maps)
    assert data["method"] == "gradcam,scorecam" and data["layer"] == "features.3"
    # A pseudonym and the content's digest: file and folder names may name the patient.
    assert data["image"] == data["case"]["file"] == data["content"]["case"] == "case-001"
    assert data["content"]["digest"] == image.content_id().digest
    assert data["deidentified"] is True and "patient" not in data["case"]
    assert data["display"]["window"] == [1500.0, 2000.0]
    assert data["metrics"]["curves"]["deletion"] == [1.0, 0.5]
    kept = json.loads(next(p for p in out[True] if p.suffix == ".json").read_text())
    assert kept["case"]["patient"]["PatientID"] == FAKE["PatientID"]


def test_html_is_self_contained(case):
    html = next(p for p in case[2][False] if p.suffix == ".html").read_text()
    assert html.count("data:image/png;base64,") == 3  # a figure per map, then the grid
    assert 'src="http' not in html and "href=" not in html
    assert "Grad-CAM" in html and "features.3" in html


def test_bad_format_is_a_usage_error(case, tmp_path):
    image, result, _out = case
    with pytest.raises(UsageError, match="docx"):
        write_reports(result, image, tmp_path, ["pdf", "docx"])
    assert list(tmp_path.iterdir()) == []


def test_pdf_renders_with_poppler(case, tmp_path):
    # poppler-utils is installed by `make venv` (.ci/system-packages).
    assert shutil.which("pdftoppm"), "pdftoppm missing: run ./.ci/system-packages"
    pdf = next(p for p in case[2][False] if p.suffix == ".pdf")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())


def test_raster_image_exports_too(tmp_path):
    import numpy as np
    from PIL import Image as PILImage

    path = tmp_path / "photo.png"
    PILImage.fromarray((np.arange(40 * 40).reshape(40, 40) % 256).astype(np.uint8)).save(path)
    image = open_image(path)
    written = write_reports(
        fake_result(image),
        image,
        tmp_path / "out",
        "png,pdf,dicom",
        figure_options=FigureOptions(kind="overlay", dpi=60),
    )
    assert [p.name for p in written] == ["figure.png", "figure_sc.dcm", "report.pdf", "report.json"]
    ds = pydicom.dcmread(tmp_path / "out" / "figure_sc.dcm")
    assert ds.Modality == "OT" and ds.PatientIdentityRemoved == "YES"


@pytest.mark.parametrize("keep", [False, True])
def test_pdf_and_html_show_the_same_case_rows(case, keep):
    import html
    import re

    from engine.export.content import case_rows, prediction_rows

    _image, _result, out = case
    files = {p.suffix: p for p in out[keep]}
    content = json.loads(files[".json"].read_text())
    # Compared without white space: the PDF wraps long paths inside a table cell.
    pdf = "".join("".join(page.extract_text().split()) for page in PdfReader(files[".pdf"]).pages)
    page = "".join(html.unescape(re.sub(r"<[^>]+>", " ", files[".html"].read_text())).split())
    rows = case_rows(content)
    assert ("Identifiers" in dict(rows)) != keep
    for label, value in rows + [(name, p) for name, p, _ in prediction_rows(content)]:
        for text in (label, value):
            assert "".join(str(text).split()) in pdf, text
            assert "".join(str(text).split()) in page, text


def _images_in_pdf(path) -> int:
    return sum(len(page.images) for page in PdfReader(path).pages)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """Four cached maps; the viewer shows Score-CAM at ``head``."""
    root = tmp_path_factory.mktemp("reviewed")
    image = open_image(write_fake_dicom(root / "case.dcm"))
    result = fake_result(image, methods=("gradcam", "scorecam"), layers=("features.3", "head"))
    view = {"method": "scorecam", "layer": "head", "window": (1500, 2000)}
    return root, image, result, view


def test_by_default_every_output_holds_the_map_on_screen(reviewed):
    root, image, result, view = reviewed
    out = root / "shown"
    options = FigureOptions.from_view_state(view, dpi=60)
    written = write_reports(result, image, out, FORMATS, figure_options=options)
    content = json.loads((out / "report.json").read_text())
    assert [(m["method"], m["layer"]) for m in content["maps"]] == [("scorecam", "head")]
    assert content["method"] == "scorecam" and content["layer"] == "head"
    assert _images_in_pdf(out / "report.pdf") == 1
    html = (out / "report.html").read_text()
    assert html.count("<img ") == 1 and "Grad-CAM" not in html
    assert "Score-CAM" in pydicom.dcmread(out / "figure_sc.dcm").DerivationDescription
    assert "head" in PILImage.open(out / "figure.png").text["Description"]
    assert len(written) == 5


def test_the_compare_grid_is_exported_when_it_is_shown(reviewed):
    root, image, result, view = reviewed
    compare = [("gradcam", "features.3"), ("scorecam", "features.3")]
    out = root / "compare"
    state = dict(view, compare=compare)
    options = FigureOptions.from_view_state(state, dpi=60)
    write_reports(result, image, out, "pdf,html", figure_options=options)
    content = json.loads((out / "report.json").read_text())
    assert [(m["method"], m["layer"]) for m in content["maps"]] == [("scorecam", "head"), *compare]
    assert [m["figure"] for m in content["maps"]] == ["Figure 1", "Figure 2", "Figure 2"]
    assert _images_in_pdf(out / "report.pdf") == 2
    grid = root / "grid"
    options = FigureOptions.from_view_state(state, dpi=60, kind="grid")
    write_reports(result, image, grid, "png", figure_options=options)
    caption = PILImage.open(grid / "figure.png").text["Description"]
    assert "Grad-CAM" in caption and "Score-CAM" in caption and "head" not in caption


def test_all_layers_is_an_explicit_option(reviewed):
    root, image, result, view = reviewed
    out = root / "all"
    options = FigureOptions.from_view_state(view, dpi=60)
    write_reports(result, image, out, "pdf", figure_options=options, all_maps=True)
    content = json.loads((out / "report.json").read_text())
    assert len(content["maps"]) == len(result.maps) == 4
    assert _images_in_pdf(out / "report.pdf") == 5  # one per map, then the grid of all


def test_a_one_map_pdf_stays_under_one_megabyte(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    noisy = 120 + 60 * np.sin(xx / 30) * np.cos(yy / 40) + rng.normal(0, 25, (512, 512))
    path = tmp_path / "noisy.png"
    PILImage.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path)
    image = open_image(path)
    result = fake_result(image, methods=("gradcam", "scorecam"), layers=("features.3", "head"))
    write_reports(result, image, tmp_path / "out", "pdf", figure_options=FigureOptions(dpi=300))
    size = (tmp_path / "out" / "report.pdf").stat().st_size
    assert size < 1_000_000, size


MISMATCH = {"status": "mismatch", "message": "model is for CR/DX chest; this is MR head: "
            "modality MR, body part head", "problems": ["modality MR", "body part head"],
            "out_of_distribution": None}


@pytest.mark.parametrize("use", [MISMATCH, {}])
def test_reports_and_result_json_carry_the_intended_use_warning(reviewed, use, tmp_path):
    from dataclasses import replace

    from engine.export.results import write_explain_outputs

    _root, image, result, view = reviewed
    result = replace(result, intended_use=dict(use))
    options = FigureOptions.from_view_state(view, dpi=60)
    write_reports(result, image, tmp_path / "r", "pdf,html", figure_options=options)
    write_explain_outputs(result, image, tmp_path / "e", {"load": 1.0})
    expected = use.get("message") or "intended use was not checked"
    head = "Outside the model's intended use" if use else "Intended use unknown"
    pdf = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(tmp_path / "r" /
                                                                          "report.pdf").pages)
    html = unescape((tmp_path / "r" / "report.html").read_text())
    assert head in pdf and expected in pdf
    assert head in html and expected in html
    for name in ("r/report.json", "e/result.json"):
        data = json.loads((tmp_path / name).read_text())
        assert expected in data["intended_use"]["message"], name
        assert data["intended_use"]["status"] == (use.get("status") or "unknown")


def test_a_match_shows_no_warning(reviewed, tmp_path):
    from dataclasses import replace

    _root, image, result, view = reviewed
    match = {"status": "match", "message": "within the model's intended use (CR/DX chest)"}
    result = replace(result, intended_use=match)
    write_reports(result, image, tmp_path, "html", figure_options=FigureOptions(dpi=60))
    html = unescape((tmp_path / "report.html").read_text())
    assert "within the model's intended use (CR/DX chest)" in html
    assert 'class="use"' not in html
