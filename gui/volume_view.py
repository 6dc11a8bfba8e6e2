"""The three-plane view of a volume: axial, coronal and sagittal panes with a linked crosshair.

The panes draw what :class:`gui.volume_controller.VolumeController` gives them (a windowed
grey plane, the coloured map on the same pixels, where the crosshair crosses) and report what
the user does: a click or a left drag puts the crosshair there, the wheel and Page Up / Page
Down (or the arrow keys) move through slices, a right drag changes the shared window. Pixels
are square (planes are resampled in patient space), so each pane keeps its image's aspect.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.studies.planes import PLANES

#: Letters at each pane's left, right, top and bottom edge (radiological convention).
EDGE_LETTERS = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}
#: Colour of each plane's crosshair line as drawn in the other panes (as in 3D Slicer).
PLANE_COLOURS = {"axial": QColor(230, 60, 60), "coronal": QColor(60, 200, 80),
                 "sagittal": QColor(240, 200, 40)}
#: Per pane, the planes its crosshair's horizontal and vertical lines are.
CROSS_LINES = {"axial": ("coronal", "sagittal"), "coronal": ("axial", "sagittal"),
               "sagittal": ("axial", "coronal")}
#: Keys that move a focused pane through slices, and by how many.
SCROLL_KEYS = {Qt.Key.Key_PageUp: 1, Qt.Key.Key_Up: 1, Qt.Key.Key_PageDown: -1,
               Qt.Key.Key_Down: -1}
#: HU (or modality units) a right drag of one screen pixel moves the window by, per unit width.
DRAG_GAIN = 1.0 / 256.0


def grey_qimage(unit: np.ndarray) -> QImage:
    """A grey QImage that owns a copy of a plane windowed to [0, 1]."""
    grey = np.ascontiguousarray(np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8))
    height, width = grey.shape
    return QImage(grey.data, width, height, width, QImage.Format.Format_Grayscale8).copy()


class QtPlanePane(QWidget):
    """One plane: the grey image, the map over it, the crosshair, labels.

    Signals
    -------
    sig_clicked(str plane, float row, float column)
        A left click or drag, in the plane's (fractional) pixels.
    sig_scrolled(str plane, int steps)
        The wheel or a key moved through slices.
    sig_window_dragged(float dx, float dy)
        A right drag, in screen pixels since the last move.
    """

    sig_clicked = Signal(str, float, float)
    sig_scrolled = Signal(str, int)
    sig_window_dragged = Signal(float, float)

    def __init__(self, plane: str, parent=None) -> None:
        super().__init__(parent)
        self.plane = plane
        self.base: QImage | None = None
        self.overlay: QImage | None = None
        self.cross: tuple[float, float] | None = None  # (row, column) in plane pixels
        self.title = plane.capitalize()
        self.note = ""
        self._drag: QPointF | None = None
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.setObjectName(f"plane_{plane}")

    def set_content(self, base: QImage | None, overlay: QImage | None,
                    cross: tuple[float, float] | None, note: str = "") -> None:
        """Show a plane; ``overlay`` is drawn over ``base`` on the same pixels."""
        self.base, self.overlay, self.cross, self.note = base, overlay, cross, note
        self.update()

    def set_overlay(self, overlay: QImage | None) -> None:
        """Change only the map drawn over the plane."""
        self.overlay = overlay
        self.update()

    def image_rect(self) -> QRectF:
        """Where the plane's pixels are drawn: centred, square pixels, fitted to the pane."""
        if self.base is None or self.base.isNull():
            return QRectF()
        w, h = self.base.width(), self.base.height()
        scale = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2,
                      w * scale, h * scale)

    def to_pixel(self, pos: QPointF) -> tuple[float, float] | None:
        """``(row, column)`` of a widget position, or None outside the image."""
        rect = self.image_rect()
        if rect.isEmpty() or not rect.contains(pos):
            return None
        scale = rect.width() / self.base.width()
        return (pos.y() - rect.y()) / scale - 0.5, (pos.x() - rect.x()) / scale - 0.5

    def to_widget(self, row: float, col: float) -> QPointF:
        """Widget position of the centre of plane pixel ``(row, col)``."""
        rect = self.image_rect()
        scale = rect.width() / self.base.width()
        return QPointF(rect.x() + (col + 0.5) * scale, rect.y() + (row + 0.5) * scale)

    # -- painting ---------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        rect = self.image_rect()
        if not rect.isEmpty():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(rect, self.base)
            if self.overlay is not None:
                painter.drawImage(rect, self.overlay)
            self._paint_cross(painter, rect)
            self._paint_letters(painter, rect)
        painter.setPen(QColor(255, 255, 255))
        painter.setFont(QFont(painter.font().family(), 10, QFont.Weight.Bold))
        painter.drawText(QRectF(6, 4, self.width() - 12, 20),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, self.title)
        if self.note:
            painter.setFont(QFont(painter.font().family(), 9))
            painter.drawText(QRectF(6, self.height() - 22, self.width() - 12, 18),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                             self.note)
        if self.hasFocus():
            painter.setPen(QPen(PLANE_COLOURS[self.plane], 2))
            painter.drawRect(self.rect().adjusted(1, 1, -1, -1))
        painter.end()

    def _paint_cross(self, painter: QPainter, rect: QRectF) -> None:
        if self.cross is None:
            return
        centre = self.to_widget(*self.cross)
        # Each line is another plane seen edge-on, in that plane's colour.
        horizontal, vertical = CROSS_LINES[self.plane]
        gap = 6.0
        painter.setPen(QPen(PLANE_COLOURS[horizontal], 1))
        painter.drawLine(QPointF(rect.left(), centre.y()), QPointF(centre.x() - gap, centre.y()))
        painter.drawLine(QPointF(centre.x() + gap, centre.y()), QPointF(rect.right(), centre.y()))
        painter.setPen(QPen(PLANE_COLOURS[vertical], 1))
        painter.drawLine(QPointF(centre.x(), rect.top()), QPointF(centre.x(), centre.y() - gap))
        painter.drawLine(QPointF(centre.x(), centre.y() + gap), QPointF(centre.x(), rect.bottom()))

    def _paint_letters(self, painter: QPainter, rect: QRectF) -> None:
        left, right, top, bottom = EDGE_LETTERS[self.plane]
        painter.setPen(QColor(255, 220, 120))
        painter.setFont(QFont(painter.font().family(), 10, QFont.Weight.Bold))
        mid_x, mid_y = rect.center().x(), rect.center().y()
        box = 16.0
        painter.drawText(QRectF(rect.left() + 2, mid_y - box / 2, box, box),
                         Qt.AlignmentFlag.AlignCenter, left)
        painter.drawText(QRectF(rect.right() - box - 2, mid_y - box / 2, box, box),
                         Qt.AlignmentFlag.AlignCenter, right)
        painter.drawText(QRectF(mid_x - box / 2, rect.top() + 2, box, box),
                         Qt.AlignmentFlag.AlignCenter, top)
        painter.drawText(QRectF(mid_x - box / 2, rect.bottom() - box - 2, box, box),
                         Qt.AlignmentFlag.AlignCenter, bottom)

    # -- input ------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.setFocus()
        if event.button() == Qt.MouseButton.LeftButton:
            self._click(event.position())
        elif event.button() == Qt.MouseButton.RightButton:
            self._drag = event.position()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._click(event.position())
        elif self._drag is not None and event.buttons() & Qt.MouseButton.RightButton:
            delta = event.position() - self._drag
            self._drag = event.position()
            self.sig_window_dragged.emit(delta.x(), delta.y())

    def mouseReleaseEvent(self, _event) -> None:  # noqa: N802 - Qt override
        self._drag = None

    def _click(self, pos: QPointF) -> None:
        pixel = self.to_pixel(pos)
        if pixel is not None:
            self.sig_clicked.emit(self.plane, *pixel)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() // 120
        if steps:
            self.sig_scrolled.emit(self.plane, int(steps))
        event.accept()

    def event(self, event) -> bool:  # noqa: D102 - Qt override
        # The window's frame keys are shortcuts; in a focused pane they move through slices.
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in SCROLL_KEYS:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        step = SCROLL_KEYS.get(event.key())
        if step is None:
            super().keyPressEvent(event)
            return
        self.sig_scrolled.emit(self.plane, step)


