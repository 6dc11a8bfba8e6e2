"""One audit job for the command line, the Audit view and engine.api; de-identified outputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from audit_fixtures import small_model, write_phantom_dataset

import engine.models.loaded
from engine import api
from engine.audit.settings import AuditRequest, AuditSettings
from engine.cli import build_parser
from engine.cli import main as cli_main
from engine.core.jsonsafe import json_bytes

#: What a patient's name and number look like in file names and DICOM tags.
PATIENT = ("DOE", "JOHN", "1234567")


def _patient_dataset(folder: Path) -> Path:
    """Phantoms, plus images named after a patient: a PNG, a DICOM, a broken and a missing file.

    Everything lies in a folder named after the patient too.
    """
    from engine.demo.files import write_demo_set

    data = folder / "DOE_JOHN_1234567"
    manifest = write_phantom_dataset(data, 4, size=40)
    shutil.copy(data / "img00000.png", data / "DOE_JOHN_1234567.png")
    dicoms = write_demo_set(folder / "dicoms", 2, 3, fmt="dicom", size=64).parent
    source = next(p for p in dicoms.rglob("*") if p.is_file() and p.suffix != ".csv")
    ds = pydicom.dcmread(source)
    ds.PatientName, ds.PatientID = "DOE^JOHN", "1234567"
    ds.save_as(data / "DOE_JOHN_1234567.dcm")
    (data / "DOE_JOHN_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    with manifest.open("a", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["DOE_JOHN_1234567.png", "normal", "A", ""])
        writer.writerow(["DOE_JOHN_1234567.dcm", "nodule", "B", "1 1 8 8"])
        writer.writerow(["DOE_JOHN_broken.png", "normal", "A", ""])
        writer.writerow(["DOE_JOHN_missing.png", "normal", "B", ""])
    return manifest


#: Files whose bytes are compressed (three given letters turn up there by chance): their
#: names are checked, and a PDF's text and metadata as pypdf reads them.
BINARY = (".pdf", ".png", ".npy")


def _texts(out: Path) -> dict[str, str]:
    """Every name under ``out`` and the text of every file (a PDF's text as pypdf reads it)."""
    from pypdf import PdfReader

    texts = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        texts[f"name:{rel}"] = rel
        if path.is_file() and path.suffix not in BINARY:
            texts[rel] = path.read_text(encoding="utf-8")
        if path.suffix == ".pdf":
            reader = PdfReader(path)
            texts[f"pdf:{rel}"] = "\n".join([*(p.extract_text() for p in reader.pages),
                                             *map(str, (reader.metadata or {}).values())])
    return texts


@pytest.fixture(scope="module")
def patient_audits(tmp_path_factory):
    """The CLI's audit of the patient dataset, de-identified (default) and with identifiers."""
    folder = tmp_path_factory.mktemp("patient")
    manifest = _patient_dataset(folder)
    outs = {}
    for name, extra in (("plain", []), ("kept", ["--keep-identifiers"])):
        outs[name] = folder / f"out_{name}"
        code = cli_main(["audit", str(manifest), "--model", "demo", "--out", str(outs[name]),
                         "--batch-size", "3", *extra])
        assert code == 1  # the broken and the missing file
    return manifest, outs


def test_the_outputs_name_no_patient_by_default(patient_audits):
    _, outs = patient_audits
    texts = _texts(outs["plain"])
    assert any(k.startswith("pdf:") for k in texts) and "audit.csv" in texts
    assert "results.jsonl" in texts and "run.json" in texts
    for where, text in texts.items():
        for word in PATIENT:
            assert word not in text, (word, where)
    audit = json.loads(texts["audit.json"])
    assert audit["identifiers"] == "removed" and audit["n"] == 6
    # Images are named case-001... and by their content digest instead.
    with (outs["plain"] / "audit.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "path" not in rows[0]
    # In manifest order; the copy of img00000.png (row 4) is the same content, the same case.
    cases = {int(r["row"]): r["case"] for r in rows}
    assert cases == {0: "case-001", 1: "case-002", 2: "case-003", 3: "case-004",
                     4: "case-001", 5: "case-005", 6: "case-006", 7: "case-007"}
    good = [r for r in rows if not r["error"]]
    assert len(good) == 6 and all(len(r["digest"]) == 64 for r in good)
    errors = {e["case"]: e["reason"] for e in audit["errors"]}
    assert len(errors) == 2 and all("<image>" in r for r in errors.values())
    records = [json.loads(line) for line in texts["results.jsonl"].splitlines()]
    assert all("path" not in r and r["key"].startswith(f"{r['row']}:") for r in records)


def test_keep_identifiers_keeps_the_paths(patient_audits):
    manifest, outs = patient_audits
    audit = json.loads((outs["kept"] / "audit.json").read_text())
    assert audit["identifiers"] == "kept"
    assert audit["dataset"]["source"] == str(manifest.resolve())
    with (outs["kept"] / "audit.csv").open(newline="") as fh:
        paths = [r["path"] for r in csv.DictReader(fh)]
    assert str(manifest.parent / "DOE_JOHN_1234567.png") in paths
    assert any("DOE_JOHN_broken.png" in e["reason"] for e in audit["errors"])
    # The numbers do not depend on it.
    plain = json.loads((outs["plain"] / "audit.json").read_text())
    assert plain["roi_share"] == audit["roi_share"] and plain["accuracy"] == audit["accuracy"]


def test_resume_finds_finished_images_by_content(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    manifest = write_phantom_dataset(tmp_path / "data", 6, size=40)
    model = small_model(40)
    monkeypatch.setattr(engine.models.loaded, "load_model", lambda spec, **kw: model)
    out = tmp_path / "out"
    args = ["audit", str(manifest), "--model", "tiny", "--out", str(out), "--no-pdf"]
    assert cli_main(args) == 0
    # The manifest moves with its images: the run is still the same one.
    moved = tmp_path / "moved"
    shutil.move(manifest.parent, moved)
    args[1] = str(moved / "manifest.csv")
    # One image changes on disk: only it is audited again.
    with PILImage.open(moved / "img00003.png") as im:
        im.rotate(90).save(moved / "img00003.png")
    assert cli_main([*args, "--resume"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # Row 3's stale record is gone, and its new one comes last.
    assert [r["row"] for r in records] == [0, 1, 2, 4, 5, 3]
    assert json.loads((out / "audit.json").read_text())["n"] == 6


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    """A manifest of phantoms, and load_model answering every spec with the tiny model."""
    manifest = write_phantom_dataset(tmp_path / "data", 8, size=40)
    model = small_model(40)
    monkeypatch.setattr(engine.models.loaded, "load_model", lambda spec, **kw: model)
    return manifest


def test_the_cli_and_the_api_run_the_same_audit(tiny, tmp_path):
    common = {"target": "label", "batch_size": 3}
    assert cli_main(["audit", str(tiny), "--model", "tiny", "--out", str(tmp_path / "cli"),
                     "--target", "label", "--batch-size", "3", "--engine", "local"]) == 0
    got = api.audit(tiny, "tiny", out=tmp_path / "api", engine="local", **common)
    on_disk = json.loads((tmp_path / "cli" / "audit.json").read_text())
    assert json.loads(json_bytes(got)) == on_disk
    assert on_disk["target"] == "label"
    for name in ("audit.csv", "report.pdf", "mean_heatmaps/grid.png"):
        assert (tmp_path / "api" / name).is_file(), name
    assert (tmp_path / "api" / "audit.csv").read_text() == \
        (tmp_path / "cli" / "audit.csv").read_text()


def test_the_run_button_audits_with_the_cli_defaults(tiny, tmp_path, qtbot):
    from PySide6.QtCore import Qt

    from gui.audit_view import QtAuditView

    view = QtAuditView()
    qtbot.addWidget(view)
    view.dataset_edit.setText(str(tiny))
    view.out_edit.setText(str(tmp_path / "gui"))
    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.is_running() and view.audit is not None, timeout=60000)
    args = build_parser().parse_args(["audit", str(tiny), "--model", "tiny", "--out",
                                      str(tmp_path / "cli")])
    cli = args.func.__globals__["request_fields"](args)["settings"]
    gui = view.last_request.settings
    assert isinstance(gui, AuditSettings) and isinstance(view.last_request, AuditRequest)
    for field in ("method", "layer", "target", "batch_size", "heat_size", "keep_identifiers"):
        assert getattr(gui, field) == getattr(cli, field), field
    assert gui.target == AuditSettings.target and gui.batch_size == AuditSettings.batch_size
    assert args.func(args) == 0
    audits = [json.loads((tmp_path / d / "audit.json").read_text()) for d in ("gui", "cli")]
    assert audits[0] == audits[1]
    # A row of the de-identified table opens its image: the run knows its cases' files.
    with qtbot.waitSignal(view.sig_open_image) as blocker:
        view._row_clicked(0, 0)
    assert Path(blocker.args[0]).parent == tiny.parent


def test_the_demo_and_compare_with_write_and_show_one_comparison(tmp_path, qtbot):
    from engine.audit.compare import compare
    from gui.audit_view import QtAuditView

    out = tmp_path / "demo"
    assert cli_main(["audit", "--demo", "--n", "2", "--out", str(out), "--no-pdf"]) == 0
    written = json.loads((out / "comparison.json").read_text())
    audits = {m: json.loads((out / m / "audit.json").read_text()) for m in written["models"]}
    assert json.loads(json_bytes(compare(audits))) == written
    # "Compare with…" on the two folders shows the same comparison.
    view = QtAuditView()
    qtbot.addWidget(view)
    view.show_results(out / "demo")
    view.add_comparison(out / "demo-biased")
    view.role_combo.setCurrentText("marker")
    assert json.loads(json_bytes(view.comparison())) == written
    assert view.finding.text() == written["finding"] + "."


def test_evaluate_predicts_as_the_audit_does(tiny, tmp_path):
    from engine.audit.evaluate import evaluate_manifest

    model = engine.models.loaded.load_model("tiny")
    scored = evaluate_manifest(tiny, model, batch=3)
    # The notebook's loaded model goes through the same job.
    audit = api.audit(tiny, model, out=tmp_path / "audit", pdf=False)
    assert scored["n"] == audit["n"] == 8
    assert scored["accuracy"] == pytest.approx(audit["accuracy"]["overall"])
    assert {g: s["accuracy"] for g, s in scored["by_group"].items()} == \
        pytest.approx(audit["accuracy"]["by_group"])
