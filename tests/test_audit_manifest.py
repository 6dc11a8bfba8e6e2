"""Manifests: bad rows, missing files and reserved columns are reported per row; DICOM folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.audit.manifest import age_band, load_dataset, parse_box, read_manifest
from engine.core.errors import UsageError


def _png(path, size=16):
    PILImage.fromarray(np.zeros((size, size), np.uint8)).save(path)
    return path


def test_bad_rows_are_reported_per_line_and_good_rows_kept(tmp_path):
    (tmp_path / "imgs").mkdir()
    _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "b.png")
    _png(tmp_path / "mask.png")
    (tmp_path / "m.csv").write_text(
        "path,label,site,marker_box,lung_mask\n"
        "imgs/a.png,nodule,B,1 2 5 6,mask.png\n"   # line 2: good
        "imgs/missing.png,normal,A,,\n"            # line 3: file not found
        "imgs/b.png,normal,A,1 2 3,\n"             # line 4: box of three numbers
        ",normal,A,,\n"                            # line 5: empty path
        "imgs/b.png,normal,A\n"                    # line 6: too few cells
        "imgs/b.png,normal,A,,nomask.png\n"        # line 7: mask not found
        "\n"
        f"{tmp_path / 'imgs' / 'b.png'},normal,,4 4 2 9,\n"  # line 9: x1 < x0
        "imgs/b.png,,A,0 0 4 4,\n"                 # line 10: good, unlabelled
    )
    m = read_manifest(tmp_path / "m.csv")
    assert [p.line for p in m.problems] == [3, 4, 5, 6, 7, 9]
    reasons = [p.reason for p in m.problems]
    assert "file not found" in reasons[0]
    assert "four numbers" in reasons[1]
    assert reasons[2] == "empty path"
    assert "cells" in reasons[3]
    assert "mask not found" in reasons[4]
    assert "x0 < x1" in reasons[5]
    assert all(p.one_line().startswith(f"line {p.line}: ") for p in m.problems)
    assert [r.path.name for r in m.rows] == ["a.png", "b.png"]
    first, second = m.rows
    assert first.path == tmp_path / "imgs" / "a.png"
    assert first.boxes == {"marker": (1.0, 2.0, 5.0, 6.0)}
    assert first.masks == {"lung": tmp_path / "mask.png"}
    assert first.groups == {"site": "B"} and first.label == "nodule"
    assert second.label is None and second.boxes == {"marker": (0.0, 0.0, 4.0, 4.0)}
    assert m.group_columns == ["site"] and m.roles == ["lung", "marker"]
    assert len({r.key for r in m.rows}) == 2


def test_manifest_without_path_column_or_with_reserved_role_is_a_usage_error(tmp_path):
    (tmp_path / "a.csv").write_text("file,label\nx.png,1\n")
    with pytest.raises(UsageError, match="no 'path' column"):
        read_manifest(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("path,border_box\nx.png,0 0 1 1\n")
    with pytest.raises(UsageError, match="reserved"):
        read_manifest(tmp_path / "b.csv")
    with pytest.raises(UsageError, match="not found"):
        load_dataset(tmp_path / "nothing.csv")


def test_parse_box_accepts_commas_and_empty_cells():
    assert parse_box("1,2,3,4") == (1.0, 2.0, 3.0, 4.0)
    assert parse_box("  ") is None
    with pytest.raises(UsageError, match="four numbers"):
        parse_box("a b c d")


def test_age_bands():
    assert [age_band(a) for a in (None, 5, 18, 59.9, 60, 95)] == [
        "", "0-17", "18-39", "40-59", "60-79", "80+"
    ]


def test_dicom_folder_groups_come_from_tags(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    for i, (maker, sex, age) in enumerate([("ACME", "F", "045Y"), ("Other", "M", "070Y")]):
        ds = pydicom.dcmread(src)
        ds.Manufacturer, ds.PatientSex, ds.PatientAge = maker, sex, age
        ds.save_as(tmp_path / f"im{i}.dcm")
    (tmp_path / "notes.txt").write_text("not dicom")
    m = load_dataset(tmp_path)
    assert len(m.rows) == 2 and m.problems == []
    assert m.rows[0].groups["Manufacturer"] == "ACME"
    assert m.rows[0].groups["AgeBand"] == "40-59" and m.rows[1].groups["AgeBand"] == "60-79"
    assert {"Manufacturer", "PatientSex", "AgeBand"} <= set(m.group_columns)
    assert all(r.label is None for r in m.rows)


def test_labelled_manifest_needs_a_label_column_and_labels(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,site\na.png,A\n")
    with pytest.raises(UsageError, match="path and label"):
        read_manifest(tmp_path / "m.csv", labelled=True)
    (tmp_path / "n.csv").write_text("path,label\na.png,\na.png,normal\n")
    m = read_manifest(tmp_path / "n.csv", labelled=True)
    assert [p.reason for p in m.problems] == ["no label"] and len(m.rows) == 1


def test_evaluate_reads_the_manifest_like_the_audit_so_masks_are_not_groups(tmp_path):
    import csv

    from engine.audit.evaluate import evaluate_manifest
    from engine.demo.files import write_demo_set
    from engine.models.loaded import load_model

    manifest = write_demo_set(tmp_path, 4, 3, size=64)
    _png(tmp_path / "lung.png", 64)
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "lung_mask"])
        writer.writeheader()
        writer.writerows({**r, "lung_mask": "lung.png"} for r in rows)
    result = evaluate_manifest(manifest, load_model("demo"))
    assert result["n"] == 4 and result["failed"] == []
    assert {name.split("=")[0] for name in result["by_group"]} == {"site"}
