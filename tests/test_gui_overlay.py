"""The overlay model, its bound controls, and what the viewer draws from them."""

from __future__ import annotations

import numpy as np
import pytest
from gui_fixtures import ramp_heatmap, raster_image

from gui.overlay_controls import QtOverlayControls
from gui.overlay_layer import OverlayLayer
from gui.viewer import QtImageViewer


@pytest.fixture
def bound(qtbot, tmp_path):
    """A viewer showing a grey raster with a left-to-right heat ramp, plus its controls."""
    image = raster_image(tmp_path)
    layer = OverlayLayer()
    viewer = QtImageViewer(layer)
    controls = QtOverlayControls(layer)
    qtbot.addWidget(viewer)
    qtbot.addWidget(controls)
    viewer.resize(200, 200)
    viewer.set_image(image)
    layer.heatmap = ramp_heatmap(image.shape)
    return layer, viewer, controls


def test_opacity_slider_changes_drawn_alpha(bound):
    layer, viewer, controls = bound
    before = viewer.overlay_image().pixelColor(30, 10).alpha()
    controls.opacity_slider.setValue(0.8)
    after = viewer.overlay_image().pixelColor(30, 10).alpha()
    assert layer.opacity == pytest.approx(0.8)
    assert before == round(0.45 * 255)
    assert after == round(0.8 * 255)


def test_opacity_changes_the_composited_view(bound):
    layer, viewer, _controls = bound
    layer.opacity = 0.0
    plain = viewer.grab().toImage()
    layer.opacity = 1.0
    full = viewer.grab().toImage()
    centre = plain.rect().center()
    assert plain.pixelColor(centre) != full.pixelColor(centre)


def test_model_changes_reach_widgets_without_loops(bound):
    layer, _viewer, controls = bound
    seen = []
    layer.sig_changed.connect(seen.append)
    layer.colormap = "viridis"
    layer.threshold = 0.3
    layer.visible = False
    assert controls.colormap_combo.currentText() == "viridis"
    assert controls.threshold_slider.value() == pytest.approx(0.3)
    assert not controls.visible_box.isChecked()
    # One event per change: the widgets' write-back did not echo into the model.
    assert seen == ["colormap", "threshold", "visible"]


def test_threshold_and_visibility_hide_pixels(bound):
    layer, viewer, _controls = bound
    layer.threshold = 0.5
    drawn = viewer.overlay_image()
    assert drawn.pixelColor(1, 5).alpha() == 0  # heat ~0 at the left edge
    assert drawn.pixelColor(drawn.width() - 2, 5).alpha() == round(0.45 * 255)
    # Just above the threshold the overlay fades in rather than starting at full opacity.
    column = next(c for c in range(drawn.width()) if drawn.pixelColor(c, 5).alpha() > 0)
    assert 0 < drawn.pixelColor(column, 5).alpha() < round(0.45 * 255)
    layer.visible = False
    assert viewer.overlay_image().isNull()


def test_scale_image_stretches_and_fixed_keeps_values(bound):
    layer, _viewer, _controls = bound
    layer.heatmap = np.full((8, 8), 0.2, np.float32) + np.eye(8, dtype=np.float32) * 0.2
    layer.scale = "image"
    assert layer.scaled().max() == pytest.approx(1.0)
    layer.scale = "fixed"
    assert layer.scaled().max() == pytest.approx(0.4)


def test_colorbar_follows_colormap_and_scale(bound):
    layer, _viewer, controls = bound
    controls.scale_combo.setCurrentIndex(controls.scale_combo.findData("fixed"))
    assert layer.scale == "fixed"
    assert controls.colorbar.labels() == ("0", "1")
    first = controls.colorbar.grab().toImage().pixelColor(6, 8)
    layer.colormap = "inferno"
    second = controls.colorbar.grab().toImage().pixelColor(6, 8)
    assert first != second


@pytest.mark.parametrize(("name", "value"), [("opacity", 1.5), ("colormap", "rainbow"),
                                             ("threshold", -0.1), ("scale", "log")])
def test_invalid_values_are_refused(name, value):
    layer = OverlayLayer()
    with pytest.raises(ValueError):
        setattr(layer, name, value)


def test_signed_maps_use_a_diverging_map_centred_at_zero(bound):
    from gui.overlay_layer import MapInfo

    layer, viewer, controls = bound
    rows, cols = layer.heatmap.shape
    signed = np.tile(np.linspace(-1.0, 1.0, cols, dtype=np.float32), (rows, 1))
    layer.threshold = 0.1
    layer.set_map(signed, MapInfo(scale=0.5, units="logit", signed=True))
    drawn = viewer.overlay_image()
    negative, positive = drawn.pixelColor(0, 5), drawn.pixelColor(cols - 1, 5)
    assert negative.blue() > negative.red() and positive.red() > positive.blue()
    assert negative.alpha() == positive.alpha() == round(0.45 * 255)
    assert drawn.pixelColor(cols // 2, 5).alpha() == 0  # |heat| below the threshold
    # The colour bar shows the sign: −, 0 and + in the map's units.
    assert controls.colorbar.labels() == ("−0.5", "0", "+0.5")
    assert "logit" in controls.colorbar.units() and "against" in controls.colorbar.units()
    assert layer.scaled().min() == pytest.approx(-1.0)


def test_the_absolute_scale_shares_one_maximum(bound):
    from gui.overlay_layer import MapInfo

    layer, _viewer, controls = bound
    ramp = layer.heatmap
    layer.scale = "absolute"
    layer.set_map(ramp, MapInfo(scale=0.02, units="probability drop"), shared_max=0.2)
    # A map whose own peak is a tenth of the shared maximum reaches a tenth of the colours.
    assert layer.scaled().max() == pytest.approx(0.1)
    assert controls.colorbar.labels() == ("0", "0.2")
    assert layer.value_at(0, ramp.shape[1] - 1) == pytest.approx((0.1, 0.02))
    layer.set_shared_max(None)  # alone, a map is its own maximum
    assert layer.scaled().max() == pytest.approx(1.0)


def test_the_peak_follows_the_scale_without_full_frame_work(bound):
    from gui.overlay_layer import MapInfo

    layer, _viewer, _controls = bound
    layer.scale = "absolute"
    layer.set_map(layer.heatmap, MapInfo(scale=0.03), shared_max=0.2)
    assert layer.peak() == pytest.approx(0.15)
    layer.scale = "image"
    assert layer.peak() == pytest.approx(1.0)
