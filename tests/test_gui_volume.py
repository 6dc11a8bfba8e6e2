"""The three-plane view in the real window: the demo CT series, explained with demo-3d."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from engine.studies.planes import PLANES
from engine.studies.tree import open_paths
from engine.studies.windows import window_text
from gui.file_opening import DEMO_CT
from gui.main_window import QtMainWindow
from tests.gui_fixtures import pump, raster_image


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One window on the demo study, its CT series shown and explained with demo-3d."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("volume_gui")
    win = QtMainWindow(settings=QSettings(str(folder / "lucida.ini"),
                                          QSettings.Format.IniFormat))
    win.resize(1440, 900)
    win.show()
    drawn = []
    win.volumes.sig_map_drawn.connect(lambda: drawn.append(win.layer))
    win.open_demo()
    assert pump(qapp, lambda: win.result is not None), "the demo never explained its image"
    assert win.model.name == "demo" and not win.volume_shown()
    win.browser._clicked(win.browser.volume_items()[0])
    assert pump(qapp, lambda: drawn), "the demo CT was never explained in three planes"
    win.drawn = drawn
    yield win
    win.close()


def _back_to_volume(qapp, window):
    if not window.volume_shown():
        window.browser._clicked(window.browser.volume_items()[0])
    window.volumes.set_mip(False)
    assert pump(qapp, lambda: window.volumes.is_ready() and window.volumes.heat is not None)


def _pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    buffer = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return buffer.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4].reshape(
        image.height(), image.width(), 4).copy()


def test_the_demo_ct_opens_in_three_planes_with_demo_3d(window):
    assert window.stack.currentWidget() is window.volume_view
    assert window.model.name == "demo-3d", "the demo switches to its 3-D model for a volume"
    volume = window.volumes.volume
    assert volume.shape == (64, 128, 128) and volume.modality == "CT"
    for pane in window.volume_view.panes.values():
        assert pane.base is not None and not pane.base.isNull()
        assert pane.isVisible() and pane.width() > 100
    # Square pixels in patient space: each pane's image has the volume's true proportions.
    s, r, c = volume.shape
    ds, dr, dc = volume.spacing
    sagittal = window.volume_view.panes["sagittal"].base
    assert sagittal.width() / sagittal.height() == pytest.approx((r * dr) / (s * ds), rel=0.05)
    assert "64×128×128 volume" in window.caption.text()


def test_a_click_in_axial_moves_the_other_crosshairs_to_that_voxel(qapp, window):
    _back_to_volume(qapp, window)
    controller, panes = window.volumes, window.volume_view.panes
    axial = panes["axial"]
    row, col = 40.0, 100.0
    QTest.mouseClick(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     axial.to_widget(row, col).toPoint())
    qapp.processEvents()
    # The coronal pane's columns and the sagittal pane's columns are the axial's columns and
    # rows: the crosshair lands on the same patient point in all three.
    assert panes["axial"].cross == pytest.approx((row, col), abs=0.6)
    assert panes["coronal"].cross[1] == pytest.approx(col, abs=0.6)
    assert panes["sagittal"].cross[1] == pytest.approx(row, abs=0.6)
    geometry = controller.grid.geometry("axial", controller.grid.index(controller.point))
    expected = np.rint(controller.volume.patient_to_index(geometry.to_patient(row, col)))
    assert np.abs(np.array(controller.voxel()) - expected).max() <= 1
    before = controller.voxel()
    QTest.mouseClick(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     axial.to_widget(row + 20, col).toPoint())
    qapp.processEvents()
    assert controller.voxel()[0] == before[0], "a click in axial stays on its slice"
    assert controller.voxel()[1] != before[1]
    assert panes["sagittal"].cross[1] == pytest.approx(row + 20, abs=0.6)


def test_scrolling_moves_one_slice_at_a_time(qapp, window):
    _back_to_volume(qapp, window)
    controller, axial = window.volumes, window.volume_view.panes["axial"]
    start = controller.voxel()
    image = _pixels(axial.base)
    axial.setFocus()
    QTest.keyClick(axial, Qt.Key.Key_PageUp)
    qapp.processEvents()
    up = controller.voxel()[0] - start[0]
    assert abs(up) == 1, "Page Up moves one 2.5 mm slice"
    assert controller.voxel()[1:] == start[1:]
    assert not np.array_equal(_pixels(axial.base), image)
    event = QWheelEvent(QPointF(50, 50), QPointF(axial.mapToGlobal(QPoint(50, 50))),
                        QPoint(0, 0), QPoint(0, -240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(axial, event)
    qapp.processEvents()
    assert controller.voxel()[0] == start[0] - up, "two wheel notches down: two slices back"
    QTest.keyClick(axial, Qt.Key.Key_PageDown)
    QTest.keyClick(axial, Qt.Key.Key_PageDown)
    qapp.processEvents()
    assert controller.voxel()[0] == start[0] - 3 * up


def test_the_window_is_shared_by_the_three_planes(qapp, window):
    _back_to_volume(qapp, window)
    panes = window.volume_view.panes
    before = {p: _pixels(panes[p].base) for p in PLANES}
    lung = next(i for i in range(window.preset_combo.count())
                if window.preset_combo.itemText(i).startswith("Lung"))
    window.preset_picked(lung)
    qapp.processEvents()
    assert window.volumes.window == (-600.0, 1500.0)
    for plane in PLANES:
        assert not np.array_equal(_pixels(panes[plane].base), before[plane]), plane
    # A right drag in one plane changes the window of all three.
    coronal = panes["coronal"]
    centre = coronal.rect().center()
    QTest.mousePress(coronal, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                     centre)
    move = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(centre + QPoint(40, 30)),
                       QPointF(coronal.mapToGlobal(centre + QPoint(40, 30))),
                       Qt.MouseButton.NoButton, Qt.MouseButton.RightButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(coronal, move)
    QTest.mouseRelease(coronal, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(40, 30))
    center, width = window.volumes.window
    assert width > 1500.0 and center > -600.0
    assert window_text(center, width) in window.caption.text()
    window.preset_picked(0)
    assert window.volumes.window == (40.0, 400.0)


def test_the_map_is_on_all_three_planes_and_layer_switches_come_from_the_cache(qapp, window):
    _back_to_volume(qapp, window)
    controller, panes = window.volumes, window.volume_view.panes
    heat = window.layer_model.heatmap
    assert heat.shape == controller.volume.shape
    for plane in PLANES:
        overlay = _pixels(panes[plane].overlay)
        assert overlay[..., 3].max() > 0, f"no map drawn on the {plane} plane"
        assert overlay.shape[:2] == (panes[plane].base.height(), panes[plane].base.width())
    # The map on the axial plane is the map's own slice at the crosshair (resampled alike).
    k, j, i = controller.voxel()
    plane_heat = controller.overlay_values("axial")
    row, col = controller.cross("axial")
    assert plane_heat[round(row), round(col)] == pytest.approx(float(heat[k, j, i]), abs=0.15)
    forward = window.session.forward_passes
    other = next(lay for lay in ("features.3", "features.9") if lay != window.layer)
    drawn = len(window.drawn)
    window.set_layer(other)
    assert pump(qapp, lambda: len(window.drawn) > drawn)
    assert window.session.forward_passes == forward, "a layer switch runs no model"
    assert window.layer_model.heatmap is not heat
    window.set_layer("features.6")
    assert pump(qapp, lambda: window.layer_model.heatmap is heat
                and controller.heat is not None)


def test_the_mip_toggle_shows_the_map_s_projection(qapp, window):
    _back_to_volume(qapp, window)
    controller, pane = window.volumes, window.volume_view.panes["coronal"]
    QTest.mouseClick(pane, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     pane.to_widget(2, 2).toPoint())  # a corner, far from the map's peak
    qapp.processEvents()
    on_plane = controller.overlay_values("coronal").copy()
    before = _pixels(pane.overlay)
    window.volume_view.mip_box.setChecked(True)
    qapp.processEvents()
    projected = controller.overlay_values("coronal")
    assert np.array_equal(projected, controller.grid.projection(controller.heat, "coronal"))
    assert (projected >= on_plane - 1e-6).all() and projected.max() > on_plane.max()
    assert not np.array_equal(_pixels(pane.overlay), before)
    assert "map as MIP" in window.caption.text()
    window.volume_view.mip_box.setChecked(False)
    assert np.array_equal(controller.overlay_values("coronal"), on_plane)


def test_the_export_holds_the_planes_on_screen(qapp, window, tmp_path):
    from gui.volume_export import export_volume_to

    _back_to_volume(qapp, window)
    folder = tmp_path / "export"
    job = export_volume_to(window, folder)
    assert job is not None
    assert pump(qapp, lambda: not window.jobs.is_pending("export"))
    names = {p.name for p in folder.iterdir()}
    assert {"report.pdf", "report.html", "report.json", "figure_planes.png"} <= names
    assert f"heatmap_gradcam_{window.layer.replace('.', '-')}.nii.gz" in names
    assert "Exported" in window.message.text()


def test_another_volume_never_shows_this_volume_s_map(qapp, window):
    _back_to_volume(qapp, window)
    errors = []
    window.sig_error.connect(errors.append)
    window.load_model("demo")  # a 2-D model cannot explain a volume: nothing is drawn
    assert pump(qapp, lambda: window.model is not None and window.model.name == "demo")
    assert pump(qapp, lambda: any("reads 2-D images, not volumes" in e for e in errors))
    nifti = open_paths([str(DEMO_CT / "chest_ct.nii.gz")]).nifti[0]
    assert nifti.shape == window.volumes.volume.shape  # same shape: only the owner tells
    window.show_image(nifti)
    assert pump(qapp, lambda: window.volumes.is_ready())
    assert window.layer_model.heatmap is None and window.volumes.heat is None
    for pane in window.volume_view.panes.values():
        assert pane.overlay is None
    window.load_model("demo-3d")
    assert pump(qapp, lambda: window.volumes.heat is not None)
    assert window.layer_model.owner == nifti.content_id()  # by content, never by path


def test_switching_to_a_2d_image_clears_the_volume_map(qapp, window, tmp_path):
    _back_to_volume(qapp, window)
    image = raster_image(tmp_path)
    window.show_image(image)
    assert window.stack.currentWidget() is window.viewer
    assert window.volumes.volume is None and window.volumes.heat is None
    assert window.layer_model.heatmap is None or window.layer_model.heatmap.ndim == 2
    for pane in window.volume_view.panes.values():
        assert pane.base is None and pane.overlay is None
    assert pump(qapp, lambda: window.model is not None and window.model.name == "demo"), \
        "the demo goes back to its 2-D model for a 2-D image"
    assert pump(qapp, lambda: window.layer_model.heatmap is not None)
    assert window.layer_model.heatmap.shape == image.shape
