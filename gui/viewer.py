"""The central image viewer: zoom, pan, window/level, frames, and the heatmap overlay on top."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
)

from gui.overlay_layer import OverlayLayer
from gui.roi_item import ROI_SHAPES, QtRoiItem, Roi, roi_from_points

#: Standard CT windows (name, centre, width) bound to keys 1-5.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("Soft tissue", 40.0, 400.0),
    ("Lung", -600.0, 1500.0),
    ("Bone", 400.0, 1800.0),
    ("Brain", 40.0, 80.0),
    ("Abdomen", 60.0, 400.0),
)

#: Wheel zoom per notch, and the zoom range a user can reach.
ZOOM_STEP = 1.2
ZOOM_RANGE = (0.05, 64.0)


def qimage_from_array(array: np.ndarray) -> QImage:
    """Return a QImage that owns a copy of an RGB (H, W, 3) or RGBA (H, W, 4) uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width, channels = array.shape
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    # QImage wraps the buffer without owning it; copy() detaches it before the array goes away.
    return QImage(array.data, width, height, channels * width, fmt).copy()


class QtImageViewer(QGraphicsView):
    """Shows one frame of an ``engine.studies.image.Image`` with a bound ``OverlayLayer`` over it.

    Left drag pans, the wheel zooms around the cursor, right drag changes window (horizontal)
    and level (vertical) in modality units. The overlay pixmap has the image's size and sits at
    the same scene origin, so the two line up at every zoom and pan by construction.

    With an ROI tool on (:meth:`set_roi_tool`), left drag draws a box or ellipse region of
    interest instead of panning; Esc leaves the tool. The ROI outline is an item of the same
    scene, so it stays on its pixels at every zoom and pan too.

    Parameters
    ----------
    layer : OverlayLayer, optional
        The overlay model to draw; a private one is made if omitted.
    parent : QWidget, optional
        The Qt parent.
    """

    sig_window_changed = Signal(float, float)
    sig_frame_changed = Signal(int)
    sig_pixel_info = Signal(str)
    sig_view_changed = Signal()
    #: ``((x0, y0, x1, y1), shape)`` in image pixels, end-exclusive, or None when cleared.
    sig_roi_changed = Signal(object)
    #: The ROI tool now in use: ``"box"``, ``"ellipse"`` or ``""`` (pan).
    sig_roi_tool_changed = Signal(str)

    def __init__(self, layer: OverlayLayer | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(12, 12, 14))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        # Zoom anchors itself in zoom_by(); Qt's own anchor uses the last mouse *move*.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setMouseTracking(True)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay_item = QGraphicsPixmapItem()
        self._overlay_item.setZValue(1)
        self.scene().addItem(self._image_item)
        self.scene().addItem(self._overlay_item)
        self._roi_item = QtRoiItem()
        self.scene().addItem(self._roi_item)
        self._roi: Roi | None = None
        self.roi_tool: str | None = None  # the shape a left drag draws, or None (pan)
        self._roi_start: QPointF | None = None  # scene point where the drawing drag began
        self._roi_press = QPointF()  # the same point on screen
        self.image = None
        self.frame = 0
        self.window: tuple[float, float] | None = None
        self._window_arg = None  # what render() gets: None (file default), a preset or (c, w)
        self.invert = False
        self._fit_pending = True
        self._wl_anchor: tuple[QPointF, tuple[float, float]] | None = None
        self._cine = QTimer(self)
        self._cine.setInterval(100)
        self._cine.timeout.connect(self._cine_step)
        self.layer = layer or OverlayLayer(self)
        self.layer.sig_changed.connect(self._refresh_overlay)

    # -- image and display pipeline -------------------------------------------------------
    def set_image(self, image, frame: int = 0, window: tuple[float, float] | None = None,
                  invert: bool = False) -> None:
        """Show ``image`` at ``frame``, fitted to the view, rendered once.

        ``window`` (centre, width) defaults to the file's own; ``invert`` to no inversion.
        """
        self.image = image
        self.frame = max(0, min(int(frame), image.n_frames - 1))
        self.window = self._default_window()
        if window is not None and not image.is_color:
            self.window = self._window_arg = (float(window[0]), float(window[1]))
        self.invert = bool(invert)
        self.layer.heatmap = None
        self._roi_start = None
        self.clear_roi()  # an ROI marks pixels of one image; another image has other anatomy
        self._fit_pending = True
        self._render()
        self.fit()

    def clear(self) -> None:
        """Show nothing."""
        self.image = None
        self._image_item.setPixmap(QPixmap())
        self.layer.heatmap = None
        self.clear_roi()

    def _default_window(self) -> tuple[float, float] | None:
        self._window_arg = None  # the file's own default for each frame, function included
        if self.image is None or self.image.is_color:
            return None
        preset = self.image.default_window_for(self.frame)
        if not (np.isfinite(preset.center) and np.isfinite(preset.width)):
            # A VOI LUT has no centre/width of its own; dragging starts from the data's range.
            preset = self.image.auto_window(self.frame)
        return (float(preset.center), float(preset.width))

    def _render(self) -> None:
        if self.image is None:
            return
        rgb = self.image.render(self.frame, window=self._window_arg, invert=self.invert)
        self._image_item.setPixmap(QPixmap.fromImage(qimage_from_array(rgb)))
        # A margin of one image size on each side lets the zoom keep any point under the
        # cursor, and lets a pan move an edge of the image to the middle of the view.
        rect = QRectF(self._image_item.pixmap().rect())
        self.scene().setSceneRect(rect.adjusted(-rect.width(), -rect.height(),
                                                rect.width(), rect.height()))

    def rendered_image(self) -> QImage:
        """Return the image pixmap as currently windowed (without the overlay)."""
        return self._image_item.pixmap().toImage()

    def overlay_image(self) -> QImage:
        """Return the overlay pixmap as drawn (RGBA)."""
        return self._overlay_item.pixmap().toImage()

    def _refresh_overlay(self, _name: str = "") -> None:
        rgba = self.layer.rgba() if self.layer.visible else None
        if rgba is None or self.image is None or rgba.shape[:2] != tuple(self.image.shape):
            self._overlay_item.setPixmap(QPixmap())
            self._overlay_item.setVisible(False)
            return
        self._overlay_item.setPixmap(QPixmap.fromImage(qimage_from_array(rgba)))
        self._overlay_item.setVisible(True)

    # -- window / level -------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> None:
        """Apply a linear window in modality units (ignored for colour images)."""
        if self.image is None or self.image.is_color:
            return
        self.window = (float(center), max(float(width), 1e-3))
        self._window_arg = self.window
        self._render()
        self.sig_window_changed.emit(*self.window)

    def apply_preset(self, preset) -> None:
        """Apply one of the file's ``WindowPreset`` objects as stored (VOI LUTs included)."""
        if self.image is None or self.image.is_color:
            return
        self._window_arg = preset
        if np.isfinite(preset.center) and np.isfinite(preset.width):
            self.window = (float(preset.center), float(preset.width))
        self._render()
        self.sig_window_changed.emit(*self.window)

    def reset_window(self) -> None:
        """Return to the file's default window and no inversion."""
        self.invert = False
        self.window = self._default_window()
        self._render()
        if self.window is not None:
            self.sig_window_changed.emit(*self.window)

    def set_invert(self, invert: bool) -> None:
        """Invert the grey scale (or colours) of the displayed image."""
        self.invert = bool(invert)
        self._render()

    def presets(self) -> list[tuple[str, object]]:
        """Return (label, preset) for the file's presets, then (label, (c, w)) for CT ones."""
        own = []
        if self.image is not None and not self.image.is_color:
            for i, p in enumerate(self.image.presets_for(self.frame)):
                name = p.name or f"File preset {i + 1}"
                label = name if p.function == "LUT" else f"{name}  ({p.center:g} / {p.width:g})"
                own.append((label, p))
        return own + [(f"{name}  ({c:g} / {w:g})", (c, w)) for name, c, w in CT_PRESETS]

    # -- region of interest ---------------------------------------------------------------
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

    # -- frames and cine ------------------------------------------------------------------
    def set_frame(self, frame: int) -> None:
        """Show another frame of a multi-frame image (clamped to the valid range)."""
        if self.image is None:
            return
        frame = max(0, min(int(frame), self.image.n_frames - 1))
        if frame == self.frame:
            return
        self.frame = frame
        if self._window_arg is None:
            self.window = self._default_window()
        self._render()
        self.sig_frame_changed.emit(frame)

    def step_frame(self, delta: int) -> None:
        """Move ``delta`` frames, wrapping around at the ends."""
        if self.image is not None and self.image.n_frames > 1:
            self.set_frame((self.frame + delta) % self.image.n_frames)

    def toggle_cine(self) -> bool:
        """Start or stop playing the frames; return whether cine is now running."""
        if self._cine.isActive() or self.image is None or self.image.n_frames < 2:
            self._cine.stop()
            return False
        self._cine.start()
        return True

    def _cine_step(self) -> None:
        self.step_frame(1)

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
        if self.image is None:
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

    # -- events ---------------------------------------------------------------------------
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

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.step_frame(-1 if event.angleDelta().y() > 0 else 1)
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP**steps, event.position())

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.RightButton and self.window is not None:
            self._wl_anchor = (event.position(), self.window)
            event.accept()
            return
        if (event.button() == Qt.MouseButton.LeftButton and self.roi_tool is not None
                and self.image is not None):
            self._roi_start = self.mapToScene(event.position().toPoint())
            self._roi_press = event.position()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._wl_anchor is not None:
            start, (center, width) = self._wl_anchor
            delta = event.position() - start
            # One screen pixel moves the window by 1/256 of its width at the drag's start,
            # so the gesture feels the same for CT (thousands of HU) and 8-bit images.
            step = max(width, 1.0) / 256.0
            self.set_window(center + delta.y() * step, max(width + delta.x() * step, 1.0))
            event.accept()
            return
        if self._roi_start is not None and self.image is not None:
            self._drag_roi(event.position())
            self._report_pixel(event.position())
            event.accept()
            return
        super().mouseMoveEvent(event)
        self._report_pixel(event.position())

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.RightButton and self._wl_anchor is not None:
            self._wl_anchor = None
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._roi_start is not None:
            if self.image is None:
                self._roi_start = None
            else:
                self._finish_roi(event.position())
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def event(self, event) -> bool:  # noqa: D401 - Qt override
        # Esc is also a window-wide shortcut (cancel work); while an ROI tool is on, the
        # viewer claims it first so Esc leaves the tool instead.
        if (event.type() == QEvent.Type.ShortcutOverride and self.roi_tool is not None
                and event.key() == Qt.Key.Key_Escape):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_Escape and self.roi_tool is not None:
            self.set_roi_tool(None)
            event.accept()
            return
        super().keyPressEvent(event)

    def _report_pixel(self, pos: QPointF) -> None:
        if self.image is None:
            return
        scene = self.mapToScene(pos.toPoint())
        row, col = int(np.floor(scene.y())), int(np.floor(scene.x()))
        rows, cols = self.image.shape
        if not (0 <= row < rows and 0 <= col < cols):
            self.sig_pixel_info.emit("")
            return
        value = self.image.modality_frame(self.frame)[row, col]
        if np.ndim(value):
            text = "RGB " + ", ".join(str(int(v)) for v in value)
        else:
            unit = " HU" if self.image.modality == "CT" else ""
            text = f"{float(value):.6g}{unit}"
        heat = self.layer.scaled()
        if heat is not None and heat.shape == (rows, cols):
            text += f"   heat {heat[row, col]:.2f}"
        self.sig_pixel_info.emit(f"x {col}  y {row}   {text}")
