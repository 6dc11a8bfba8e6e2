"""Measure and orient in the viewer: distance, ROI statistics, orientation, corners, scale bar."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from gui_fixtures import PYDICOM_FILES, drag, qimage_pixels, raster_image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QTransform
from PySide6.QtTest import QTest

from engine.studies.image import open_image
from gui.measure_tools import MeasureTools
from gui.overlay_layer import owner_key
from gui.view_annotations import MARKER_COLOR
from gui.viewer import QtImageViewer


def _ct_copy(folder, name: str, **elements):
    """pydicom's CT_small.dcm with some elements replaced (None deletes one)."""
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    for keyword, value in elements.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path = folder / name
    ds.save_as(path)
    return open_image(path)


@pytest.fixture
def viewer(qtbot):
    widget = QtImageViewer()
    qtbot.addWidget(widget)
    widget.resize(420, 380)
    widget.show()
    qtbot.waitExposed(widget)
    widget.tools = MeasureTools(widget)
    return widget


def _at_one_to_one(viewer, image) -> None:
    viewer.set_image(image)
    viewer.setTransform(QTransform())  # one screen pixel per image pixel: exact drag ends
    viewer.centerOn(QPointF(64.0, 64.0))


def test_distance_of_100_pixels_at_half_a_millimetre_reads_50_mm(viewer, tmp_path):
    _at_one_to_one(viewer, _ct_copy(tmp_path, "half.dcm", PixelSpacing=[0.5, 0.5]))
    tool = viewer.tools.distance
    measured = []
    tool.sig_measured.connect(measured.append)
    tool.set_active(True)
    drag(viewer, QPointF(10, 20), QPointF(110, 20))
    assert measured == ["50.0 mm"]
    assert tool.value == pytest.approx(50.0)
    assert tool.ruler.isVisible() and tool.ruler.label.lines() == ["50.0 mm"]
    # The drag measured instead of panning or drawing an ROI.
    assert viewer.roi() is None
    # Esc leaves the tool; a left drag pans again.
    QTest.keyClick(viewer, Qt.Key.Key_Escape)
    assert not tool.active
    assert viewer.dragMode() == viewer.DragMode.ScrollHandDrag


def test_imager_pixel_spacing_is_labelled_and_no_spacing_is_pixels(viewer, tmp_path):
    image = _ct_copy(tmp_path, "detector.dcm", PixelSpacing=None, ImagerPixelSpacing=[0.2, 0.2])
    _at_one_to_one(viewer, image)
    tool = viewer.tools.distance
    tool.set_active(True)
    drag(viewer, QPointF(10, 10), QPointF(10, 60))
    assert tool.text == "10.0 mm at detector"
    _at_one_to_one(viewer, raster_image(tmp_path, (128, 128)))
    assert not tool.ruler.isVisible()  # another image: the old measurement is gone
    tool.set_active(True)  # one measurement per arming
    drag(viewer, QPointF(10, 10), QPointF(40, 50))
    assert tool.text == "50.0 px"


def test_drawing_an_roi_turns_the_ruler_off(viewer, tmp_path):
    _at_one_to_one(viewer, _ct_copy(tmp_path, "ct.dcm"))
    viewer.tools.distance.set_active(True)
    viewer.set_roi_tool("box")
    assert not viewer.tools.distance.active and viewer.roi_tool == "box"


