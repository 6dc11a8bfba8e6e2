"""The region of interest drawn on the viewer: its pixel geometry and its outline on screen.

An ROI is ``((x0, y0, x1, y1), shape)`` in integer image pixels, end-exclusive, with ``shape``
``"box"`` or ``"ellipse"`` (the ellipse inscribed in the box): exactly what
:func:`engine.metrics.case_metrics` takes as ``roi`` and ``roi_shape``.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QApplication, QGraphicsItem, QGraphicsSimpleTextItem, QGraphicsView

#: Shapes an ROI can have, as ``case_metrics(roi_shape=...)`` names them.
ROI_SHAPES = ("box", "ellipse")
#: Outline colours. No grey level and no colour of jet, turbo, inferno or viridis is magenta,
#: and the dark casing under the dashes keeps the outline readable over white and yellow.
ROI_COLOR = QColor(255, 70, 240)
ROI_CASING = QColor(0, 0, 0, 210)
#: Outline widths in screen pixels (cosmetic pens: the same at every zoom).
DASH_WIDTH = 3.0
CASING_WIDTH = 5.0

Roi = tuple[tuple[int, int, int, int], str]


def roi_from_points(start: QPointF, end: QPointF, image_shape: tuple[int, int]
                    ) -> tuple[int, int, int, int] | None:
    """Return the end-exclusive pixel box covering every pixel a drag touched.

    Parameters
    ----------
    start, end : QPointF
        Drag ends in scene coordinates (one scene unit is one image pixel, origin at the
        image's top-left corner).
    image_shape : (rows, cols)
        The image size; the box is clipped to it.

    Returns
    -------
    (x0, y0, x1, y1) or None
        None when the clipped box holds no pixel.
    """
    rows, cols = image_shape

    def clip(value: float, high: int) -> float:
        return min(max(value, 0.0), float(high))

    xs = sorted((clip(start.x(), cols), clip(end.x(), cols)))
    ys = sorted((clip(start.y(), rows), clip(end.y(), rows)))
    x0, y0 = math.floor(xs[0]), math.floor(ys[0])
    # A drag that ends inside a pixel includes it; ceil keeps that pixel, min() the image edge.
    x1, y1 = min(math.ceil(xs[1]), cols), min(math.ceil(ys[1]), rows)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def describe_roi(roi: Roi | None) -> str:
    """Return a short text for a status line: ``"box ROI 10,8 → 31,21 (21 × 13 px)"``."""
    if roi is None:
        return "no ROI"
    (x0, y0, x1, y1), shape = roi
    return f"{shape} ROI {x0},{y0} → {x1},{y1} ({x1 - x0} × {y1 - y0} px)"


class QtRoiItem(QGraphicsItem):
    """A dashed box or ellipse outline in scene (image pixel) coordinates.

    It lives in the viewer's scene with the image, so it follows every zoom and pan; its pens
    are cosmetic, so the outline stays two screen pixels wide however far the user zooms.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF()
        self.shape_name = "box"
        self.setZValue(2)  # above the image (0) and the heatmap (1)
        self.setVisible(False)

    def set_geometry(self, box: tuple[float, float, float, float], shape: str) -> None:
        """Outline ``box`` (x0, y0, x1, y1) in scene units as ``shape``."""
        self.prepareGeometryChange()
        x0, y0, x1, y1 = box
        self._rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self.shape_name = shape
        self.update()

    def rect(self) -> QRectF:
        """The outlined box in scene units."""
        return QRectF(self._rect)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        # The casing reaches half its width outside the box in *screen* pixels; in scene units
        # that grows as the view zooms out, so the margin follows the most zoomed-out view.
        scene = self.scene()
        scales = [v.transform().m11() for v in scene.views()] if scene is not None else []
        margin = CASING_WIDTH / max(min(scales, default=1.0), 1e-3) + 1.0
        return self._rect.adjusted(-margin, -margin, margin, margin)

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        draw = painter.drawEllipse if self.shape_name == "ellipse" else painter.drawRect
        painter.setBrush(Qt.BrushStyle.NoBrush)
        casing = QPen(ROI_CASING, CASING_WIDTH)
        casing.setCosmetic(True)
        painter.setPen(casing)
        draw(self._rect)
        dashes = QPen(ROI_COLOR, DASH_WIDTH, Qt.PenStyle.CustomDashLine)
        dashes.setDashPattern([3.0, 1.5])  # in pen widths: 9 px dashes, 4.5 px gaps
        dashes.setCosmetic(True)
        painter.setPen(dashes)
        draw(self._rect)


class RoiDrawingMixin:
    """ROI state and drawing for a graphics view that shows one image (see ``QtImageViewer``).

    The view provides ``image``, ``sig_roi_changed`` and ``sig_roi_tool_changed``, and calls
    :meth:`_init_roi` once its scene exists; its mouse handlers start, drag and finish a drawing
    through ``_roi_start``, :meth:`_drag_roi` and :meth:`_finish_roi`.
    """

    def _init_roi(self) -> None:
        self._roi_item = QtRoiItem()
        self.scene().addItem(self._roi_item)
        self._roi: Roi | None = None
        self.roi_tool: str | None = None  # the shape a left drag draws, or None (pan)
        self._roi_start: QPointF | None = None  # scene point where the drawing drag began
        self._roi_press = QPointF()  # the same point on screen

    def roi(self) -> Roi | None:
        """Return the ROI as ``((x0, y0, x1, y1), shape)`` in image pixels, or None."""
        return self._roi

    def set_roi(self, roi: tuple[int, int, int, int] | None, shape: str = "box") -> None:
        """Show ``roi`` (x0, y0, x1, y1; image pixels, end-exclusive) and announce it.

        Raises
        ------
        ValueError
            If ``shape`` is not one of ``ROI_SHAPES`` or the box is empty.
        """
        if roi is None:
            self.clear_roi()
            return
        if shape not in ROI_SHAPES:
            raise ValueError(f"ROI shape must be one of {', '.join(ROI_SHAPES)}, not {shape!r}")
        x0, y0, x1, y1 = (int(v) for v in roi)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty ROI {roi}: x1 > x0 and y1 > y0 are needed")
        self._roi = ((x0, y0, x1, y1), shape)
        self._roi_item.set_geometry((x0, y0, x1, y1), shape)
        self._roi_item.setVisible(True)
        self.sig_roi_changed.emit(self._roi)

    def clear_roi(self) -> None:
        """Remove the ROI (announced as None when there was one)."""
        had = self._roi is not None
        self._roi = None
        self._roi_item.setVisible(False)
        if had:
            self.sig_roi_changed.emit(None)

    def set_roi_tool(self, shape: str | None) -> None:
        """Make left drag draw a ``"box"`` or ``"ellipse"`` ROI, or pan again (None or "")."""
        shape = shape or None
        if shape is not None and shape not in ROI_SHAPES:
            raise ValueError(f"ROI shape must be one of {', '.join(ROI_SHAPES)}, not {shape!r}")
        if shape == self.roi_tool:
            return
        self._abort_roi_drag()
        self.roi_tool = shape
        drawing = shape is not None
        self.setDragMode(QGraphicsView.DragMode.NoDrag if drawing
                         else QGraphicsView.DragMode.ScrollHandDrag)
        if drawing:
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()
        self.sig_roi_tool_changed.emit(shape or "")

    def _abort_roi_drag(self) -> None:
        """Drop a drawing drag in progress and show the ROI that was there before it."""
        if self._roi_start is None:
            return
        self._roi_start = None
        if self._roi is not None:
            self._roi_item.set_geometry(self._roi[0], self._roi[1])
        self._roi_item.setVisible(self._roi is not None)

    def _drag_roi(self, pos: QPointF) -> None:
        box = roi_from_points(self._roi_start, self.mapToScene(pos.toPoint()),
                              tuple(self.image.shape))
        if box is not None:
            self._roi_item.set_geometry(box, self.roi_tool)
            self._roi_item.setVisible(True)

    def _finish_roi(self, pos: QPointF) -> None:
        start, self._roi_start = self._roi_start, None
        box = roi_from_points(start, self.mapToScene(pos.toPoint()), tuple(self.image.shape))
        clicked = (pos - self._roi_press).manhattanLength() < QApplication.startDragDistance()
        if box is None or clicked:
            # A click, or a drag outside the image, keeps the ROI there was: a stray click
            # must not replace it with a one-pixel ROI.
            if self._roi is not None:
                self._roi_item.set_geometry(self._roi[0], self._roi[1])
            self._roi_item.setVisible(self._roi is not None)
            return
        self.set_roi(box, self.roi_tool)


class QtMeasureLabel(QGraphicsSimpleTextItem):
    """A few lines of measurement text next to an ROI or a ruler, the same size at any zoom.

    Light text on a dark box, so it reads over bone, air and the heatmap alike; it ignores the
    view's transform, so its anchor follows the pixels while the text keeps its screen size.
    """

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.setBrush(QColor(245, 245, 240))
        self.setZValue(3)
        self.setVisible(False)

    def set_lines(self, lines: list[str], anchor: QPointF | None = None) -> None:
        """Show ``lines`` with the label's top-left corner at ``anchor`` (scene units)."""
        self.setText("\n".join(lines))
        if anchor is not None:
            self.setPos(anchor)
        self.setVisible(bool(lines))

    def lines(self) -> list[str]:
        """The text shown, one entry per line."""
        return self.text().split("\n") if self.text() else []

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return super().boundingRect().adjusted(-4, -3, 4, 3)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(self.boundingRect(), 3, 3)
        super().paint(painter, option, widget)
