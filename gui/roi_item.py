"""The region of interest drawn on the viewer: its pixel geometry and its outline on screen.

An ROI is ``((x0, y0, x1, y1), shape)`` in integer image pixels, end-exclusive, with ``shape``
``"box"`` or ``"ellipse"`` (the ellipse inscribed in the box): exactly what
:func:`engine.metrics.case_metrics` takes as ``roi`` and ``roi_shape``.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

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