def test_roi_label_shows_statistics_in_hu_matching_numpy(viewer, qtbot, tmp_path):
    image = _ct_copy(tmp_path, "ct.dcm")
    viewer.set_image(image)
    box = (30, 40, 81, 71)
    viewer.set_roi(box, "ellipse")
    label = viewer.tools.roi_stats
    qtbot.waitUntil(lambda: label.stats is not None)
    # The same pixels, chosen independently: centres inside the inscribed ellipse.
    values = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm").pixel_array.astype(float) - 1024
    yy, xx = np.mgrid[0:128, 0:128] + 0.5
    x0, y0, x1, y1 = box
    mask = (((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
            + ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2) <= 1
    inside = values[mask]
    stats = label.stats
    assert stats.mean == pytest.approx(inside.mean())
    assert stats.sd == pytest.approx(inside.std())
    assert (stats.minimum, stats.maximum) == (inside.min(), inside.max())
    assert stats.area == pytest.approx(mask.sum() * 0.661468**2)
    shown = label.label.lines()
    assert shown[0] == f"Mean {inside.mean():.1f} HU  SD {inside.std():.1f}"
    assert shown[2].endswith("mm²") and label.label.isVisible()
    assert not any("energy" in line for line in shown)  # no heatmap yet
    # A map over the same frame: its energy in the ROI joins the label.
    heat = np.zeros((128, 128), np.float32)
    heat[:, :64] = 1.0
    viewer.layer.set_map(heat, owner=owner_key(image, 0))
    qtbot.waitUntil(lambda: label.stats.energy is not None)
    expected = heat[mask].sum() / heat.sum()
    assert label.stats.energy == pytest.approx(expected)
    assert label.label.lines()[-1] == f"Heatmap energy {100 * expected:.1f} %"
    viewer.clear_roi()
    qtbot.waitUntil(lambda: not label.label.isVisible())


def _marker_pixels(viewer, region) -> int:
    rgb = qimage_pixels(viewer.grab().toImage()).astype(int)
    ys, xs = region
    patch = rgb[ys, xs]
    target = np.array([MARKER_COLOR.red(), MARKER_COLOR.green(), MARKER_COLOR.blue()])
    return int((np.abs(patch - target).sum(axis=2) < 60).sum())


def test_orientation_markers_on_axial_ct_small_and_a_coronal_copy(viewer, qtbot, tmp_path):
    annotations = viewer.tools.annotations
    viewer.set_image(open_image(PYDICOM_FILES / "CT_small.dcm"))
    qtbot.waitUntil(lambda: annotations.markers is not None)
    m = annotations.markers
    assert (m.left, m.right, m.top, m.bottom) == ("R", "L", "A", "P")
    h, w = viewer.viewport().height(), viewer.viewport().width()
    middle = slice(h // 2 - 20, h // 2 + 20)
    # Drawn: marker-coloured letters at the middle of the left and right edges.
    assert _marker_pixels(viewer, (middle, slice(0, 30))) > 5
    assert _marker_pixels(viewer, (middle, slice(w - 30, w))) > 5
    viewer.set_image(_ct_copy(tmp_path, "coronal.dcm", ImageOrientationPatient=[1, 0, 0, 0, 0, -1]))
    qtbot.waitUntil(lambda: annotations.markers.top == "H")
    assert (annotations.markers.bottom, annotations.markers.right) == ("F", "L")
    annotations.set_enabled(False)
    assert _marker_pixels(viewer, (middle, slice(0, 30))) == 0


def test_corners_show_patient_study_series_window_and_frame(viewer, qtbot):
    annotations = viewer.tools.annotations
    viewer.set_image(open_image(PYDICOM_FILES / "CT_small.dcm"))
    qtbot.waitUntil(annotations.showing)
    corners = annotations.corners
    assert corners.top_left == ["CompressedSamples CT1", "ID 1CT1", "Sex O"]
    assert any(line.startswith("Se ") for line in corners.top_right)
    assert corners.bottom_left[-1] == "128 × 128  CT"
    viewer.set_window(40, 400)
    assert annotations.corners.bottom_right[0] == "W 400  L 40"
    viewer.zoom_by(2.0)
    assert annotations.corners.bottom_right[1] == f"Zoom {100 * viewer.zoom():.0f} %"


def test_scale_bar_follows_the_zoom(viewer, qtbot):
    annotations = viewer.tools.annotations
    viewer.set_image(open_image(PYDICOM_FILES / "CT_small.dcm"))
    qtbot.waitUntil(annotations.showing)
    viewer.setTransform(QTransform.fromScale(2.0, 2.0))
    viewer.zoom_by(1.0)  # announce the view change
    bar = annotations.bar
    # 2 screen pixels per 0.661 mm pixel: the bar's screen length is its length in mm * 3.02.
    assert bar.screen_px == pytest.approx(bar.length * 2.0 / 0.661468)
    assert bar.screen_px <= annotations.width() * 0.25
    assert bar.label.endswith("mm") or bar.label.endswith("cm")


def test_annotations_cover_the_viewport_after_a_resize(viewer, qtbot):
    annotations = viewer.tools.annotations
    viewer.set_image(open_image(PYDICOM_FILES / "CT_small.dcm"))
    viewer.resize(700, 520)
    qtbot.waitUntil(lambda: annotations.geometry() == viewer.viewport().geometry())
    assert annotations.width() == 700
    h, w = viewer.viewport().height(), viewer.viewport().width()
    assert _marker_pixels(viewer, (slice(h // 2 - 20, h // 2 + 20), slice(w - 30, w))) > 5


def test_roi_label_stays_on_screen_at_the_right_edge(viewer, qtbot, tmp_path):
    viewer.set_image(_ct_copy(tmp_path, "ct.dcm"))
    label = viewer.tools.roi_stats.label
    for box in ((10, 40, 40, 70), (96, 40, 126, 70)):
        viewer.set_roi(box, "box")
        qtbot.waitUntil(lambda: label.isVisible())
        rect = label.deviceTransform(viewer.viewportTransform()).mapRect(
            label.boundingRect())
        assert 0 <= rect.left() and rect.right() <= viewer.viewport().width()
