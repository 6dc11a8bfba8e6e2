"""A graphics view of one image item that zooms around the cursor and pans, fitted or not."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

#: Wheel zoom per notch, and the zoom range a user can reach.
ZOOM_STEP = 1.2
ZOOM_RANGE = (0.05, 64.0)


class QtZoomView(QGraphicsView):
    """Zoom (kept under the cursor), pan, fit and 1:1 over a scene holding one image item.

    Subclasses put a pixmap into :attr:`_image_item`; a view that fits keeps fitting when it
    is resized, and :meth:`view_state` / :meth:`apply_view_state` let views follow each other.

    Signals
    -------
    sig_view_changed()
        The zoom or the pan changed.
    """

    sig_view_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(12, 12, 14))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        # Zoom anchors itself in zoom_by(); Qt's own anchor uses the last mouse *move*.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._image_item)
        self._fit_pending = True

    # -- zoom and pan ---------------------------------------------------------------------
    def zoom(self) -> float:
        """Return the current scale factor (screen pixels per image pixel)."""
        return self.transform().m11()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the scene point under ``anchor`` (viewport coordinates,
        default the view centre) where it is on screen."""
        anchor = QPointF(self.viewport().rect().center()) if anchor is None else anchor
        fixed = self.mapToScene(anchor.toPoint())
        target = min(max(self.zoom() * factor, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        self.scale(target / self.zoom(), target / self.zoom())
        moved = self.mapFromScene(fixed) - anchor.toPoint()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._fit_pending = False
        self.sig_view_changed.emit()

    def fit(self) -> None:
        """Fit the whole image in the view."""
        if self._image_item.pixmap().isNull():
            self._fit_pending = True
            return
        self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_pending = True
        self.sig_view_changed.emit()

    def one_to_one(self) -> None:
        """Show one image pixel per screen pixel."""
        self.setTransform(QTransform())
        self._fit_pending = False
        self.sig_view_changed.emit()

    def fitted(self) -> bool:
        """Whether the view fits the image (and keeps fitting it when resized)."""
        return self._fit_pending

    def view_state(self) -> tuple[QTransform, QPointF, bool]:
        """Return (transform, scene point at the view centre, fitted) for syncing viewers."""
        center = self.mapToScene(self.viewport().rect().center())
        return self.transform(), center, self._fit_pending

    def apply_view_state(self, transform: QTransform, center: QPointF, fitted: bool) -> None:
        """Adopt another viewer's zoom and centre without echoing it back.

        A fitted source leaves this viewer fitting itself, so cells of another size stay whole.
        """
        self.blockSignals(True)
        try:
            if fitted:
                self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
            else:
                self.setTransform(transform)
                self.centerOn(center)
            self._fit_pending = fitted
        finally:
            self.blockSignals(False)

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt override
        # A virtual rather than the scroll bars' valueChanged signals: two Python slot calls
        # per pan step are avoided, and nothing is emitted while signals are blocked.
        super().scrollContentsBy(dx, dy)
        if not self.signalsBlocked():
            self.sig_view_changed.emit()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._fit_pending:
            self.fit()

    def zoom_wheel(self, event) -> None:
        """Zoom by the wheel's notches around the cursor."""
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP**steps, event.position())
