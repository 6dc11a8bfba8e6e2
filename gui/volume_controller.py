"""The volume controller: a shown volume's planes, crosshair, shared window and map.

When a volume is shown, the worker decodes its voxels and resamples them once onto a patient
grid of cubic voxels (:class:`engine.studies.planes.PatientGrid`); each map that reaches the
overlay layer is resampled onto the same grid, with its three projections, on the worker too.
Moving the crosshair, scrolling and changing the window then only slice those arrays, window
the three planes and colour the map with the overlay layer's settings on the GUI thread.

Every grid is tagged with the view it was made for, and a map is drawn only when the overlay
layer says it belongs to this volume and has the volume's shape: one volume's map never lies
over another volume.
"""

from __future__ import annotations

import html
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.studies import display
from engine.studies.planes import PLANES, patient_grid, peak_point, scroll_step
from gui.overlay_layer import owner_key
from gui.viewer import qimage_from_array
from gui.volume_view import DRAG_GAIN, QtVolumeView, grey_qimage

#: Bytes of map grids kept, so switching back to a layer or method shows it without waiting.
MAP_GRID_BYTES = 256 << 20
#: What the panes call the LPS coordinate along their normal.
_DEPTH_NAMES = {"axial": ("z", 2), "coronal": ("y", 1), "sagittal": ("x", 0)}


def volume_grid(volume, cancel):
    """Decode a volume and resample it onto its patient grid (worker thread).

    The volume's default window is worked out here too (it may read the voxels), so the GUI
    thread only looks it up.
    """
    values = volume.voxels
    _ = volume.default_window
    grid = patient_grid(volume.affine, volume.shape)
    return grid, grid.sample(values, volume.affine, fill=float(values.min()), cancel=cancel)


def map_grid(grid, heatmap: np.ndarray, affine: np.ndarray, cancel):
    """A volume map on the patient grid, and its projection along each plane (worker)."""
    values = grid.sample(heatmap, affine, fill=0.0, cancel=cancel)
    return values, {plane: grid.projection(values, plane) for plane in PLANES}


