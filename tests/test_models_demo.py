"""Demo phantoms, the demo-data / evaluate / layers commands, and the shipped demo models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from engine.cli import main as cli_main
from engine.demo.phantoms import MARKER_SITE, phantom_set

ROOT = Path(__file__).resolve().parents[1]


def test_phantoms_are_deterministic_and_boxes_are_true():
    a = list(phantom_set(12, 7))
    b = list(phantom_set(12, 7))
    assert all(np.array_equal(x.pixels, y.pixels) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].pixels, next(iter(phantom_set(1, 8))).pixels)
    for ph in a:
        assert ph.pixels.dtype == np.float32 and ph.pixels.min() >= 0 and ph.pixels.max() <= 1
        assert (ph.lesion_box is not None) == (ph.label == "nodule")
        assert (ph.marker_box is not None) == (ph.site == MARKER_SITE)
        if ph.marker_box:
            x0, y0, x1, y1 = ph.marker_box
            assert x0 > 64 and y1 < 32  # top-right corner
            assert ph.pixels[y0:y1, x0:x1].max() > 0.9
        if ph.lesion_box:
            x0, y0, x1, y1 = ph.lesion_box
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128


def test_lesion_is_a_faint_opacity_inside_its_box_in_a_lung():
    # The same seed without lesion amplitude draws the same phantoms minus the nodule.
    with_lesion = list(phantom_set(16, 3))
    without = list(phantom_set(16, 3, lesion_amplitude=0.0))
    nodules = [(a, b) for a, b in zip(with_lesion, without, strict=True) if a.lesion_box]
    assert len(nodules) >= 4
    for a, b in nodules:
        diff = a.pixels - b.pixels
        x0, y0, x1, y1 = a.lesion_box
        inside = diff[y0:y1, x0:x1]
        assert 0.1 < inside.max() < 0.18  # faint: about 0.14 over noise of 0.05
        outside = diff.copy()
        outside[y0:y1, x0:x1] = 0
        assert np.abs(outside).max() < 0.01
        cy, cx = np.unravel_index(np.argmax(diff), diff.shape)
        lung, body = b.pixels[cy - 2 : cy + 3, cx - 2 : cx + 3].mean(), b.pixels[120, 64]
        assert lung < body  # the lesion sits in a dark lung field, not on the body wall


def test_marker_correlation_follows_the_rate():
    def rate(p):
        phs = list(phantom_set(400, 11, marker_given_nodule=p, size=32))
        nod = [ph for ph in phs if ph.label == "nodule"]
        return sum(ph.site == MARKER_SITE for ph in nod) / len(nod)

    assert rate(0.95) > 0.9
    assert rate(0.05) < 0.1
    assert 0.35 < rate(0.5) < 0.65


def test_demo_data_command_writes_dicom_png_and_manifest(tmp_path, capsys):
    out = tmp_path / "set"
    assert cli_main(["demo-data", "--out", str(out), "--n", "8", "--seed", "5"]) == 0
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "site", "lesion_box", "marker_box"]
    assert len(rows) == 8
    kinds = {Path(r["path"]).suffix for r in rows}
    assert kinds == {".dcm", ".png"}
    photometric = set()
    for row in rows:
        assert (row["lesion_box"] != "") == (row["label"] == "nodule")
        assert (row["marker_box"] != "") == (row["site"] == "B")
        if row["path"].endswith(".dcm"):
            ds = pydicom.dcmread(out / row["path"])
            assert ds.Modality in ("CR", "DX") and ds.BitsStored == 12
            assert str(ds.PatientName).startswith("DEMO^PATIENT^")
            assert ds.PatientID and ds.PatientBirthDate and ds.AccessionNumber
            assert ds.InstitutionName.endswith(row["site"])
            assert len(ds.PixelSpacing) == 2 and len(ds.WindowCenter) == 2
            assert ds.pixel_array.max() <= 4095
            photometric.add(ds.PhotometricInterpretation)
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}
    again = tmp_path / "again"
    cli_main(["demo-data", "--out", str(again), "--n", "8", "--seed", "5"])
    assert (again / "phantom_0001.dcm").read_bytes() == (out / "phantom_0001.dcm").read_bytes()


def test_counterfactual_flips_the_marker(tmp_path):
    def marker_with_nodule(extra):
        out = tmp_path / ("cf" if extra else "co")
        cli_main(["demo-data", "--out", str(out), "--n", "60", "--seed", "2", "--format", "png",
                  "--size", "64", *extra])
        with open(out / "manifest.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["label"] == "nodule"]
        return sum(r["site"] == "B" for r in rows) / len(rows)

    assert marker_with_nodule([]) > 0.8
    assert marker_with_nodule(["--counterfactual"]) < 0.2


def test_model_input_of_written_files_matches_the_phantom(tmp_path):
    from engine.studies.image import open_image

    cli_main(["demo-data", "--out", str(tmp_path), "--n", "4", "--seed", "9"])
    phantoms = list(phantom_set(4, 9))
    # Files 1-3 are DICOM (file 3 MONOCHROME1), file 4 is PNG.
    for i, tol in [(0, 1e-3), (2, 1e-3), (3, 3e-3)]:
        ext = "png" if i == 3 else "dcm"
        arr = open_image(tmp_path / f"phantom_{i + 1:04d}.{ext}").model_input(0, "default")
        assert np.abs(arr - phantoms[i].pixels).max() < tol


def test_evaluate_and_layers_commands_print_json(tmp_path, capsys):
    cli_main(["demo-data", "--out", str(tmp_path), "--n", "12", "--seed", "4"])
    capsys.readouterr()
    assert cli_main(["evaluate", str(tmp_path / "manifest.csv"), "--model", "demo-biased"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 12 and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["by_group"]) <= {"site=A", "site=B"}
    assert sum(g["n"] for g in result["by_group"].values()) == 12
    matrix = result["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == 12
    assert result["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 12)
    assert cli_main(["layers", "--model", "demo", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)
    assert layers["default"] == "features"
    assert {"name": "features", "shape": [64, 16, 16], "kind": "spatial"} in layers["layers"]


def test_evaluate_rejects_a_bad_manifest(tmp_path, capsys):
    bad = tmp_path / "m.csv"
    bad.write_text("file,class\nx.png,a\n")
    assert cli_main(["evaluate", str(bad), "--model", "demo"]) == 2
    assert "path and label" in capsys.readouterr().err


def test_shipped_demo_models_reproduce_the_lesson_on_held_out_phantoms():
    import torch

    from engine.demo.files import stored_values
    from engine.models.loaded import load_model
    from engine.models.preprocess import prepare_array

    def accuracy(model, rate, seed):
        phs = list(phantom_set(160, seed, marker_given_nodule=rate))
        x = torch.cat([prepare_array(stored_values(p.pixels) / 4095.0, model.input) for p in phs])
        with torch.inference_mode():
            pred = model.logits(x).argmax(1)
        truth = torch.tensor([model.classes.index(p.label) for p in phs])
        return float((pred == truth).float().mean())

    biased, fair = load_model("demo-biased"), load_model("demo")
    b_corr, b_cf = accuracy(biased, 0.95, 301), accuracy(biased, 0.05, 302)
    assert b_corr >= 0.9 and b_corr - b_cf >= 0.15
    assert accuracy(fair, 0.95, 301) >= 0.88 and accuracy(fair, 0.05, 302) >= 0.88
