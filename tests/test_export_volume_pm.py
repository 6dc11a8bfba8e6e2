"""A volume's map as a multi-frame Parametric Map in the volume's geometry, checked by dciodvfy.

One frame per slice, each placed at its slice's Image Position (Patient) and derived from that
slice; the research export refers to de-identified stand-ins, filing refers to the slices and
is sent to a real Orthanc with ``explain SERIES --send``.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from volume_fixtures import ramp, write_series

from engine.cli import main
from engine.core.errors import UsageError
from engine.explain.core import MapResult
from engine.export.dicom_objects import PATIENT_STUDY, RESEARCH, volume_map_objects
from engine.studies.nifti import open_nifti
from engine.studies.volume import open_volume
from tests.pacs_fixtures import Orthanc, dciodvfy_errors

SLICES = 24


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    out = tmp_path_factory.mktemp("vol3d")
    assert main(["demo-data", "--3d", "--out", str(out), "--n", "1", "--seed", "11",
                 "--size", "64", "--slices", str(SLICES)]) == 0
    (row,) = csv.DictReader(open(out / "manifest.csv"))
    return out / row["series"], out / row["nifti"]


def _sources(folder):
    """The series' headers by SOP Instance UID."""
    return {str(ds.SOPInstanceUID): ds for ds in
            (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.glob("*.dcm"))}


def _frame_refs(pm) -> list[str]:
    return [str(group.DerivationImageSequence[0].SourceImageSequence[0]
                .ReferencedSOPInstanceUID) for group in pm.PerFrameFunctionalGroupsSequence]


