"""The viewer's screen-fixed annotations: corner text, orientation markers and a scale bar.

A transparent widget lies over the viewer's viewport, as a sibling of it (a child of the
viewport would be moved by the view's scrolling), and lets every mouse event through. It paints
what :mod:`engine.studies.annotations`, :mod:`engine.studies.orientation` and
:mod:`engine.studies.calibration` compute for the frame shown, in small text with a dark shadow
so it reads on white bone and black air alike.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QWidget

from engine.studies.annotations import Corners, corner_text
from engine.studies.calibration import pixel_spacing, scale_bar
from engine.studies.orientation import edge_labels

#: Text colours: the annotation itself and its one-pixel shadow.
TEXT_COLOR = QColor(240, 240, 235)
SHADOW_COLOR = QColor(0, 0, 0, 230)
#: Orientation letters stand out from the corner text, as in diagnostic viewers.
MARKER_COLOR = QColor(255, 214, 90)
MARGIN = 6
#: The scale bar is at most this share of the viewport's width.
BAR_SHARE = 0.25


class QtViewAnnotations(QWidget):
    """Corner annotations, orientation markers and a scale bar over a ``QtImageViewer``.

    Parameters
    ----------
    viewer : QtImageViewer
        The viewer to annotate; this widget becomes its child and follows its viewport.
    corners : bool
        Draw the corner text (a compare cell shows markers and the scale bar only).
    """

    def __init__(self, viewer, corners: bool = True) -> None:
        super().__init__(viewer)
        self.viewer = viewer
        self.show_corners = corners
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._image = None  # the image the cached texts describe
        self.corners = Corners()
        self.markers = None
        self.bar = None
        self._spacing = None
        # The viewport is laid out after the view's own resize: follow the viewport's. The
        # texts are recomputed a pass later, never inside an event of a view being destroyed.
        self._viewport = viewer.viewport()
        self._viewport.installEventFilter(self)
        self._later = QTimer(self, singleShot=True, interval=0)
        self._later.timeout.connect(self.refresh)
        for signal in (viewer.sig_frame_shown, viewer.sig_frame_changed):
            signal.connect(self._frame_shown)
        viewer.sig_window_changed.connect(lambda *_: self.refresh())
        viewer.sig_view_changed.connect(self.refresh)
        self._follow_viewport()
        self.raise_()
        self.show()  # a child made after its parent was shown stays hidden otherwise

    def set_enabled(self, on: bool) -> None:
        """Show or hide every annotation (View ▸ Image annotations)."""
        self.setVisible(bool(on))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self._viewport and event.type() in (QEvent.Type.Resize, QEvent.Type.Move):
            self.setGeometry(self._viewport.geometry())
            self._later.start()
        return False

    def _follow_viewport(self) -> None:
        self.setGeometry(self._viewport.geometry())
        self.refresh()

    def _frame_shown(self, _frame: int = 0) -> None:
        viewer = self.viewer
        self._image = viewer.image
        if viewer.image is not None:
            self.markers = edge_labels(viewer.image, viewer.frame)
            self._spacing = pixel_spacing(viewer.image, viewer.frame)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the texts that follow the window and the zoom, and repaint."""
        viewer = self.viewer
        if viewer.image is None or viewer.image is not self._image:
            self.update()
            return
        self.corners = corner_text(viewer.image, viewer.frame, viewer.window,
                                   zoom=viewer.zoom())
        self.bar = scale_bar(self._spacing, viewer.zoom(), self.width() * BAR_SHARE)
        self.update()

    def showing(self) -> bool:
        """Whether annotations are drawn now (an image of this viewer is on screen)."""
        viewer = self.viewer
        return (self.isVisible() and viewer.image is not None and viewer.image is self._image
                and not viewer.message())

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        if not self.showing():
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, font.pointSizeF() * 0.9))
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        area = QRectF(self.rect()).adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        if self.show_corners:
            self._paint_corners(painter, metrics, area)
        self._paint_markers(painter, area)
        self._paint_bar(painter, metrics, area)
        painter.end()

    def _paint_corners(self, painter: QPainter, metrics: QFontMetricsF, area: QRectF) -> None:
        line = metrics.height()
        left, right = Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignRight
        for lines, align, top in ((self.corners.top_left, left, True),
                                  (self.corners.top_right, right, True),
                                  (self.corners.bottom_left, left, False),
                                  (self.corners.bottom_right, right, False)):
            y = area.top() if top else area.bottom() - line * len(lines)
            for text in lines:
                box = QRectF(area.left(), y, area.width(), line)
                shadow_text(painter, box, int(align | Qt.AlignmentFlag.AlignVCenter), text)
                y += line

    def _paint_markers(self, painter: QPainter, area: QRectF) -> None:
        if self.markers is None:
            return
        font = QFont(painter.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.25)
        painter.save()
        painter.setFont(font)
        mid_v = QRectF(area.left(), area.center().y() - 20, area.width(), 40)
        mid_h = QRectF(area.center().x() - 40, area.top(), 80, area.height())
        for text, box, align in (
                (self.markers.left, mid_v, Qt.AlignmentFlag.AlignLeft),
                (self.markers.right, mid_v, Qt.AlignmentFlag.AlignRight),
                (self.markers.top, mid_h, Qt.AlignmentFlag.AlignTop),
                (self.markers.bottom, mid_h, Qt.AlignmentFlag.AlignBottom)):
            flags = align | (Qt.AlignmentFlag.AlignVCenter if box is mid_v
                             else Qt.AlignmentFlag.AlignHCenter)
            shadow_text(painter, box, int(flags), text, MARKER_COLOR)
        painter.restore()

    def _paint_bar(self, painter: QPainter, metrics: QFontMetricsF, area: QRectF) -> None:
        bar = self.bar
        if bar is None or bar.screen_px < 8:
            return
        # Above the bottom-left corner text, so the two never overlap.
        lines = len(self.corners.bottom_left) if self.show_corners else 0
        y = area.bottom() - lines * metrics.height() - 6
        x0, x1 = area.left() + 2, area.left() + 2 + bar.screen_px
        painter.save()
        for color, width in ((SHADOW_COLOR, 4.0), (TEXT_COLOR, 2.0)):
            painter.setPen(QPen(color, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
            painter.drawLine(QPointF(x0, y), QPointF(x1, y))
            for x in (x0, x1):
                painter.drawLine(QPointF(x, y - 5), QPointF(x, y))
        label = QRectF(x0, y - 6 - metrics.height(), max(bar.screen_px, 120), metrics.height())
        shadow_text(painter, label, int(Qt.AlignmentFlag.AlignLeft
                                        | Qt.AlignmentFlag.AlignVCenter), bar.label)
        painter.restore()


def shadow_text(painter: QPainter, box: QRectF, flags: int, text: str,
                color: QColor = TEXT_COLOR) -> None:
    """Draw ``text`` in ``box`` with a one-pixel dark shadow, readable on any grey level."""
    painter.setPen(SHADOW_COLOR)
    for dx, dy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        painter.drawText(box.translated(dx, dy), flags, text)
    painter.setPen(color)
    painter.drawText(box, flags, text)
