"""The viewer: window/level by right drag, presets, invert, zoom, frames, pixel readout."""

from __future__ import annotations

import numpy as np
import pytest
from gui_fixtures import ct_image, multiframe_image, raster_image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from gui.viewer import CT_PRESETS, QtImageViewer


def _pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    ptr = image.constBits()
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].copy()


@pytest.fixture
def viewer(qtbot):
    widget = QtImageViewer()
    qtbot.addWidget(widget)
    widget.resize(300, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_right_drag_changes_window_and_image(viewer):
    viewer.set_image(ct_image())
    start_window = viewer.window
    before = _pixels(viewer.rendered_image())
    port = viewer.viewport()
    QTest.mousePress(port, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(100, 100))
    QTest.mouseMove(port, QPoint(160, 70))
    QTest.mouseRelease(port, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                       QPoint(160, 70))
    center, width = viewer.window
    assert width > start_window[1]  # dragged right: wider
    assert center < start_window[0]  # dragged up: lower level
    after = _pixels(viewer.rendered_image())
    assert np.abs(after.astype(int) - before).mean() > 1.0


def test_ct_presets_reset_and_invert(viewer):
    viewer.set_image(ct_image())
    default = viewer.window
    lung = _pixels(viewer.rendered_image())
    name, center, width = CT_PRESETS[2]
    viewer.set_window(center, width)
    assert viewer.window == (center, width)
    assert not np.array_equal(lung, _pixels(viewer.rendered_image()))
    viewer.reset_window()
    assert viewer.window == default
    np.testing.assert_array_equal(lung, _pixels(viewer.rendered_image()))
    viewer.set_invert(True)
    np.testing.assert_array_equal(255 - lung, _pixels(viewer.rendered_image()))


def test_wheel_zoom_keeps_the_point_under_the_cursor(viewer, qtbot, tmp_path):
    viewer.set_image(raster_image(tmp_path))
    cursor = QPointF(120, 90)
    before = viewer.mapToScene(cursor.toPoint())
    zoom = viewer.zoom()
    from PySide6.QtCore import QPoint as P
    from PySide6.QtGui import QWheelEvent

    event = QWheelEvent(cursor, viewer.viewport().mapToGlobal(cursor), P(0, 0), P(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    viewer.wheelEvent(event)
    assert viewer.zoom() == pytest.approx(zoom * 1.44, rel=1e-3)
    after = viewer.mapToScene(cursor.toPoint())
    assert abs(after.x() - before.x()) < 1.0 and abs(after.y() - before.y()) < 1.0
    viewer.one_to_one()
    assert viewer.zoom() == 1.0


def test_frames_scroll_and_cine(viewer, qtbot):
    image = multiframe_image()
    assert image.n_frames > 1
    viewer.set_image(image)
    seen = []
    viewer.sig_frame_changed.connect(seen.append)
    viewer.step_frame(1)
    assert viewer.frame == 1 and seen == [1]
    viewer.step_frame(-2)
    assert viewer.frame == image.n_frames - 1  # wraps around
    assert viewer.toggle_cine()
    qtbot.waitUntil(lambda: len(seen) >= 4, timeout=3000)
    assert not viewer.toggle_cine()


def test_pixel_readout_is_in_modality_units(viewer, qtbot):
    image = ct_image()
    viewer.set_image(image)
    texts = []
    viewer.sig_pixel_info.connect(texts.append)
    scene_point = QPointF(10.5, 20.5)
    QTest.mouseMove(viewer.viewport(), viewer.mapFromScene(scene_point))
    hu = float(image.modality_frame(0)[20, 10])
    assert texts and texts[-1].startswith("x 10  y 20")
    assert f"{hu:.6g} HU" in texts[-1]
