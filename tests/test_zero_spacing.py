"""A pixel spacing of ``0\\0`` (or negative, non-finite, malformed) is an unknown size everywhere.

The Parametric Map of such an image states no Pixel Spacing and passes dciodvfy, a ruler on it
measures in pixels, ``info`` reports no spacing, and a series of such slices is no volume.
"""

from __future__ import annotations

import json

import pydicom
import pytest
from export_fixtures import fake_result, write_fake_dicom
from pacs_fixtures import CT_SMALL, dciodvfy_errors
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from PySide6.QtCore import QPointF
from volume_fixtures import axial_positions, ramp, write_enhanced, write_series

from engine.cli import main as cli
from engine.export import write_reports
from engine.studies.calibration import distance, length_text, pixel_spacing, valid_spacing
from engine.studies.image import open_image
from engine.studies.volume import GeometryError, open_volume
from gui.measure_tools import MeasureTools
from gui.viewer import QtImageViewer

#: Values of Pixel Spacing that state no size.
NO_SIZES = ["0\\0", "-0.5\\-0.5", "0.5\\0", "nan\\nan", "inf\\0.5", "abc\\def", "0.5",
            "0.5\\0.5\\0.5"]


def _ct_with(folder, name: str, spacing: str):
    """pydicom's CT_small.dcm (full patient geometry) with its Pixel Spacing replaced."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.PixelSpacing = spacing
    path = folder / name
    ds.save_as(path)
    return path


def _cr_with(folder, name: str, spacing: str):
    """A projection image (no patient geometry) with the given Pixel Spacing."""
    path = write_fake_dicom(folder / name)
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = spacing
    ds.save_as(path)
    return path


@pytest.mark.parametrize("value", NO_SIZES)
def test_valid_spacing_reads_no_size_from_zero_negative_or_malformed_values(value):
    assert valid_spacing(value) is None
    assert valid_spacing("0.7\\0.8") == (0.7, 0.8)
    assert valid_spacing("2.5", 1) == (2.5,) and valid_spacing("0", 1) is None


@pytest.mark.parametrize("make", [_ct_with, _cr_with], ids=["ct-geometry", "projection"])
def test_parametric_map_of_a_zero_spacing_image_states_no_spacing_and_passes_dciodvfy(
        make, tmp_path):
    image = open_image(make(tmp_path, "zero.dcm", "0\\0"))
    written = write_reports(fake_result(image), image, tmp_path / "out", ["pm"])
    maps = [p for p in written if p.name.startswith("explanation_pm_")]
    assert maps
    for path in maps:
        assert dciodvfy_errors(path) == [], path.name
        measures = pydicom.dcmread(path).SharedFunctionalGroupsSequence[0] \
            .PixelMeasuresSequence[0]
        assert "PixelSpacing" not in measures


def test_parametric_map_keeps_a_valid_spacing(tmp_path):
    image = open_image(_cr_with(tmp_path, "half.dcm", "0.5\\0.25"))
    written = write_reports(fake_result(image), image, tmp_path / "out", ["pm"])
    path = next(p for p in written if p.name.startswith("explanation_pm_"))
    assert dciodvfy_errors(path) == []
    measures = pydicom.dcmread(path).SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == [0.5, 0.25]
    assert "SliceThickness" not in measures  # a projection image has none to state


@pytest.fixture
def viewer(qtbot):
    widget = QtImageViewer()
    qtbot.addWidget(widget)
    widget.resize(320, 320)
    widget.tools = MeasureTools(widget)
    return widget


def test_ruler_on_a_zero_spacing_image_measures_pixels(viewer, tmp_path):
    image = open_image(_ct_with(tmp_path, "zero.dcm", "0\\0"))
    spacing = pixel_spacing(image)
    assert not spacing.known and spacing.units == "px"
    assert length_text(distance(spacing, (10, 10), (40, 50)), spacing) == "50.0 px"
    viewer.set_image(image)
    assert viewer.tools.distance.measure(QPointF(10, 10), QPointF(40, 50)) == "50.0 px"


def test_a_frame_spacing_of_zero_does_not_hide_the_shared_one(tmp_path):
    path = write_enhanced(tmp_path / "enhanced.dcm", ramp(3), axial_positions(3), [0, 1, 2])
    ds = pydicom.dcmread(path)
    measures = Dataset()
    measures.PixelSpacing = "0\\0"
    ds.PerFrameFunctionalGroupsSequence[1].PixelMeasuresSequence = Sequence([measures])
    ds.save_as(path)
    spacing = pixel_spacing(open_image(path), frame=1)
    assert spacing.known and (spacing.row_mm, spacing.col_mm) == (0.7, 0.8)


def test_info_shows_no_spacing_for_zero_and_the_spacing_otherwise(tmp_path, capsys):
    assert cli(["info", str(_ct_with(tmp_path, "zero.dcm", "0\\0"))]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_spacing"] is None
    assert cli(["info", str(_cr_with(tmp_path, "half.dcm", "0.5\\0.25"))]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_spacing"] == {
        "row_mm": 0.5, "column_mm": 0.25, "source": "PixelSpacing"}


def test_a_series_with_zero_spacing_is_no_volume_and_says_why(tmp_path, capsys):
    folder = tmp_path / "series"
    write_series(folder, ramp(3), axial_positions(3), spacing=(0, 0))
    with pytest.raises(GeometryError) as caught:
        open_volume(folder)
    line = caught.value.one_line()
    assert 'series 7 "TEST SERIES"' in line and "PixelSpacing" in line
    assert "Fix: correct PixelSpacing" in line and "\n" not in line
    assert cli(["info", str(folder)]) == 0
    entries = json.loads(capsys.readouterr().out)
    volume = next(e for e in entries if e.get("kind") == "volume")
    assert "spacing_mm" not in volume and "PixelSpacing" in volume["geometry_error"]
    assert all(e["pixel_spacing"] is None for e in entries if e.get("kind") == "dicom")
