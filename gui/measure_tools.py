"""Measuring on the viewer: a distance ruler and the statistics of the ROI, labelled on the image.

:class:`MeasureTools` attaches both to a ``QtImageViewer`` from outside: the ruler takes the
viewport's left-button events while its tool is on (an event filter, so the viewer's own pan
and ROI drawing are untouched otherwise), and the ROI statistics follow the viewer's ROI, frame
and heatmap. The numbers come from :mod:`engine.studies.calibration` and
:mod:`engine.metrics.roi_stats`; this module only draws them.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QLineF, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsView

from engine.core.errors import UsageError
from engine.metrics.roi_stats import RoiStats, roi_statistics
from engine.studies.calibration import distance, length_text, modality_units, pixel_spacing
from gui.overlay_layer import owner_key
from gui.roi_item import QtMeasureLabel
from gui.view_annotations import QtViewAnnotations

#: The ruler's colour: yellow is no grey level, and the dark casing keeps it readable on white.
RULER_COLOR = QColor(255, 225, 40)
RULER_CASING = QColor(0, 0, 0, 200)
#: An ROI ending right of this share of the image width gets its label on its left.
RIGHT_SIDE = 0.6
#: A press and release closer than this many screen pixels is a click, which measures nothing.
CLICK_PX = 3


class QtRulerItem(QGraphicsItem):
    """A measured segment in scene (image pixel) coordinates, with end ticks and its length."""

    def __init__(self) -> None:
        super().__init__()
        self.line = QLineF()
        self.label = QtMeasureLabel(self)
        self.setZValue(2.5)
        self.setVisible(False)

    def set_line(self, start: QPointF, end: QPointF, text: str) -> None:
        """Draw the segment from ``start`` to ``end`` and label it with ``text``."""
        self.prepareGeometryChange()
        self.line = QLineF(start, end)
        self.label.set_lines([text], end)
        self.setVisible(True)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        scene = self.scene()
        scales = [v.transform().m11() for v in scene.views()] if scene is not None else []
        margin = 8.0 / max(min(scales, default=1.0), 1e-3)  # ticks are 8 screen pixels long
        rect = QRectF(self.line.p1(), self.line.p2()).normalized()
        return rect.adjusted(-margin, -margin, margin, margin)

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        zoom = max(painter.worldTransform().m11(), 1e-3)
        normal = self.line.normalVector().unitVector()
        tick = QPointF(normal.dx(), normal.dy()) * (5.0 / zoom)
        for color, width in ((RULER_CASING, 4.0), (RULER_COLOR, 2.0)):
            pen = QPen(color, width)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawLine(self.line)
            for end in (self.line.p1(), self.line.p2()):
                painter.drawLine(end - tick, end + tick)


class DistanceTool(QObject):
    """Left drag measures one distance on the viewer, then the tool is off; Esc leaves it.

    As in clinical viewers, the tool is armed for one measurement: the next left drag pans
    again. A click without a drag measures nothing and leaves the tool on.

    Signals
    -------
    sig_active(bool)
        The tool was switched on or off.
    sig_measured(str)
        A finished measurement, as labelled (``"50.0 mm"``).
    """

    sig_active = Signal(bool)
    sig_measured = Signal(str)

    def __init__(self, viewer) -> None:
        super().__init__(viewer)
        self.viewer = viewer
        self.active = False
        self.ruler = QtRulerItem()
        viewer.scene().addItem(self.ruler)
        self._start: QPointF | None = None
        self._press: QPointF | None = None  # where the drag began on screen
        self.value: float | None = None
        self.text = ""
        viewer.viewport().installEventFilter(self)
        viewer.installEventFilter(self)
        viewer.sig_frame_shown.connect(lambda _f: self.clear())  # another image, other anatomy
        viewer.sig_roi_tool_changed.connect(lambda shape: shape and self.set_active(False))

    def set_active(self, on: bool) -> None:
        """Make left drag measure (True) or give it back to panning / the ROI tool."""
        on = bool(on)
        if on == self.active:
            return
        self.active = on
        self._start = None
        viewer = self.viewer
        if on:
            viewer.set_roi_tool(None)
            viewer.setDragMode(QGraphicsView.DragMode.NoDrag)
            viewer.viewport().setCursor(Qt.CursorShape.CrossCursor)
        elif viewer.roi_tool is None:
            viewer.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
            viewer.viewport().unsetCursor()
        self.sig_active.emit(on)

    def clear(self) -> None:
        """Remove the measurement."""
        self.ruler.setVisible(False)
        self.value, self.text = None, ""

    def measure(self, start: QPointF, end: QPointF) -> str:
        """Measure from ``start`` to ``end`` (scene points = image pixels) and show it."""
        image = self.viewer.image
        spacing = pixel_spacing(image, self.viewer.frame)
        self.value = distance(spacing, (start.x(), start.y()), (end.x(), end.y()))
        self.text = length_text(self.value, spacing)
        self.ruler.set_line(start, end, self.text)
        return self.text

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if watched is self.viewer:
            escape = kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) and \
                self.active and event.key() == Qt.Key.Key_Escape
            if escape:
                # Esc leaves the tool first (as with the ROI tool), before cancelling work.
                event.accept()
                if kind == QEvent.Type.KeyPress:
                    self.set_active(False)
                return True
            return False
        if not self.active or self.viewer.image is None:
            return False
        left = getattr(event, "button", lambda: None)() == Qt.MouseButton.LeftButton
        if kind == QEvent.Type.MouseButtonPress and left:
            self._start = self.viewer.mapToScene(event.position().toPoint())
            self._press = event.position()
            return True
        if kind == QEvent.Type.MouseMove and self._start is not None:
            self.measure(self._start, self.viewer.mapToScene(event.position().toPoint()))
            return True
        if kind == QEvent.Type.MouseButtonRelease and left and self._start is not None:
            start, self._start = self._start, None
            if (event.position() - self._press).manhattanLength() < CLICK_PX:
                self.clear()  # a click: no "0.0 px" ruler, and the tool waits for a drag
                return True
            text = self.measure(start, self.viewer.mapToScene(event.position().toPoint()))
            self.sig_measured.emit(text)
            self.set_active(False)
            return True
        return False


class RoiStatsLabel(QObject):
    """Mean, SD, min, max and area of the viewer's ROI, with the heatmap's energy, on the image.

    The label sits at the ROI's lower right corner and follows the ROI, the frame and the map.

    Signals
    -------
    sig_stats(object)
        The new :class:`engine.metrics.roi_stats.RoiStats`, or None when there is none.
    """

    sig_stats = Signal(object)

    def __init__(self, viewer) -> None:
        super().__init__(viewer)
        self.viewer = viewer
        self.label = QtMeasureLabel()
        viewer.scene().addItem(self.label)
        self.stats: RoiStats | None = None
        # Several changes arrive at once (a new frame clears the map, then a map comes):
        # measure once they have settled.
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.update_stats)
        viewer.sig_roi_changed.connect(self._timer.start)
        viewer.sig_frame_changed.connect(self._timer.start)
        viewer.layer.sig_changed.connect(lambda name: name == "heatmap" and self._timer.start())

    def update_stats(self) -> RoiStats | None:
        """Measure the ROI on the frame shown now and relabel it."""
        viewer = self.viewer
        roi, image = viewer.roi(), viewer.image
        self.stats = None
        if roi is not None and image is not None and not image.is_color:
            (x0, y0, x1, y1), shape = roi
            heat = viewer.layer.heatmap
            owner = viewer.layer.owner
            if heat is not None and (heat.shape != tuple(image.shape) or (
                    owner is not None and owner != owner_key(image, viewer.frame))):
                heat = None  # a map of another frame or image says nothing about this ROI
            try:
                self.stats = roi_statistics(
                    image.modality_frame(viewer.frame), (x0, y0, x1, y1), shape,
                    spacing=pixel_spacing(image, viewer.frame), units=modality_units(image),
                    heatmap=heat)
            except UsageError:
                self.stats = None
        if self.stats is None:
            self.label.setVisible(False)
        else:
            (x0, _y0, x1, y1), _shape = roi
            self.label.set_lines(self.stats.lines(), QPointF(x1, y1))
            if x1 > RIGHT_SIDE * image.shape[1]:
                # Near the right edge the label hangs to the left of the ROI, on the image.
                self.label.setPos(QPointF(x0, y1))
                width = self.label.boundingRect().width()
                self.label.setTransform(QTransform.fromTranslate(-width, 0))
            else:
                self.label.setTransform(QTransform())
        self.sig_stats.emit(self.stats)
        return self.stats


class MeasureTools(QObject):
    """Everything this module and :mod:`gui.view_annotations` add to one viewer.

    Attributes
    ----------
    distance : DistanceTool
    roi_stats : RoiStatsLabel
    annotations : QtViewAnnotations
        Corner text, orientation markers and the scale bar.
    """

    def __init__(self, viewer) -> None:
        super().__init__(viewer)
        self.distance = DistanceTool(viewer)
        self.roi_stats = RoiStatsLabel(viewer)
        self.annotations = QtViewAnnotations(viewer)
