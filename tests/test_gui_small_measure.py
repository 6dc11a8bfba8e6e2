"""Measure ▸ distance in the window: one measurement per arming, and a click measures nothing."""

from __future__ import annotations

import pytest
from gui_fixtures import demo_window, drag
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest


@pytest.fixture
def window(qapp, tmp_path):
    win = demo_window(qapp, tmp_path)
    yield win
    win.close()


def test_a_click_draws_no_ruler_and_a_drag_measures_once_then_disarms(window):
    viewer, action = window.viewer, window.actions_by_id["measure"]
    tool = window.measure_tools.distance
    action.trigger()
    assert tool.active and action.isChecked()

    # A click without a drag: no "0.0 px" ruler, and the tool still waits for its drag.
    QTest.mouseClick(viewer.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, viewer.mapFromScene(QPointF(30, 30)))
    assert not tool.ruler.isVisible() and tool.value is None
    assert tool.active and action.isChecked()

    drag(viewer, QPointF(10, 20), QPointF(50, 20))
    assert tool.ruler.isVisible() and tool.text.endswith(("mm", "px"))
    assert window.message.text() == f"Distance {tool.text}"
    # One measurement, as clinical viewers do: the tool is off and a left drag pans again.
    assert not tool.active and not action.isChecked()
    assert viewer.dragMode() == viewer.DragMode.ScrollHandDrag
    measured = tool.text
    drag(viewer, QPointF(10, 40), QPointF(60, 60))
    assert tool.text == measured  # the pan drew no second ruler