class QtVolumeView(QWidget):
    """Axial, coronal and sagittal panes in a 2 × 2 grid; the fourth cell says where the
    crosshair is and holds the map's projection toggle.

    Signals
    -------
    sig_mip_toggled(bool on)
        The map is to be shown as its maximum-intensity projection in each pane.
    """

    sig_mip_toggled = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("volume_view")
        self.panes = {plane: QtPlanePane(plane) for plane in PLANES}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        grid.addWidget(self.panes["axial"], 0, 0)
        grid.addWidget(self.panes["coronal"], 0, 1)
        grid.addWidget(self.panes["sagittal"], 1, 0)
        side = QWidget()
        # Long series names wrap or clip here; they never widen this cell past the panes.
        side.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        side.setObjectName("volume_side")
        side.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        # Only the cell's background and text are dark: the check box keeps its own look.
        side.setStyleSheet("#volume_side { background: #111; } QLabel { color: #ddd; } "
                           "QCheckBox { color: #ddd; }")
        box = QVBoxLayout(side)
        box.setContentsMargins(10, 10, 10, 10)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mip_box = QCheckBox("Map as maximum-intensity projection")
        self.mip_box.setToolTip("Show the map's largest value along each plane's normal "
                                "instead of the map on the plane")
        self.mip_box.toggled.connect(self.sig_mip_toggled)
        hint = QLabel("Click or drag: move the crosshair · wheel, Page Up/Down: slices · "
                      "right drag: window")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #888;")
        box.addWidget(self.info)
        box.addWidget(self.mip_box)
        box.addStretch(1)
        box.addWidget(hint)
        grid.addWidget(side, 1, 1)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