class VolumeController(QObject):
    """Holds a shown volume's view state and draws its three panes.

    Parameters
    ----------
    jobs : gui.jobs.JobRouter
        Where the decoding and resampling go.
    layer : gui.overlay_layer.OverlayLayer
        The overlay shared with the 2-D viewer: its map, opacity, threshold, colours.
    view : QtVolumeView
        The three panes.
    tag : callable
        Returns the view tag of what is shown now; grids for another view are dropped.

    Signals
    -------
    sig_ready()
        The volume's planes are on screen.
    sig_map_drawn()
        A map's planes are on screen.
    sig_pixel_info(str text)
        What lies under the crosshair.
    sig_window_changed(float center, float width)
    """

    sig_ready = Signal()
    sig_map_drawn = Signal()
    sig_pixel_info = Signal(str)
    sig_window_changed = Signal(float, float)

    def __init__(self, jobs, layer, view: QtVolumeView, tag, parent=None) -> None:
        super().__init__(parent)
        self.jobs, self.layer, self.view, self._tag = jobs, layer, view, tag
        self.volume = None
        self.grid = None
        self.voxels: np.ndarray | None = None  # the volume on the grid
        self.point: np.ndarray | None = None  # the crosshair, LPS mm
        self.window: tuple[float, float] | None = None
        self.function = "LINEAR"
        self.mip = False
        self.heat: np.ndarray | None = None  # the shown map on the grid
        self.projections: dict[str, np.ndarray] = {}
        self._moved = False  # the user placed the crosshair (a map then does not move it)
        # Per plane: the keys and images last drawn; the map's look changes bump the style.
        self._drawn: dict[str, tuple] = {}
        self._style = 0
        self._maps: OrderedDict[int, tuple] = OrderedDict()  # id(map) -> (map, grid, proj.)
        for pane in view.panes.values():
            pane.sig_clicked.connect(self.click)
            pane.sig_scrolled.connect(self.scroll)
            pane.sig_window_dragged.connect(self._drag_window)
        view.sig_mip_toggled.connect(self.set_mip)
        layer.sig_changed.connect(self._layer_changed)

    # -- showing ----------------------------------------------------------------------------
    def show(self, volume) -> int:
        """Show ``volume``: decode and resample it on the worker, then draw its planes."""
        self.clear()
        self.volume = volume
        return self.jobs.submit("volume", lambda _p, cancel, _partial: volume_grid(volume, cancel),
                                tag=self._tag(), on_done=self._grid_ready, volume=volume)

    def clear(self) -> None:
        """Show nothing; forget the volume and every map grid."""
        self.volume = self.grid = self.voxels = self.point = self.window = None
        self.heat, self.projections, self._moved = None, {}, False
        self._maps.clear()
        self._drawn.clear()
        for pane in self.view.panes.values():
            pane.set_content(None, None, None)
        self.view.info.setText("")

    def is_ready(self) -> bool:
        """Whether the shown volume's planes are drawn."""
        return self.voxels is not None

    def _grid_ready(self, made, context: dict) -> None:
        if context["volume"] is not self.volume:
            return
        self.grid, self.voxels = made
        s, r, c = self.volume.shape
        self.point = self.volume.index_to_patient(((s - 1) / 2, (r - 1) / 2, (c - 1) / 2))
        preset = self.volume.default_window
        self.window, self.function = (preset.center, preset.width), preset.function
        self.draw()
        self.sig_ready.emit()
        self._layer_changed("heatmap")  # a map asked for meanwhile

    # -- the user's gestures -----------------------------------------------------------------
    def click(self, plane: str, row: float, col: float) -> None:
        """Put the crosshair on pixel ``(row, col)`` of ``plane``; the other planes follow."""
        if self.grid is None:
            return
        geometry = self.grid.geometry(plane, self.grid.index(self.point))
        self.point = self.grid.clip(geometry.to_patient(row, col))
        self._moved = True
        self.draw()

    def scroll(self, plane: str, steps: int) -> None:
        """Move ``plane`` ``steps`` slices along its normal (one voxel spacing each)."""
        if self.grid is None:
            return
        geometry = self.grid.geometry(plane, self.grid.index(self.point))
        step = scroll_step(self.volume.affine, plane)
        self.point = self.grid.clip(self.point + steps * step * geometry.normal)
        self._moved = True
        self.draw()

    def set_point(self, point) -> None:
        """Put the crosshair on an LPS point (clipped into the volume)."""
        if self.grid is not None:
            self.point = self.grid.clip(point)
            self._moved = True
            self.draw()

    def set_window(self, center: float, width: float, function: str = "LINEAR") -> None:
        """Window all three planes alike."""
        self.window, self.function = (float(center), max(float(width), 1.0)), function
        if self.grid is not None:
            self.draw()
        self.sig_window_changed.emit(*self.window)

    def reset_window(self) -> None:
        """Back to the volume's own window."""
        if self.volume is not None:
            preset = self.volume.default_window
            self.set_window(preset.center, preset.width, preset.function)

    def _drag_window(self, dx: float, dy: float) -> None:
        if self.window is None:
            return
        center, width = self.window
        gain = width * DRAG_GAIN
        self.set_window(center + dy * gain, width + dx * gain, self.function)

    def set_mip(self, on: bool) -> None:
        """Show the map as its maximum-intensity projection along each plane."""
        self.mip = bool(on)
        if self.view.mip_box.isChecked() != self.mip:
            self.view.mip_box.setChecked(self.mip)
        self._draw_overlays()

    # -- the map ----------------------------------------------------------------------------
    def _layer_changed(self, name: str) -> None:
        if name != "heatmap":
            self._draw_overlays()  # opacity, colours, threshold, scale, visibility
            return
        heat = self._own_map()
        if heat is None:
            self.heat, self.projections = None, {}
            self._draw_overlays()
            return
        if id(heat) in self._maps and self._maps[id(heat)][0] is heat:
            self._maps.move_to_end(id(heat))
            self._map_ready(self._maps[id(heat)][1:], {"map": heat, "volume": self.volume})
            return
        grid, affine = self.grid, self.volume.affine
        self.jobs.submit("volume-map",
                         lambda _p, cancel, _partial: map_grid(grid, heat, affine, cancel),
                         tag=self._tag(), on_done=self._map_ready, map=heat, volume=self.volume)

    def _own_map(self) -> np.ndarray | None:
        """The overlay layer's map when it belongs to the volume shown, else None."""
        heat, volume = self.layer.heatmap, self.volume
        if heat is None or volume is None or self.grid is None:
            return None
        if self.layer.owner != owner_key(volume, 0) or heat.shape != tuple(volume.shape):
            return None
        return heat

    def _map_ready(self, made, context: dict) -> None:
        heat = context["map"]
        if context["volume"] is not self.volume or self.layer.heatmap is not heat:
            return  # another volume or another map is shown now
        self.heat, self.projections = made
        self._style += 1
        self._maps[id(heat)] = (heat, *made)
        self._maps.move_to_end(id(heat))
        while len(self._maps) > max(1, MAP_GRID_BYTES // max(self.heat.nbytes, 1)):
            self._maps.popitem(last=False)
        if not self._moved:
            self.point = self.grid.clip(peak_point(self.volume, heat))
        self.draw()
        self.sig_map_drawn.emit()

    # -- drawing ----------------------------------------------------------------------------
    def overlay_values(self, plane: str) -> np.ndarray | None:
        """The map values drawn on ``plane`` now (its projection when MIP is on), or None."""
        if self.heat is None:
            return None
        if self.mip:
            return self.projections[plane]
        return self.grid.plane(self.heat, plane, self.grid.index(self.point))

    def plane_values(self, plane: str) -> np.ndarray:
        """The volume's values on ``plane`` through the crosshair."""
        return self.grid.plane(self.voxels, plane, self.grid.index(self.point))

    def cross(self, plane: str) -> tuple[float, float]:
        """``(row, column)`` of the crosshair in ``plane``'s pixels."""
        index = self.grid.index(self.point)
        return self.grid.geometry(plane, index).to_pixel(self.point)

    def _overlay_image(self, plane: str):
        values = self.overlay_values(plane)
        if values is None or not self.layer.visible:
            return None
        rgba = self.layer.rgba(values)
        return None if rgba is None else qimage_from_array(rgba)

    def draw(self) -> None:
        """Window and draw the three planes through the crosshair, each with its map.

        A plane the crosshair move left in place (the coronal and sagittal ones of an axial
        scroll) keeps its images; only its crosshair moves.
        """
        if self.grid is None:
            return
        index = self.grid.index(self.point)
        for plane, pane in self.view.panes.items():
            where = tuple(self.grid.geometry(plane, index).origin)
            base_key = (where, self.window, self.function)
            overlay_key = (where, self._style)
            drawn = self._drawn.get(plane)
            if drawn is not None and drawn[0] == base_key:
                base = drawn[1]
            else:
                base = grey_qimage(display.window_unit(self.plane_values(plane), *self.window,
                                                       self.function))
            if drawn is not None and drawn[2] == overlay_key:
                overlay = drawn[3]
            else:
                overlay = self._overlay_image(plane)
            self._drawn[plane] = (base_key, base, overlay_key, overlay)
            name, axis = _DEPTH_NAMES[plane]
            pane.set_content(base, overlay, self.cross(plane),
                             f"{name} = {self.point[axis]:.1f} mm")
        self._describe()

    def _draw_overlays(self) -> None:
        self._style += 1
        self.draw()

    def voxel(self) -> tuple[int, int, int]:
        """The volume's own voxel ``(slice, row, column)`` under the crosshair."""
        index = np.rint(self.volume.patient_to_index(self.point)).astype(int)
        return tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(index, self.volume.shape,
                                                                 strict=True))

    def _describe(self) -> None:
        volume = self.volume
        s, r, c = volume.shape
        ds, dr, dc = volume.spacing
        k, j, i = self.voxel()
        value = float(volume.voxels[k, j, i])
        units = "HU" if volume.modality == "CT" else ""
        title = " ".join(w for w in (volume.modality, volume.description) if w)
        lines = [f"<b>{html.escape(title or volume.path.name)}</b>",
                 f"{s} × {r} × {c} voxels (slices × rows × columns)",
                 f"{ds:.2f} × {dr:.2f} × {dc:.2f} mm; shown on {self.grid.pixel_mm:.2f} mm "
                 "pixels in patient space",
                 f"Crosshair: slice {k + 1}, row {j + 1}, column {i + 1}",
                 f"LPS ({self.point[0]:.1f}, {self.point[1]:.1f}, {self.point[2]:.1f}) mm",
                 f"Value {value:.0f} {units}".rstrip()]
        heat = self._own_map()
        if heat is not None:
            raw = float(heat[k, j, i]) * self.layer.info.scale
            lines.append(f"Map {float(heat[k, j, i]):.2f} ({raw:.3g} {self.layer.info.units})"
                         + ("; projections shown" if self.mip else ""))
        self.view.info.setText("<br>".join(lines))
        # 1-based, as the panel says it: the status bar and the panel name the same voxel.
        self.sig_pixel_info.emit(
            f"slice {k + 1}, row {j + 1}, column {i + 1}: {value:.0f} {units}".rstrip())
