"""``demo-data --3d``, ``info`` and ``explain`` on series folders and NIfTI files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from volume_fixtures import axial_positions, ramp, write_series

from engine.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("vol3d")
    assert cli(["demo-data", "--3d", "--out", str(out), "--n", "2", "--seed", "11",
                "--size", "64", "--slices", "24"]) == 0
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    return out, rows


def test_demo_data_3d_writes_series_nifti_and_a_manifest(demo):
    out, rows = demo
    assert {r["label"] for r in rows} == {"normal", "nodule"}
    for row in rows:
        files = sorted((out / row["series"]).glob("*.dcm"))
        assert len(files) == 24 and (out / row["nifti"]).is_file()
        first = pydicom.dcmread(files[0])
        assert first.Modality == "CT" and float(first.PixelSpacing[0]) == pytest.approx(5.6)
        if row["label"] == "nodule":
            box = [int(v) for v in row["nodule_box"].split()]
            assert all(box[a] < box[a + 3] for a in range(3))


def test_info_on_a_series_folder_prints_its_geometry(demo, capsys):
    out, rows = demo
    assert cli(["info", str(out / rows[0]["series"])]) == 0
    entries = json.loads(capsys.readouterr().out)
    volumes = [e for e in entries if e.get("kind") == "volume"]
    assert len(volumes) == 1 and len(entries) == 25
    geometry = volumes[0]
    assert geometry["shape"] == [24, 64, 64]
    assert geometry["spacing_mm"]["slice"] == pytest.approx(2.5)
    assert len(geometry["sop_instance_uids"]) == 24
    assert cli(["info", str(out / rows[0]["nifti"])]) == 0
    nifti = json.loads(capsys.readouterr().out)
    assert nifti["kind"] == "volume" and nifti["shape"] == [24, 64, 64]
    np.testing.assert_allclose(nifti["affine"], geometry["affine"], atol=1e-3)


def test_info_says_why_a_series_is_not_a_volume(tmp_path, capsys):
    positions = axial_positions(5)
    del positions[1]
    write_series(tmp_path / "gap", ramp(4), positions)
    assert cli(["info", str(tmp_path / "gap")]) == 0
    entries = json.loads(capsys.readouterr().out)
    (entry,) = [e for e in entries if e.get("kind") == "volume"]
    assert "1 slice(s) missing" in entry["geometry_error"]


def test_explain_a_series_with_the_3d_demo_writes_the_volume_contract(demo, tmp_path, capsys):
    out, rows = demo
    series = out / rows[0]["series"]
    assert cli(["explain", str(series), "--model", "demo-3d", "--method", "gradcam,layercam",
                "--out", str(tmp_path)]) == 0
    folder = tmp_path / "case-001"
    result = json.loads((folder / "result.json").read_text())
    geometry = json.loads((folder / "volume_geometry.json").read_text())
    assert result["kind"] == "volume" and set(result["prediction"]) == {"normal", "nodule"}
    assert [m["method"] for m in result["maps"]] == ["gradcam", "layercam"]
    heat = np.load(folder / "heatmap_gradcam_features-6.npy")
    assert heat.shape == (24, 64, 64) and heat.dtype == np.float32
    assert heat.max() == pytest.approx(1.0) and heat.min() >= 0.0
    for plane in ("axial", "coronal", "sagittal"):
        png = PILImage.open(folder / f"overlay_{plane}_gradcam_features-6.png")
        assert png.mode == "RGB" and min(png.size) > 8
    # Geometry: slices sorted along the normal, each named by its file's SOP Instance UID.
    z = {str(ds.SOPInstanceUID): float(ds.ImagePositionPatient[2])
         for ds in (pydicom.dcmread(f) for f in series.glob("*.dcm"))}
    positions = [z[uid] for uid in geometry["sop_instance_uids"]]
    assert positions == sorted(positions)
    affine = np.array(geometry["affine"])
    assert affine[2, 3] == pytest.approx(positions[0], abs=1e-3)
    peak = result["maps"][0]["peak_voxel"]
    assert heat[tuple(peak)] == pytest.approx(1.0)
    np.testing.assert_allclose(result["maps"][0]["peak_lps_mm"],
                               (affine @ [peak[2], peak[1], peak[0], 1])[:3], atol=1e-2)


def test_a_volume_result_carries_each_maps_notes(demo, tmp_path):
    out, rows = demo
    series = out / rows[0]["series"]
    assert cli(["explain", str(series), "--model", "demo-3d", "--method", "intgrad,gradcam",
                "--param", "intgrad.steps=8", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "case-001" / "result.json").read_text())
    notes = {m["method"]: m["notes"] for m in result["maps"]}
    gap = notes["intgrad"]["completeness"]
    assert set(gap) == {"sum", "expected", "gap", "relative_gap"}
    assert gap["gap"] == pytest.approx(gap["sum"] - gap["expected"])
    assert notes["gradcam"] == {}


def test_the_nifti_twin_explains_to_the_same_map(demo, tmp_path):
    out, rows = demo
    assert cli(["explain", str(out / rows[1]["series"]), "--model", "demo-3d",
                "--out", str(tmp_path / "d")]) == 0
    assert cli(["explain", str(out / rows[1]["nifti"]), "--model", "demo-3d",
                "--out", str(tmp_path / "n")]) == 0
    a = np.load(tmp_path / "d" / "case-001" / "heatmap_gradcam_features-6.npy")
    b = np.load(tmp_path / "n" / "case-001" / "heatmap_gradcam_features-6.npy")
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_metrics_and_a_3d_roi_on_a_volume(demo, tmp_path):
    out, rows = demo
    assert cli(["explain", str(out / rows[0]["series"]), "--model", "demo-3d", "--metrics",
                "--roi", "10,10,4,40,40,20", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "case-001" / "result.json").read_text())["metrics"]
    assert 0.0 <= metrics["deletion_auc"] <= 1.0 and 0.0 <= metrics["insertion_auc"] <= 1.0
    assert isinstance(metrics["pointing_hit"], bool) and 0 <= metrics["energy_in_roi"] <= 1
    assert metrics["roi"] == [10, 10, 4, 40, 40, 20]


def test_a_2d_model_runs_over_chosen_slices_in_batches(demo, tmp_path):
    out, rows = demo
    assert cli(["explain", str(out / rows[0]["series"]), "--model", "demo", "--slices", "3:7",
                "--batch-size", "3", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "case-001"
    heat = np.load(folder / "heatmap_gradcam_features.npy")
    assert heat.shape == (24, 64, 64)
    explained = np.nonzero(heat.reshape(24, -1).max(1))[0].tolist()
    assert set(explained) <= {3, 4, 5, 6} and heat.max() == pytest.approx(1.0)
    result = json.loads((folder / "result.json").read_text())
    assert result["slices"]["explained"] == [3, 4, 5, 6]
    assert len(result["slices"]["per_slice"]) == 4


@pytest.mark.parametrize(("extra", "message"), [
    (["--model", "demo-3d", "--slices", "all"], "drop --slices"),
    (["--model", "demo", "--slices", "7:2"], "--slices 7:2 is outside"),
])
def test_bad_volume_requests_are_one_line_exit_2(demo, tmp_path, capsys, extra, message):
    out, rows = demo
    assert cli(["explain", str(out / rows[0]["series"]), *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_series_with_a_missing_slice_fails_in_one_line_naming_it(tmp_path):
    positions = axial_positions(6)
    del positions[2]
    write_series(tmp_path / "gap", ramp(5), positions)
    done = subprocess.run([sys.executable, "main.py", "explain", str(tmp_path / "gap"),
                           "--model", "demo-3d", "--out", str(tmp_path / "o")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'series 7 "TEST SERIES"' in lines[0]
    assert "1 slice(s) missing" in lines[0] and "Traceback" not in done.stderr


def test_a_thin_volume_is_told_it_fills_little_of_the_models_box(demo, tmp_path):
    from engine.core.resources import DEMO_STUDY
    from engine.models.loaded import load_model
    from engine.studies.volume import open_volume

    model = load_model("demo-3d")
    out, rows = demo
    thin = model.check_use(open_volume(out / rows[0]["series"]))  # 24 slices of 2.5 mm
    assert thin.out_of_distribution
    (problem,) = [p for p in thin.problems if "far outside" in p]
    assert "fills only 44 % of the model box's 144 mm depth (the rest is padding)" in problem
    full = model.check_use(open_volume(DEMO_STUDY.parent / "demo-ct"))  # the shipped series
    assert not full.out_of_distribution and not any("fills" in p for p in full.problems)
