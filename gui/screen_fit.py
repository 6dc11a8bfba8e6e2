"""Keep a window inside the screen it is on: never larger than the available geometry."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QScrollArea, QWidget


def scrolling(widget: QWidget) -> QScrollArea:
    """Wrap a dock's contents so the dock never forces a minimum height on the window."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(widget)
    return area


def available_geometry(widget):
    """The available geometry (without task bars) of the screen ``widget`` is on."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(window) -> None:
    """Shrink and move ``window`` so that its frame lies inside its screen's available area.

    The frame (title bar and borders) counts: a window of the screen's size whose title bar is
    off screen cannot be moved by the user.
    """
    area = available_geometry(window)
    frame = window.frameGeometry()
    extra_w = frame.width() - window.width()
    extra_h = frame.height() - window.height()
    width = min(window.width(), area.width() - extra_w)
    height = min(window.height(), area.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    frame = window.frameGeometry()
    x = min(max(frame.x(), area.x()), area.right() + 1 - frame.width())
    y = min(max(frame.y(), area.y()), area.bottom() + 1 - frame.height())
    if (x, y) != (frame.x(), frame.y()):
        window.move(x, y)
