"""De-identified exports hold no file name or path: a pseudonym and a digest instead.

A demo file copied under a patient's name (``DOE_JOHN_1234567.png``) into a folder named for
the patient, and a demo DICOM of patient DOE^JOHN, go through every 2-D writer; no output's
name, JSON, HTML, PDF text, PNG text chunk or DICOM attribute may hold the name, the number,
the source folder, or the model card's folder, unless identifiers are kept on purpose.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from export_fixtures import fake_result
from export_leaks import png_views
from pypdf import PdfReader

from engine.core.errors import ExportError
from engine.core.pseudonym import Pseudonyms
from engine.core.resources import DEMO_STUDY
from engine.export import write_reports
from engine.export.deid import Scrubber
from engine.export.identity import model_identity
from engine.export.results import output_name, write_explain_outputs
from engine.studies.image import open_image

DEMO = DEMO_STUDY
SECRETS = ("DOE", "JOHN", "1234567")


def _model(card_folder: Path) -> dict:
    """A model description as ``LoadedModel.describe()`` gives it: absolute paths."""
    card, weights = card_folder / "card.toml", card_folder / "demo.safetensors"
    return {"name": "demo", "sha256": "5f" * 32, "classes": ["normal", "nodule"],
            "output": "softmax", "task": "classification", "kind": "module",
            "card": str(card), "files": {str(card): "a1" * 32, str(weights): "5f" * 32}}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
    source = root / "DOE JOHN 1234567"
    source.mkdir()
    png = source / "DOE_JOHN_1234567.png"
    shutil.copy(DEMO / "phantom_0004.png", png)
    ds = pydicom.dcmread(DEMO / "phantom_0001.dcm")
    ds.PatientName, ds.PatientID = "DOE^JOHN", "1234567"
    dcm = source / "DOE_JOHN_1234567.dcm"
    ds.save_as(dcm, enforce_file_format=True)
    cards = root / "models of DOE JOHN"
    return root, [open_image(png), open_image(dcm)], _model(cards)


def _export(root, images, model, keep: bool) -> tuple[Path, list[Path]]:
    out = root / f"out_keep_{keep}"
    pseudonyms = Pseudonyms()
    written = []
    for image in images:
        result = fake_result(image)
        result.model = model
        folder = out / output_name(image, pseudonyms, keep)
        written += write_explain_outputs(result, image, folder, result.timings_ms,
                                         keep_identifiers=keep, pseudonyms=pseudonyms)
        written += write_reports(result, image, folder, ["pdf", "html", "dicom", "png"],
                                 keep_identifiers=keep, figure_options={"dpi": 60},
                                 pseudonyms=pseudonyms)
    return out, written


def _texts(path: Path) -> list[str]:
    """Every text an output holds: JSON, HTML (not its image data), PDF text and metadata,
    PNG text chunks, DICOM attributes; never the pixels, where three letters occur by chance."""
    data = path.read_bytes()
    if path.suffix == ".json":
        return [data.decode()]
    if path.suffix == ".html":
        page = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", data.decode())
        chunks = [v.decode("latin-1") for m in re.finditer(
            rb"data:image/png;base64,([A-Za-z0-9+/=]+)", data)
            for v in png_views(base64.b64decode(m.group(1)))[1:]]
        return [page, *chunks]
    if path.suffix == ".pdf":
        reader = PdfReader(path)
        return ["\n".join(page.extract_text() for page in reader.pages),
                "\n".join(str(v) for v in (reader.metadata or {}).values())]
    if path.suffix == ".png":
        return [v.decode("latin-1") for v in png_views(data)[1:]]
    if path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        del ds.PixelData
        return [str(ds)]
    if path.suffix == ".npy":
        return [data[:128].decode("latin-1")]  # the header; the rest is float32 values
    raise AssertionError(f"an output of unknown kind: {path.name}")


def test_deidentified_outputs_hold_no_file_name_folder_or_model_path(cases):
    root, images, model = cases
    out, written = _export(root, images, model, keep=False)
    assert sorted(p.name for p in out.iterdir()) == ["case-001", "case-002"]
    forbidden = [*SECRETS, str(images[0].path.parent), str(Path(model["card"]).parent)]
    for path in written:
        relative = str(path.relative_to(out))
        assert not any(s in relative for s in SECRETS), relative
        for text in _texts(path):
            for secret in forbidden:
                assert secret not in text, (path.name, secret)
    result = json.loads((out / "case-001" / "result.json").read_text())
    assert result["image"] == "case-001"
    assert result["content"] == {"case": "case-001", "digest": images[0].content_id().digest,
                                 "kind": "file", "frame": 0}
    assert result["model"]["files"] == {"card": "a1" * 32, "weights": "5f" * 32}
    report = json.loads((out / "case-002" / "report.json").read_text())
    assert report["case"]["file"] == report["content"]["case"] == "case-002"
    assert report["model"]["card"] is None
    assert report["content"]["digest"] == images[1].content_id().digest


def test_kept_identifiers_name_the_file_on_purpose(cases):
    root, images, model = cases
    out, written = _export(root, images, model, keep=True)
    assert sorted(p.name for p in out.iterdir()) == ["DOE_JOHN_1234567"]  # both files' stem
    result = json.loads((out / "DOE_JOHN_1234567" / "result.json").read_text())
    assert Path(result["image"]) == images[1].path  # the second export of the folder
    assert result["model"]["files"] == {"card.toml": "a1" * 32, "demo.safetensors": "5f" * 32}
    html = next(p for p in written if p.name == "report.html").read_text()
    assert "DOE_JOHN_1234567" in html and str(Path(model["card"]).parent) not in html


def test_model_identity_keeps_no_path():
    model = _model(Path("/srv/site/DOE"))
    assert model_identity(model, False)["files"] == {"card": "a1" * 32, "weights": "5f" * 32}
    kept = model_identity(model, True)
    assert kept["card"] == "card.toml" and "/srv" not in json.dumps(kept)


def test_the_byte_guard_knows_the_file_name_and_folder(tmp_path):
    path = tmp_path / "PID-1234567" / "DOE_JOHN_1234567.png"
    guard = Scrubber({}, paths=[path])
    assert guard.text(f"read {path}") == "read [removed]"
    for leak in (path.name, str(path.parent), str(path)):
        with pytest.raises(ExportError, match="patient identifier"):
            guard.check(b"... " + leak.encode() + b" ...", "report.html")
    guard.check(b"case-001 " + np.float32(1).tobytes(), "report.html")  # the pseudonym passes
    Scrubber({}, active=False, paths=[path]).check(path.name.encode(), "report.html")
