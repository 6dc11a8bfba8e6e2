"""Keep a window inside the screen it is on, and its image the larger part of it.

A window is never larger than the available geometry. When it is made smaller, Qt keeps the
side docks' widths and takes everything from the central widget: :func:`keep_viewer_share`
narrows the side columns instead, so the image keeps most of the width.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QWidget

#: Share of the window's width the central widget (the image) keeps when the window shrinks.
VIEWER_SHARE = 0.6
#: A side column is never narrowed below this (px), nor below its own minimum.
SIDE_MIN_WIDTH = 180
#: Delay (ms) before the docks are narrowed: the layout and a new dock's own sizing go first.
SETTLE_MS = 50


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


def side_columns(window: QMainWindow) -> list[QDockWidget]:
    """One shown dock per column of the left and right dock areas (a tab group's current
    page, a stack's first dock), left to right."""
    sides = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
    columns: dict[int, QDockWidget] = {}
    for dock in window.findChildren(QDockWidget):
        if (dock.isVisible() and not dock.isFloating() and not dock.visibleRegion().isEmpty()
                and window.dockWidgetArea(dock) in sides):
            columns.setdefault(dock.geometry().x(), dock)
    return [columns[x] for x in sorted(columns)]


def share_width(window: QMainWindow, share: float = VIEWER_SHARE) -> None:
    """Narrow the side columns of ``window`` until its central widget has ``share`` of its
    width, each in proportion to its width and none below ``SIDE_MIN_WIDTH``."""
    central = window.centralWidget()
    missing = int(share * window.width()) - central.width()
    columns = side_columns(window)
    if missing <= 0 or not columns:
        return
    floors = [max(SIDE_MIN_WIDTH, d.minimumSizeHint().width()) for d in columns]
    spare = [max(0, d.width() - f) for d, f in zip(columns, floors, strict=True)]
    if not sum(spare):
        return
    cut = min(missing, sum(spare))
    widths = [d.width() - round(cut * s / sum(spare)) for d, s in zip(columns, spare,
                                                                      strict=True)]
    window.resizeDocks(columns, widths, Qt.Orientation.Horizontal)


class _ShareOnResize(QObject):
    """Applies :func:`share_width` once the window's layout has followed a resize of the
    window, or a dock being shown."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.ChildPolished and isinstance(event.child(), QDockWidget):
            event.child().installEventFilter(self)  # a dock added later (Trust, Audit)
        elif kind == QEvent.Type.Resize and watched is self.window or (
                kind == QEvent.Type.Show and isinstance(watched, QDockWidget)):
            # After the layout's own pass, and after a new dock's first sizing (which its
            # opener schedules on the next pass of the event loop).
            QTimer.singleShot(SETTLE_MS, self.window, lambda: share_width(self.window))
        return False


def keep_viewer_share(window: QMainWindow) -> None:
    """Whenever ``window`` is resized or a dock is shown, keep its central widget the larger
    part of its width (:func:`share_width`); at a steady layout the user's dock widths stay as
    they are."""
    window.installEventFilter(_ShareOnResize(window))
