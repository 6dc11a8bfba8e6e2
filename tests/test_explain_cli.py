"""``python main.py methods`` and ``python main.py explain``: files, result.json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.cli import main as cli_main

CT = Path(__import__("pydicom").__file__).parent / "data" / "test_files" / "CT_small.dcm"


@pytest.fixture
def png(tmp_path) -> Path:
    yy, xx = np.mgrid[:90, :110]
    blob = np.exp(-((yy - 30) ** 2 + (xx - 70) ** 2) / 200.0)
    path = tmp_path / "case.one.png"
    PILImage.fromarray(np.round(60 + 150 * blob).astype(np.uint8)).save(path)
    return path


def test_methods_lists_every_builtin_with_params(capsys):
    assert cli_main(["methods", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in data["methods"]]
    assert names[:10] == ["cam", "gradcam", "gradcampp", "xgradcam", "layercam", "hirescam",
                          "eigencam", "scorecam", "occlusion", "rise"]
    scorecam = data["methods"][names.index("scorecam")]
    assert {p["name"] for p in scorecam["params"]} == {"mode", "k", "baseline", "weighting",
                                                          "batch_size"}
    assert "arXiv:1910.01279" in scorecam["citation"]


def test_explain_writes_every_contract_file(png, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main([
        "explain", str(png), str(CT), "--model", "demo", "--method", "gradcam,cam,occlusion",
        "--layer", "auto", "--target", "nodule", "--out", str(out),
        "--param", "patch=24", "--param", "occlusion.stride=12",
    ])
    assert code == 0, capsys.readouterr().err
    # De-identified by default: each input's folder is its pseudonym, never its file name.
    folder = out / "case-001"
    layer = json.loads((folder / "result.json").read_text())["layer"].split(",")[0]
    key = layer.replace(".", "-")
    expected = {"image.png", "result.json", f"heatmap_gradcam_{key}.npy",
                f"overlay_gradcam_{key}.png", f"heatmap_cam_{key}.npy", f"overlay_cam_{key}.png",
                "heatmap_occlusion_input.npy", "overlay_occlusion_input.png"}
    assert expected <= {p.name for p in folder.iterdir()}
    heat = np.load(folder / f"heatmap_gradcam_{key}.npy")
    assert heat.dtype == np.float32 and heat.shape == (90, 110)
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert PILImage.open(folder / f"overlay_gradcam_{key}.png").size == (110, 90)
    result = json.loads((folder / "result.json").read_text())
    assert set(result) >= {"model", "prediction", "target", "method", "layer", "params",
                           "timings_ms", "version"}
    assert len(result["model"]["sha256"]) == 64
    assert set(result["prediction"]) == {"normal", "nodule"}
    assert sum(result["prediction"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["target"] == "nodule"
    assert result["params"]["occlusion"] == {"patch": 24, "stride": 12, "batch_size": 32}
    assert set(result["timings_ms"]) == {"load", "forward", "backward", "maps"}
    assert result["timings_ms"]["forward"] > 0 and result["timings_ms"]["load"] > 0
    assert (out / "case-002" / "result.json").exists()
    assert not (out / "case.one").exists() and not (out / "CT_small").exists()


@pytest.mark.parametrize("keep", [False, True])
def test_result_json_stores_the_folder_only_with_keep_identifiers(tmp_path, keep, capsys):
    # Folder names often carry patient IDs: without the flag none of the path may leak.
    folder = tmp_path / "PID-4711-DOE^JANE"
    folder.mkdir()
    path = folder / "scan.png"
    PILImage.fromarray(np.full((40, 50), 120, np.uint8)).save(path)
    out = tmp_path / "out"
    argv = ["explain", str(path), "--model", "demo", "--out", str(out)]
    assert cli_main(argv + (["--keep-identifiers"] if keep else [])) == 0, capsys.readouterr().err
    text = (out / ("scan" if keep else "case-001") / "result.json").read_text()
    image = json.loads(text)["image"]
    if keep:
        assert Path(image) == path
    else:
        assert image == "case-001"  # a pseudonym: file names may name the patient
        assert "PID-4711" not in text and str(tmp_path.name) not in text


@pytest.mark.parametrize(
    "change, message",
    [
        ({"file": "missing.dcm"}, "missing.dcm"),
        ({"--model": "no-such-model.toml"}, "no-such-model"),
        ({"--method": "gradcam,nosuch"}, "unknown method 'nosuch'"),
        ({"--layer": "features.99"}, "features.99"),
        ({"--param": "nosuch=3"}, "nosuch"),
        ({"--target": "elephant"}, "elephant"),
    ],
)
def test_bad_input_exits_2_with_one_line(png, tmp_path, capsys, change, message):
    args = {"file": str(png), "--model": "demo", "--method": "gradcam", "--layer": "auto",
            "--out": str(tmp_path / "out")}
    args.update(change)
    argv = ["explain", args.pop("file")] + [x for kv in args.items() for x in kv]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_some_failed_files_exit_1_with_a_summary(png, tmp_path, capsys):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file at all")
    code = cli_main(["explain", str(png), str(broken), "--model", "demo", "--out",
                     str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.dcm" in err and "1 of 2 files failed" in err
    assert (tmp_path / "out" / "case-001" / "result.json").exists()
