"""Keyboard focus is visible on the dark theme, and a smaller window narrows its docks, not
its image."""

from __future__ import annotations

import numpy as np
import pytest
from gui_fixtures import demo_window, pump, qimage_pixels
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from gui.app import FOCUS_COLOUR, apply_dark_theme


@pytest.fixture
def themed(qapp):
    """The application's dark theme, style sheet included, for one test."""
    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    apply_dark_theme(qapp)
    yield qapp
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setPalette(palette)


def _has_colour(widget, colour: str) -> bool:
    rgb = QColor(colour)
    pixels = qimage_pixels(widget.grab().toImage()).astype(int)
    close = np.abs(pixels - [rgb.red(), rgb.green(), rgb.blue()]).sum(axis=2) <= 30
    return int(close.sum()) >= widget.height()  # at least a side of a frame


def _tool_action(window, text: str):
    return next(a for a in window.tools_menu.actions() if a.text().replace("&", "") .startswith(
        text))


def test_a_button_reached_with_tab_shows_the_focus_frame(themed, qtbot, tmp_path):
    window = demo_window(themed, tmp_path)
    try:
        _tool_action(window, "Bias audit").trigger()
        view = window.audit_view
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        button = view.demo_button
        assert not _has_colour(button, FOCUS_COLOUR)
        # The widget before the button in the Tab order, as a keyboard user comes to it.
        before = button.previousInFocusChain()
        while not (before.focusPolicy() & Qt.FocusPolicy.TabFocus and before.isEnabled()
                   and before.isVisible()):
            before = before.previousInFocusChain()
        before.setFocus(Qt.FocusReason.TabFocusReason)
        qtbot.waitUntil(before.hasFocus)
        qtbot.keyClick(before, Qt.Key.Key_Tab)
        qtbot.waitUntil(button.hasFocus)
        assert FOCUS_COLOUR in themed.styleSheet()
        qtbot.waitUntil(lambda: _has_colour(button, FOCUS_COLOUR))
    finally:
        window.close()


def test_at_1280_by_720_the_docks_give_way_to_the_image(qapp, qtbot, tmp_path):
    window = demo_window(qapp, tmp_path)
    try:
        window.resize(1440, 900)
        _tool_action(window, "Trust metrics").trigger()  # a third side column
        pump(qapp, lambda: False, 100)
        for dock, width in (("studies", 290), ("explain", 360), ("trust", 320)):
            window.resizeDocks([window.docks[dock]], [width], Qt.Orientation.Horizontal)
        pump(qapp, lambda: False, 100)
        window.resize(1280, 720)
        qtbot.waitUntil(lambda: window.size().width() == 1280)
        central = window.centralWidget()
        qtbot.waitUntil(lambda: central.width() >= 0.55 * window.width(), timeout=2000)
        assert window.viewer.width() >= 0.55 * window.width()
        # The docks stay usable.
        for dock in ("studies", "explain", "trust"):
            assert window.docks[dock].width() >= 150, dock
    finally:
        window.close()


def test_a_dock_opened_at_1280_by_720_leaves_the_image_most_of_the_width(qapp, qtbot, tmp_path):
    window = demo_window(qapp, tmp_path)
    try:
        window.resize(1280, 720)
        qtbot.waitUntil(lambda: window.size().width() == 1280)
        _tool_action(window, "Trust metrics").trigger()
        qtbot.waitUntil(lambda: window.docks["trust"].isVisible())
        qtbot.waitUntil(lambda: window.viewer.width() >= 0.55 * window.width(), timeout=2000)
        assert window.docks["trust"].width() >= 150
    finally:
        window.close()
