"""The central image viewer: zoom, pan, window/level, frames, and the heatmap overlay on top."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem

from engine.studies.calibration import modality_units
from gui.overlay_layer import OverlayLayer, owner_key
from gui.roi_item import RoiDrawingMixin
from gui.zoom_view import QtZoomView

#: Standard CT windows (name, centre, width) bound to keys 1-5.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("Soft tissue", 40.0, 400.0),
    ("Lung", -600.0, 1500.0),
    ("Bone", 400.0, 1800.0),
    ("Brain", 40.0, 80.0),
    ("Abdomen", 60.0, 400.0),
)
#: Colour of a segmentation model's predicted-mask outline: magenta, which no heat colormap uses.
OUTLINE_COLOR = QColor(255, 0, 255)


def qimage_from_array(array: np.ndarray) -> QImage:
    """Return a QImage that owns a copy of an RGB (H, W, 3) or RGBA (H, W, 4) uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width, channels = array.shape
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    # QImage wraps the buffer without owning it; copy() detaches it before the array goes away.
    return QImage(array.data, width, height, channels * width, fmt).copy()


class QtImageViewer(RoiDrawingMixin, QtZoomView):
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
    #: A new frame is on screen (after a change of frame).
    sig_frame_changed = Signal(int)
    #: The first frame of a new image is on screen.
    sig_frame_shown = Signal(int)
    #: Cine playback started (True) or stopped (False).
    sig_cine_changed = Signal(bool)
    sig_pixel_info = Signal(str)
    #: ``((x0, y0, x1, y1), shape)`` in image pixels, end-exclusive, or None when cleared.
    sig_roi_changed = Signal(object)
    #: The ROI tool now in use: ``"box"``, ``"ellipse"`` or ``""`` (pan).
    sig_roi_tool_changed = Signal(str)

    def __init__(self, layer: OverlayLayer | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self._overlay_item = QGraphicsPixmapItem()
        self._overlay_item.setZValue(1)
        self.scene().addItem(self._overlay_item)
        self._outline_item = QGraphicsPathItem()
        pen = QPen(OUTLINE_COLOR, 2.0)
        pen.setCosmetic(True)  # the same width on screen at every zoom
        self._outline_item.setPen(pen)
        self._outline_item.setZValue(2)
        self._outline_item.setVisible(False)
        self.scene().addItem(self._outline_item)
        self._init_roi()
        self.image = None
        self.frame = 0
        self.window: tuple[float, float] | None = None
        self._window_arg = None  # what render() gets: None (file default), a preset or (c, w)
        self.invert = False
        self._wl_anchor: tuple[QPointF, tuple[float, float]] | None = None
        self._cine = QTimer(self)
        self._cine.setInterval(100)
        self._cine.timeout.connect(self._cine_step)
        self.layer = layer or OverlayLayer(self)
        self.layer.sig_changed.connect(self._refresh_overlay)
        self._ready = lambda _frame: True
        self._request = lambda _frame: None
        self._pending_frame: int | None = None
        self._wanted_window = None
        self._rendered: QPixmap | None = None
        self._message = ""  # shown in place of the image (loading, or why it cannot be shown)
        self._failed = False
        self._last_pos: QPointF | None = None  # where the mouse last was, for the readout
        self._units = ""  # the unit of the shown image's values, read once per image

    # -- image and display pipeline -------------------------------------------------------
    def set_frame_source(self, ready, request) -> None:
        """Decode frames elsewhere: ``ready(frame)`` says whether a frame is decoded, and
        ``request(frame)`` asks for it, after which :meth:`frame_ready` is to be called.

        Without a source the viewer decodes frames itself (standalone use, tests).
        """
        self._ready, self._request = ready, request

    def set_image(self, image, frame: int = 0, window: tuple[float, float] | None = None,
                  invert: bool = False, rendered: QPixmap | None = None) -> None:
        """Show ``image`` at ``frame``, fitted to the view, rendered once.

        ``window`` (centre, width) defaults to the file's own; ``invert`` to no inversion;
        ``rendered`` is the frame already rendered with them elsewhere (the compare grid renders
        once for all its cells). With a frame source, nothing is drawn until the frame is
        decoded.
        """
        self._rendered = rendered
        self.image = image
        self._units = modality_units(image)
        self.frame = max(0, min(int(frame), image.n_frames - 1))
        self._pending_frame = None
        self._window_arg = None
        self.window = None
        self._wanted_window = window
        self.invert = bool(invert)
        self._message = ""
        self._failed = False
        # The last image's pixels go first: what reacts to the changes below (the readout on
        # a cleared map) must not read the new image through the old pixmap.
        self._image_item.setPixmap(QPixmap())
        self.sig_pixel_info.emit("")  # the last image's value (and unit) is not this one's
        self.layer.heatmap = None
        self.set_outline(None)  # an outline, like an ROI, belongs to one image
        self._roi_start = None
        self.clear_roi()  # an ROI marks pixels of one image; another image has other anatomy
        self._fit_pending = True
        if self._ready(self.frame):
            self._first_render()
            self.sig_frame_shown.emit(self.frame)
        else:
            self._message = f"Loading {image.path.name}…"
            self.viewport().update()
            self._request(self.frame)

    def _first_render(self) -> None:
        self.window = self._default_window()
        window = self._wanted_window
        if window is not None and not self.image.is_color:
            self.window = self._window_arg = (float(window[0]), float(window[1]))
        self._message = ""
        rendered, self._rendered = self._rendered, None
        if rendered is not None:
            self._show_pixmap(rendered)
        else:
            self._render()
        self.fit()
        self._refresh_overlay()
        self._report_last_pixel()  # the value under a resting cursor, of this image

    def frame_ready(self, frame: int) -> None:
        """A frame of the current image was decoded: show it if it is the one wanted."""
        if self.image is None:
            return
        if self._failed:
            return
        if self._image_item.pixmap().isNull() and frame == self.frame:
            self._first_render()
            self.sig_frame_shown.emit(frame)
        elif frame == self._pending_frame:
            self._pending_frame = None
            self._show_frame(frame)

    def show_message(self, text: str) -> None:
        """Show no image, only ``text`` in the middle of the view (why it cannot be shown)."""
        self._message = text
        self._failed = True
        self._pending_frame = None
        self._image_item.setPixmap(QPixmap())
        self.sig_pixel_info.emit("")  # no pixels, so no value to read
        self.layer.heatmap = None
        self.set_outline(None)
        self._refresh_overlay()
        self.viewport().update()

    def message(self) -> str:
        """The text shown in place of the image, or ``""``."""
        return self._message

    def clear(self) -> None:
        """Show nothing."""
        self.image = None
        self._message = ""
        self._failed = False
        self._image_item.setPixmap(QPixmap())
        self.sig_pixel_info.emit("")
        self.layer.heatmap = None
        self.set_outline(None)
        self.clear_roi()
        self.viewport().update()

    def set_outline(self, contours: list | None, frame: int | None = None) -> None:
        """Outline a segmentation model's predicted mask with closed polygons, or clear it.

        Parameters
        ----------
        contours : list of numpy.ndarray or None
            (N, 2) arrays of (x, y) image coordinates (:func:`gui.overlay_layer.mask_contours`).
        frame : int, optional
            The frame the mask belongs to; on another frame nothing is drawn.
        """
        path = QPainterPath()
        if contours and (frame is None or frame == self.frame):
            for points in contours:
                path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in points]))
                path.closeSubpath()
        self._outline_item.setPath(path)
        self._outline_item.setVisible(not path.isEmpty())

    def outline_path(self) -> QPainterPath:
        """The outline drawn over the image (empty when none)."""
        return self._outline_item.path() if self._outline_item.isVisible() else QPainterPath()

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
        if self.image is None or self._message:
            return
        rgb = self.image.render(self.frame, window=self._window_arg, invert=self.invert)
        self._show_pixmap(QPixmap.fromImage(qimage_from_array(rgb)))

    def _show_pixmap(self, pixmap: QPixmap) -> None:
        self._image_item.setPixmap(pixmap)
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

    def _refresh_overlay(self, name: str = "") -> None:
        layer = self.layer
        owner = owner_key(self.image, self.frame)
        rgba = layer.rgba() if layer.visible and not self._image_item.pixmap().isNull() \
            else None
        if rgba is None or rgba.shape[:2] != tuple(self.image.shape) or (
                layer.owner is not None and layer.owner != owner):
            self._overlay_item.setPixmap(QPixmap())
            self._overlay_item.setVisible(False)
        else:
            self._overlay_item.setPixmap(QPixmap.fromImage(qimage_from_array(rgba)))
            self._overlay_item.setVisible(True)
        if name == "heatmap":
            self._report_last_pixel()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        super().drawForeground(painter, rect)
        if not self._message:
            return
        painter.save()
        painter.resetTransform()
        area = QRectF(self.viewport().rect()).adjusted(24, 24, -24, -24)
        painter.setPen(QColor(235, 235, 235))
        painter.drawText(area, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                         self._message)
        painter.restore()

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

    # -- frames and cine ------------------------------------------------------------------
    def set_frame(self, frame: int) -> None:
        """Show another frame of a multi-frame image (clamped to the valid range).

        A frame that is not decoded yet is asked for; the view keeps the frame it shows (and
        says so in :attr:`frame`) until the new one arrives, so pixels and frame number always
        agree.
        """
        if self.image is None or self._failed:
            return
        frame = max(0, min(int(frame), self.image.n_frames - 1))
        if frame == self.frame:
            self._pending_frame = None
            return
        if not self._ready(frame):
            self._pending_frame = frame
            self._request(frame)
            return
        self._pending_frame = None
        self._show_frame(frame)

    def _show_frame(self, frame: int) -> None:
        self.frame = frame
        if self._window_arg is None:
            self.window = self._default_window()
        self._render()
        self._refresh_overlay()
        self.sig_frame_changed.emit(frame)
        self._report_last_pixel()

    def step_frame(self, delta: int) -> None:
        """Move ``delta`` frames, wrapping around at the ends."""
        if self.image is not None and self.image.n_frames > 1:
            start = self.frame if self._pending_frame is None else self._pending_frame
            self.set_frame((start + delta) % self.image.n_frames)

    def is_playing(self) -> bool:
        """Whether cine is running."""
        return self._cine.isActive()

    def toggle_cine(self) -> bool:
        """Start or stop playing the frames; return whether cine is now running."""
        if self._cine.isActive() or self.image is None or self.image.n_frames < 2:
            self._cine.stop()
            self.sig_cine_changed.emit(False)
            return False
        self._cine.start()
        self.sig_cine_changed.emit(True)
        return True

    def _cine_step(self) -> None:
        # Cine plays decoded frames only: a frame still being decoded holds the playback.
        if self._pending_frame is None:
            self.step_frame(1)

    # -- events ---------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.step_frame(-1 if event.angleDelta().y() > 0 else 1)
            return
        self.zoom_wheel(event)

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
            self._report_pixel(event.position())
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

    def _report_last_pixel(self) -> None:
        if self._last_pos is not None:
            self._report_pixel(self._last_pos)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._last_pos = None
        super().leaveEvent(event)

    def _report_pixel(self, pos: QPointF) -> None:
        """Announce the value under ``pos``: one pixel's worth of work, never a whole frame."""
        self._last_pos = QPointF(pos)
        if self.image is None or self._image_item.pixmap().isNull():
            self.sig_pixel_info.emit("")
            return
        scene = self.mapToScene(pos.toPoint())
        row, col = int(np.floor(scene.y())), int(np.floor(scene.x()))
        rows, cols = self.image.shape
        if not (0 <= row < rows and 0 <= col < cols):
            self.sig_pixel_info.emit("")
            return
        # Decoded on the worker with the frame, so this is a look-up in a cached array.
        value = self.image.modality_frame(self.frame)[row, col]
        if np.ndim(value):
            text = "RGB " + ", ".join(str(int(v)) for v in value)
        else:
            text = f"{float(value):.6g} {self._units}".rstrip()
        heat = self.layer.value_at(row, col) if self._overlay_item.isVisible() else None
        if heat is not None:
            text += f"   heat {heat[0]:.2f} ({heat[1]:.3g} {self.layer.info.units})"
        self.sig_pixel_info.emit(f"x {col}  y {row}   {text}")
