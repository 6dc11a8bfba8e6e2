"""The compare grid agrees with the single view: every cell drawn in the default scale, none
left computing, and the absolute scale names its shared maximum."""

from __future__ import annotations

import numpy as np
import pytest
from gui_fixtures import demo_window, pump
from PySide6.QtCore import Qt

from engine.explain.scale import DEFAULT_SCALE, format_number, shared_maxima
from gui.compare_view import COMPUTING
from gui.explain_panel import LAYER_ROLE


@pytest.fixture
def win(qapp, tmp_path):
    window = demo_window(qapp, tmp_path)
    yield window
    window.close()


def _alpha(image) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)[..., 3]


def _every_cell_ended(window) -> bool:
    grid = window.compare
    return (grid.complete() and bool(grid.cells) and not window.worker.busy()
            and not any(cell.waiting() for cell in grid.cells.values()))


def test_every_compare_cell_is_drawn_in_the_default_scale(win, qapp, qtbot):
    controls, panel = win.overlay_controls, win.panel
    assert DEFAULT_SCALE == "map" and controls.scale_combo.currentData() == "map"
    # Score-CAM's single view makes only the layer shown (a forward pass per channel), so the
    # grid finds one of its layers cached and the other one not: the job brings both back,
    # the cached one as the very map the window already holds.
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("scorecam"))
    assert pump(qapp, lambda: win.method == "scorecam" and win.layer_model.heatmap is not None
                and not win.worker.busy())
    for i in range(panel.compare_methods.count()):
        item = panel.compare_methods.item(i)
        if item.data(LAYER_ROLE) == "scorecam":
            item.setCheckState(Qt.CheckState.Checked)  # the user ticks it
    methods, layers = panel.compare_selection()
    assert "scorecam" in methods and len(methods) >= 3 and len(layers) == 2
    assert win.layer in layers  # the default layer, cached by the single view

    win.actions_by_id["compare"].trigger()
    assert win.compare_on and win.stack.currentWidget() is win.compare
    assert pump(qapp, lambda: _every_cell_ended(win)), [
        c.title.text() for c in win.compare.cells.values() if c.waiting()]
    cells = win.compare.cells
    assert len(cells) == len(methods) * len(layers)
    for (method, layer), cell in cells.items():
        title = cell.title.text()
        assert COMPUTING not in title and "under threshold" not in title, title
        assert cell.viewer.layer.scale == "map"
        drawn = cell.viewer.overlay_image()
        assert not drawn.isNull(), (method, layer)
        # Every map reaches the top of its own scale, as the single view draws it.
        assert cell.viewer.layer.peak() == pytest.approx(1.0), (method, layer)
        assert (_alpha(drawn) > 0).mean() > 0.01, (method, layer)

    # Absolute is a choice, and its entry says which maximum the cells share.
    maxima = shared_maxima((c.viewer.layer.info.scale, c.viewer.layer.info.units)
                           for c in cells.values())
    controls.scale_combo.setCurrentIndex(controls.scale_combo.findData("absolute"))
    assert win.layer_model.scale == "absolute"
    assert all(c.viewer.layer.scale == "absolute" for c in cells.values())
    text, tip = controls.scale_combo.currentText(), controls.scale_combo.toolTip()
    for units, value in maxima.items():
        assert f"{format_number(value)} {units}" in text, text
        assert f"{format_number(value)} {units}" in tip, tip
    # The strongest map of each unit reaches the top; the others are drawn against it.
    for units in maxima:
        peaks = [c.viewer.layer.peak() for c in cells.values()
                 if c.viewer.layer.info.units == units]
        assert max(peaks) == pytest.approx(1.0)