def _frame_positions(pm) -> np.ndarray:
    return np.array([[float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
                     for group in pm.PerFrameFunctionalGroupsSequence])


def _frame_slices(pm, affine) -> list[int]:
    """The volume slice each frame lies on, from its plane position."""
    ijk = (_frame_positions(pm) - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    assert np.allclose(ijk[:, :2], 0, atol=1e-3) and np.allclose(ijk[:, 2], ijk[:, 2].round(),
                                                                  atol=1e-3)
    return [int(v) for v in ijk[:, 2].round()]


def test_explain_a_series_writes_a_research_parametric_map_on_its_slices(series, tmp_path):
    folder_in, _ = series
    out = tmp_path / "out"
    assert main(["explain", str(folder_in), "--model", "demo-3d", "--out", str(out),
                 "--report", "pm"]) == 0
    folder = out / "case-001"
    (path,) = folder.glob("explanation_pm_*.dcm")
    assert dciodvfy_errors(path) == []
    result = json.loads((folder / "result.json").read_text())
    assert result["export"] == {"kind": "research", "identifiers": "removed"}
    pm = pydicom.dcmread(path)
    assert int(pm.NumberOfFrames) == SLICES
    heat = np.load(folder / result["maps"][0]["heatmap"])
    values = np.frombuffer(pm.FloatPixelData, dtype="<f4").reshape(heat.shape)

    # Every frame lies on one slice of the volume, each slice has one frame, and the frame
    # holds that slice's map (the frames may run in either direction along the normal).
    geometry = json.loads((folder / "volume_geometry.json").read_text())
    slices = _frame_slices(pm, np.array(geometry["affine"]))
    assert sorted(slices) == list(range(SLICES))
    np.testing.assert_array_equal(values, heat[slices])
    sources = _sources(folder_in)
    expected = np.array([[float(v) for v in sources[geometry["sop_instance_uids"][k]]
                          .ImagePositionPatient] for k in slices])
    np.testing.assert_allclose(_frame_positions(pm), expected, atol=1e-3)
    shared = pm.SharedFunctionalGroupsSequence[0]
    first = next(iter(sources.values()))
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        [float(v) for v in first.ImageOrientationPatient], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
                               [float(v) for v in first.PixelSpacing], atol=1e-6)

    # Research: no identifier, no source UID, one de-identified stand-in per slice.
    data = path.read_bytes()
    for value in (str(first.PatientID), first.StudyInstanceUID, first.SeriesInstanceUID,
                  first.FrameOfReferenceUID, *sources):
        assert value.encode() not in data, value
    assert pm.PatientIdentityRemoved == "YES" and pm.PatientName == "Anonymous"
    assert len(set(_frame_refs(pm))) == SLICES


def test_filing_kind_references_every_source_slice_in_its_study(series):
    folder_in, _ = series
    volume = open_volume(folder_in)
    heat = np.random.default_rng(1).random(volume.shape, dtype=np.float32)
    maps = {("gradcam", "features.6"): MapResult("gradcam", "features.6", heat, heat)}
    (obj,) = volume_map_objects(maps, volume, kind=PATIENT_STUDY)
    pm = obj.dataset
    sources = _sources(folder_in)
    first = next(iter(sources.values()))
    assert pm.StudyInstanceUID == first.StudyInstanceUID
    assert pm.PatientID == first.PatientID
    assert pm.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert pm.SeriesInstanceUID != first.SeriesInstanceUID
    # Each frame is derived from the slice it lies on, and the series lists every slice.
    slices = _frame_slices(pm, volume.affine)
    assert sorted(slices) == list(range(SLICES))
    assert _frame_refs(pm) == [volume.sop_uids[k] for k in slices]
    values = np.frombuffer(pm.FloatPixelData, dtype="<f4").reshape(heat.shape)
    np.testing.assert_array_equal(values, heat[slices])
    listed = {str(ref.ReferencedSOPInstanceUID) for s in pm.ReferencedSeriesSequence
              for ref in s.ReferencedInstanceSequence}
    assert listed == set(sources)
    expected = np.array([[float(v) for v in sources[volume.sop_uids[k]].ImagePositionPatient]
                         for k in slices])
    np.testing.assert_allclose(_frame_positions(pm), expected, atol=1e-3)


def test_an_oblique_series_keeps_its_orientation_and_spacing(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    orientation = (c, s, 0.0, -s, c, 0.0)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = [tuple(np.array([5.0, -3.0, 10.0]) + 3.0 * k * normal) for k in range(4)]
    write_series(tmp_path / "oblique", ramp(4), positions, orientation=orientation,
                 spacing=(0.7, 0.9))
    volume = open_volume(tmp_path / "oblique")
    heat = np.zeros(volume.shape, np.float32)
    heat[2, 3, 1] = 1.0
    maps = {("occlusion", "input"): MapResult("occlusion", "input", heat, heat)}
    (obj,) = volume_map_objects(maps, volume, kind=RESEARCH)
    pm = obj.dataset
    shared = pm.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        orientation, atol=1e-6)
    measures = shared.PixelMeasuresSequence[0]
    np.testing.assert_allclose([float(v) for v in measures.PixelSpacing], [0.7, 0.9])
    assert float(measures.SpacingBetweenSlices) == pytest.approx(3.0)
    slices = _frame_slices(pm, volume.affine)
    assert sorted(slices) == [0, 1, 2, 3]
    values = np.frombuffer(pm.FloatPixelData, dtype="<f4").reshape(heat.shape)
    np.testing.assert_array_equal(values, heat[slices])
    path = tmp_path / "pm.dcm"
    path.write_bytes(obj.to_bytes())
    assert dciodvfy_errors(path) == []


def test_a_nifti_volume_has_no_slices_to_refer_to(series):
    _, nifti = series
    volume = open_nifti(nifti)
    heat = np.zeros(volume.shape, np.float32)
    maps = {("gradcam", "x"): MapResult("gradcam", "x", heat, heat)}
    with pytest.raises(UsageError, match="not a DICOM series"):
        volume_map_objects(maps, volume, kind=RESEARCH)


def test_a_3d_models_volume_reports_come_from_the_command_line(series, tmp_path, capsys):
    folder_in, _ = series
    assert main(["explain", str(folder_in), "--model", "demo-3d", "--method", "gradcam,layercam",
                 "--out", str(tmp_path), "--report", "pdf,html,pm,nifti"]) == 0
    folder = tmp_path / "case-001"
    for name in ("report.pdf", "report.html", "report.json", "result.json"):
        assert (folder / name).is_file(), name
    assert len(list(folder.glob("explanation_pm_*.dcm"))) == 2
    assert len(list(folder.glob("heatmap_*.nii.gz"))) == 2  # every map, not one on a screen
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Grad-CAM" in html and "LayerCAM" in html


def test_reports_a_volume_cannot_have_are_one_line_before_any_work(series, tmp_path, capsys):
    folder_in, _ = series
    assert main(["explain", str(folder_in), "--model", "demo-3d", "--out", str(tmp_path / "a"),
                 "--report", "pdf,sr"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--report sr" in err and "pdf, html, png, nifti" in err and "\n" not in err
    # A 2-D model run over the slices has no volume report: only the Parametric Map.
    assert main(["explain", str(folder_in), "--model", "demo", "--slices", "all",
                 "--out", str(tmp_path / "b"), "--report", "pdf"]) == 2
    err = capsys.readouterr().err.strip()
    assert "writes pm" in err and "\n" not in err
    # NIfTI maps are for volumes: asked for a 2-D image, the command refuses up front.
    png = tmp_path / "flat.png"
    PILImage.fromarray(np.full((64, 64), 128, np.uint8)).save(png)
    assert main(["explain", str(png), "--model", "demo", "--out", str(tmp_path / "c"),
                 "--report", "nifti"]) == 2
    err = capsys.readouterr().err.strip()
    assert "volumes only" in err and "\n" not in err
    for name in "abc":
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("node", ["web", "dimse"])
def test_explain_send_files_a_volume_map_into_the_series_study(series, tmp_path, node,
                                                               monkeypatch, capsys):
    folder_in, _ = series
    sources = _sources(folder_in)
    first = next(iter(sources.values()))
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        assert all(server.upload(p) for p in sorted(folder_in.glob("*.dcm")))
        monkeypatch.setenv("LUCIDA_PACS_CONFIG", str(server.node_file(tmp_path)))
        out = tmp_path / "out"
        assert main(["explain", str(folder_in), "--model", "demo-3d", "--out", str(out),
                     "--send", node, "--keep-identifiers"]) == 0
        assert f"into study {first.StudyInstanceUID} on {node}" in capsys.readouterr().out
        folder = out / folder_in.name
        record = json.loads((folder / "result.json").read_text())["export"]
        assert record["kind"] == PATIENT_STUDY and record["sent"] is True
        (item,) = record["instances"]
        assert item["stored"]
        found = server.instances_of_series(first.StudyInstanceUID, item["series_instance_uid"])
        assert [i["00080018"]["Value"][0] for i in found] == [item["sop_instance_uid"]]
    finally:
        server.stop()
    (path,) = (folder / "patient_study").glob("pm_*.dcm")
    assert dciodvfy_errors(path) == []
    pm = pydicom.dcmread(path)
    assert pm.StudyInstanceUID == first.StudyInstanceUID and int(pm.NumberOfFrames) == SLICES
    assert set(_frame_refs(pm)) == set(sources)
