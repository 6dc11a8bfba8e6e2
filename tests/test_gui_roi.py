"""Region of interest: drawn on the viewer in image pixels, measured by the trust panel."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gui_fixtures import drag, qimage_pixels, raster_image
from PySide6.QtCore import QPointF, QSettings, Qt
from PySide6.QtGui import QTransform
from PySide6.QtTest import QTest

from gui.roi_item import ROI_COLOR, roi_from_points
from gui.viewer import QtImageViewer

#: Generous limit for an explanation or metrics run on a loaded 2-core machine.
WAIT_MS = 60_000


@pytest.fixture
def viewer(qtbot, tmp_path):
    widget = QtImageViewer()
    qtbot.addWidget(widget)
    widget.resize(360, 300)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_image(raster_image(tmp_path))  # 48 rows x 64 columns
    widget.setTransform(QTransform.fromScale(2.5, 2.5))
    widget.centerOn(QPointF(30.0, 20.0))
    return widget


def _is_roi_colour(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (abs(r - ROI_COLOR.red()) < 40) & (abs(g - ROI_COLOR.green()) < 40) & (
        abs(b - ROI_COLOR.blue()) < 40)


def test_drag_draws_a_box_in_image_pixels_at_a_zoom(viewer, qtbot):
    viewer.set_roi_tool("box")
    with qtbot.waitSignal(viewer.sig_roi_changed, timeout=1000) as blocker:
        drag(viewer, QPointF(10.5, 8.5), QPointF(30.5, 20.5))
    # Every pixel the drag touched, end-exclusive: columns 10..30 and rows 8..20.
    assert blocker.args == [((10, 8, 31, 21), "box")]
    assert viewer.roi() == ((10, 8, 31, 21), "box")
    # A drag backwards (bottom-right to top-left) gives the same box.
    with qtbot.waitSignal(viewer.sig_roi_changed, timeout=1000) as blocker:
        drag(viewer, QPointF(30.5, 20.5), QPointF(10.5, 8.5))
    assert blocker.args == [((10, 8, 31, 21), "box")]

    # The outline is drawn on those pixels after a further zoom: its left edge sits at the
    # screen column of image x = 10, and is nowhere near the column of x = 20.
    viewer.zoom_by(1.4, QPointF(viewer.mapFromScene(QPointF(20.0, 14.0))))
    shot = qimage_pixels(viewer.viewport().grab().toImage())
    dpr = viewer.viewport().devicePixelRatioF()
    edge = viewer.mapFromScene(QPointF(10.0, 14.0))
    x, y = round(edge.x() * dpr), round(edge.y() * dpr)
    band = _is_roi_colour(shot[y - 12: y + 12, x - 3: x + 4])
    assert band.any(), "no dashed ROI outline at the ROI's left edge"
    inside = viewer.mapFromScene(QPointF(20.0, 14.0))
    xi, yi = round(inside.x() * dpr), round(inside.y() * dpr)
    assert not _is_roi_colour(shot[yi - 12: yi + 12, xi - 3: xi + 4]).any()


def test_ellipse_tool_clear_and_escape(viewer, qtbot):
    viewer.set_roi_tool("ellipse")
    with qtbot.waitSignal(viewer.sig_roi_changed, timeout=1000) as blocker:
        # Past the image's right and bottom edges: clipped to the image.
        drag(viewer, QPointF(40.2, 30.2), QPointF(80.0, 70.0))
    assert blocker.args == [((40, 30, 64, 48), "ellipse")]

    with qtbot.waitSignal(viewer.sig_roi_changed, timeout=1000) as blocker:
        viewer.clear_roi()
    assert blocker.args == [None]
    assert viewer.roi() is None

    # A drag that covers no pixel draws nothing, nor does a click (it would make a 1-pixel
    # ROI that nobody meant).
    with qtbot.assertNotEmitted(viewer.sig_roi_changed):
        drag(viewer, QPointF(-8.0, -8.0), QPointF(-2.0, -3.0))
        drag(viewer, QPointF(20.2, 20.2), QPointF(20.4, 20.4))
    assert viewer.roi() is None

    with qtbot.waitSignal(viewer.sig_roi_tool_changed, timeout=1000) as blocker:
        QTest.keyClick(viewer, Qt.Key.Key_Escape)
    assert blocker.args == [""]
    assert viewer.roi_tool is None
    # Left drag pans again and draws nothing.
    before = viewer.mapToScene(viewer.viewport().rect().center())
    with qtbot.assertNotEmitted(viewer.sig_roi_changed):
        drag(viewer, QPointF(20.0, 20.0), QPointF(30.0, 25.0))
    after = viewer.mapToScene(viewer.viewport().rect().center())
    assert (after - before).manhattanLength() > 5


def test_points_become_end_exclusive_pixel_boxes():
    assert roi_from_points(QPointF(2.0, 3.0), QPointF(5.0, 7.0), (10, 10)) == (2, 3, 5, 7)
    assert roi_from_points(QPointF(2.4, 3.6), QPointF(5.1, 7.9), (10, 10)) == (2, 3, 6, 8)
    assert roi_from_points(QPointF(-5, -5), QPointF(50, 50), (10, 20)) == (0, 0, 20, 10)
    # A thin drag inside one column still covers that column.
    assert roi_from_points(QPointF(3.2, 3.2), QPointF(3.3, 9.0), (10, 10)) == (3, 3, 4, 9)
    # Left of the image: clipped to its edge, nothing left.
    assert roi_from_points(QPointF(-3.0, 2.0), QPointF(-1.0, 8.0), (10, 10)) is None


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    from gui.main_window import DEMO_STUDY, QtMainWindow

    if not DEMO_STUDY.is_dir():
        pytest.fail(f"demo study missing at {DEMO_STUDY}; run `make demo-models`")
    path = tmp_path_factory.mktemp("settings") / "lucida.ini"
    win = QtMainWindow(settings=QSettings(str(path), QSettings.Format.IniFormat))
    win.resize(1200, 800)
    win.show()
    drawn = []
    win.sig_map_drawn.connect(lambda m, lay: drawn.append((m, lay)))
    win.open_demo()
    deadline = time.monotonic() + WAIT_MS / 1000
    while not (drawn and win.result is not None) and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert drawn, "the demo never drew an explanation"
    yield win
    win.close()


def test_metrics_with_an_roi_reach_the_trust_panel(window, qtbot):
    heat = window.layer_model.heatmap
    rows, cols = heat.shape
    peak_y, peak_x = (int(v) for v in np.unravel_index(np.argmax(heat), heat.shape))
    around = (max(peak_x - 6, 0), max(peak_y - 6, 0), min(peak_x + 7, cols),
              min(peak_y + 7, rows))
    window.set_roi(around, "ellipse")
    assert window.roi == around and window.roi_shape == "ellipse"
    assert "ellipse ROI" in window.caption.text()

    progress = []
    window.worker.sig_progress.connect(lambda _id, f, _m: progress.append(f))
    errors = []
    window.sig_error.connect(errors.append)
    window.open_trust_panel()
    panel = window.trust_panel
    qtbot.waitUntil(lambda: "pointing_hit" in panel.metrics or bool(errors),
                    timeout=WAIT_MS)
    assert not errors
    metrics = panel.metrics
    assert metrics["roi"] == list(around) and metrics["roi_shape"] == "ellipse"
    assert metrics["pointing_hit"] is True
    assert 0.0 < metrics["energy_in_roi"] < 1.0
    assert "deletion_auc" in metrics
    texts = panel.row_texts()
    assert texts["Peak inside ROI"] == "yes"
    assert progress and panel.progress.isHidden()

    # A new ROI on the same map: only the ROI keys change, at once.
    far = (0, 0, 8, 8) if peak_x > 16 or peak_y > 16 else (cols - 8, rows - 8, cols, rows)
    deletion = metrics["deletion_auc"]
    start = time.perf_counter()
    window.set_roi(far, "box")
    qtbot.waitUntil(lambda: panel.metrics.get("roi") == list(far), timeout=WAIT_MS)
    print(f"ROI-only update in {1000 * (time.perf_counter() - start):.0f} ms")
    x0, y0, x1, y1 = far
    expected = heat[y0:y1, x0:x1].sum() / heat.sum()
    assert panel.metrics["energy_in_roi"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert panel.metrics["pointing_hit"] is False
    assert panel.metrics["deletion_auc"] == deletion

    window.clear_roi()
    qtbot.waitUntil(lambda: "pointing_hit" not in panel.metrics, timeout=5000)
    assert panel.metrics["deletion_auc"] == deletion
    assert "Peak inside ROI" not in panel.row_texts()


def test_trust_panel_follows_a_layer_change(window, qtbot):
    window.docks["trust"].show()
    panel = window.trust_panel
    qtbot.waitUntil(lambda: panel.metrics.get("layer") == window.layer
                    and "deletion_auc" in panel.metrics, timeout=WAIT_MS)
    before = panel.metrics
    other = next(info.name for info in window.model.layers()
                 if info.name != window.layer and info.kind == "spatial")
    window.set_layer(other)  # served from the cache: Grad-CAM computed every layer
    qtbot.waitUntil(lambda: panel.metrics.get("layer") == other, timeout=WAIT_MS)
    # case_metrics names the layer it measured: this is a new run for the new map.
    assert "deletion_auc" in panel.metrics and panel.metrics is not before
    window.set_layer(before["layer"])


def test_escape_leaves_the_roi_tool_before_cancelling_work(window, qtbot):
    window.actions_by_id["roi_box"].trigger()
    assert window.viewer.roi_tool == "box"
    window.actions_by_id["cancel"].trigger()
    assert window.viewer.roi_tool is None
    assert not window.actions_by_id["roi_box"].isChecked()
    window.actions_by_id["roi_ellipse"].trigger()
    assert window.viewer.roi_tool == "ellipse"
    window.actions_by_id["roi_ellipse"].trigger()  # toggling it off pans again
    assert window.viewer.roi_tool is None
    window.docks["trust"].hide()


def test_another_image_drops_the_roi(window, qtbot):
    # An ROI marks pixels of one image; on another it would mark other anatomy.
    window.set_roi((2, 2, 10, 10))
    assert "box ROI" in window.caption.text()
    with qtbot.waitSignal(window.viewer.sig_roi_changed, timeout=1000) as blocker:
        window.show_image(window.image)
    assert blocker.args == [None]
    assert window.roi is None and window.viewer.roi() is None
    assert "ROI" not in window.caption.text()
