"""Every export format, written from a DICOM with fake identifiers, read back and checked."""

from __future__ import annotations

import json
import shutil
import subprocess

import pydicom
import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom
from export_leaks import file_views, found
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
    _image, result, out = case
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
    assert data["image"] == "case.dcm"  # the file name only: folders may name the patient
    assert data["deidentified"] is True and "patient" not in data["case"]
    assert data["display"]["window"] == [1500.0, 2000.0]
    assert data["metrics"]["curves"]["deletion"] == [1.0, 0.5]
    kept = json.loads(next(p for p in out[True] if p.suffix == ".json").read_text())
    assert kept["case"]["patient"]["PatientID"] == FAKE["PatientID"]


def test_html_is_self_contained(case):
    html = next(p for p in case[2][False] if p.suffix == ".html").read_text()
    assert html.count("data:image/png;base64,") == 2
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
