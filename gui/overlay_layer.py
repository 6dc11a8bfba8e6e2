"""The heatmap overlay as an evented model: widgets and views bind to it, never to each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.core.case import ContentId, content_of
from engine.explain.colour import COLORMAPS, colormap_lut, diverging_lut, heat_rgba, signed_rgba
from engine.explain.scale import DEFAULT_SCALE, SCALES


@dataclass(frozen=True)
class MapInfo:
    """What the colour bar needs to label a map: its raw scale, units and sign."""

    scale: float = 1.0
    units: str = "a.u."
    signed: bool = False


def map_info(map_result) -> MapInfo:
    """The colour-bar facts of a ``MapResult``."""
    return MapInfo(scale=float(map_result.scale), units=str(map_result.units),
                   signed=bool(map_result.signed))


class OverlayLayer(QObject):
    """Display state of one heatmap overlay, with validated setters.

    Every setter validates its value, stores it, and emits ``sig_changed(name)`` only when the
    value really changed, so two-way bound widgets settle instead of looping.

    Parameters
    ----------
    parent : QObject, optional
        The Qt parent.
    """

    sig_changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._opacity = 0.45
        self._colormap = "jet"
        # Below a fifth of the range a jet map only tints the whole image blue; hide that.
        self._threshold = 0.2
        self._scale = DEFAULT_SCALE
        self._visible = True
        self._heatmap: np.ndarray | None = None
        self._info = MapInfo()
        self._shared: float | None = None  # raw maximum shared by the compared maps
        self._owner: tuple | None = None  # (image path, frame) the map belongs to
        self._range = (0.0, 0.0, 0.0)  # min, max and largest magnitude of the heatmap
        self._luts: dict[str, np.ndarray] = {}

    # -- validated properties -------------------------------------------------------------
    @property
    def opacity(self) -> float:
        """Overlay opacity in [0, 1]."""
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {value}")
        self._set("opacity", value)

    @property
    def colormap(self) -> str:
        """Colormap name, one of ``engine.explain.colour.COLORMAPS``."""
        return self._colormap

    @colormap.setter
    def colormap(self, value: str) -> None:
        if value not in COLORMAPS:
            raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}, got {value!r}")
        self._set("colormap", value)

    @property
    def threshold(self) -> float:
        """Heat below this value (after scaling) is not drawn."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {value}")
        self._set("threshold", value)

    @property
    def scale(self) -> str:
        """A key of ``engine.explain.scale.SCALES``: ``"map"`` draws the map against its own
        maximum; ``"image"`` stretches its min..max; ``"fixed"`` uses [0, 1] as given;
        ``"absolute"`` shows raw values against the shared maximum (:meth:`set_map`)."""
        return self._scale

    @scale.setter
    def scale(self, value: str) -> None:
        if value not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {value!r}")
        self._set("scale", value)

    @property
    def visible(self) -> bool:
        """Whether the overlay is drawn."""
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._set("visible", bool(value))

    @property
    def heatmap(self) -> np.ndarray | None:
        """The heatmap in image geometry, float32 (H, W), or None when there is none.

        Setting it directly gives a map of no stated units, owned by no image; the window uses
        :meth:`set_map`.
        """
        return self._heatmap

    @heatmap.setter
    def heatmap(self, value: np.ndarray | None) -> None:
        self.set_map(value)

    @property
    def info(self) -> MapInfo:
        """Raw scale, units and sign of the current map."""
        return self._info

    @property
    def owner(self) -> tuple | None:
        """``(image path, frame)`` the current map belongs to, or None when unstated."""
        return self._owner

    @property
    def shared_max(self) -> float:
        """The raw value drawn at full strength by the absolute scale."""
        own = self._info.scale * self._range[2]
        return float(self._shared) if self._shared and self._shared > 0 else own

    def set_map(self, heatmap: np.ndarray | None, info: MapInfo | None = None,
                owner: tuple | None = None, shared_max: float | None = None) -> None:
        """Show a new map (arrays compare by identity: a new map is always a change).

        Parameters
        ----------
        heatmap : numpy.ndarray or None
            ``MapResult.heatmap``: (H, W) in [0, 1], or [-1, 1] when signed.
        info : MapInfo, optional
            Its raw scale (``MapResult.scale``), units and sign.
        owner : tuple, optional
            :func:`owner_key` of the image and frame: a viewer draws the map only over that
            content (never matched by path: two series of one folder share it).
        shared_max : float, optional
            Largest raw magnitude among the maps being compared (the absolute scale's 1).
        """
        self._heatmap = None if heatmap is None else np.asarray(heatmap, dtype=np.float32)
        self._info = info or MapInfo()
        self._owner = owner
        self._shared = shared_max
        if self._heatmap is None:
            self._range = (0.0, 0.0, 0.0)
        else:
            finite = np.nan_to_num(self._heatmap, nan=0.0, posinf=0.0, neginf=0.0)
            lo, hi = float(finite.min()), float(finite.max())
            self._range = (lo, hi, max(abs(lo), abs(hi)))
        self.sig_changed.emit("heatmap")

    def set_shared_max(self, value: float | None) -> None:
        """Change the absolute scale's shared maximum (new maps joined the comparison)."""
        if value != self._shared:
            self._shared = value
            self.sig_changed.emit("heatmap")

    def _set(self, name: str, value) -> None:
        if getattr(self, f"_{name}") == value:
            return
        setattr(self, f"_{name}", value)
        self.sig_changed.emit(name)

    # -- derived data ---------------------------------------------------------------------
    def lut(self) -> np.ndarray:
        """Return the (256, 3) uint8 lookup table of the current colormap."""
        if self._colormap not in self._luts:
            self._luts[self._colormap] = colormap_lut(self._colormap)
        return self._luts[self._colormap]

    def _affine(self) -> tuple[float, float]:
        """``(offset, gain)`` with ``scaled = (heatmap - offset) * gain`` for the scale."""
        lo, hi, peak = self._range
        if self._scale == "image":
            if self._info.signed:
                return 0.0, 1.0 / peak if peak > 0 else 0.0
            return lo, 1.0 / (hi - lo) if hi > lo else 0.0
        if self._scale == "absolute":
            shared = self.shared_max
            return 0.0, self._info.scale / shared if shared > 0 else 0.0
        if self._scale == "map":
            return 0.0, 1.0 / peak if peak > 0 else 0.0
        return 0.0, 1.0

    def scaled(self, values: np.ndarray | None = None) -> np.ndarray | None:
        """Return the heatmap mapped by the current scale: [0, 1], or [-1, 1] when signed.

        ``values``: part of the same map (a volume map's plane) to map instead. NaN becomes 0.
        """
        if self._heatmap is None:
            return None
        values = self._heatmap if values is None else values
        heat = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        offset, gain = self._affine()
        heat = (heat - np.float32(offset)) * np.float32(gain)
        return np.clip(heat, -1.0 if self._info.signed else 0.0, 1.0)

    def peak(self) -> float:
        """The largest magnitude the current scale draws, in [0, 1] (no full-frame work)."""
        lo, hi, peak = self._range
        offset, gain = self._affine()
        return min(1.0, max(abs(lo - offset), abs(hi - offset)) * gain) if peak > 0 else 0.0

    def value_at(self, row: int, col: int) -> tuple[float, float] | None:
        """Return ``(scaled, raw)`` heat at one pixel, or None without a map there.

        One pixel's worth of work, so the pixel readout can follow the mouse.
        """
        heat = self._heatmap
        if heat is None or not (0 <= row < heat.shape[0] and 0 <= col < heat.shape[1]):
            return None
        value = float(heat[row, col])
        if not np.isfinite(value):
            value = 0.0
        offset, gain = self._affine()
        low = -1.0 if self._info.signed else 0.0
        return min(max((value - offset) * gain, low), 1.0), value * self._info.scale

    def bar_range(self) -> tuple[float, float]:
        """Raw values (in ``info.units``) at the colour bar's two ends."""
        lo, hi, peak = self._range
        scale = self._info.scale
        if self._scale == "absolute":
            top = self.shared_max
        elif self._scale == "map":
            top = peak * scale
        elif self._scale == "image":
            if not self._info.signed:
                return lo * scale, hi * scale
            top = peak * scale
        else:
            top = scale
        return (-top if self._info.signed else 0.0), top

    def rgba(self, values: np.ndarray | None = None) -> np.ndarray | None:
        """Return the overlay as RGBA uint8 (H, W, 4), or None (see ``heat_rgba``).

        Signed maps use the diverging colour map centred at 0, whatever ``colormap`` says.
        ``values``: as in :meth:`scaled`.
        """
        heat = self.scaled(values)
        if heat is None:
            return None
        if self._info.signed:
            return signed_rgba(heat, self._opacity, self._threshold)
        return heat_rgba(heat, self._colormap, self._opacity, self._threshold)

    def bar_lut(self) -> np.ndarray:
        """The (256, 3) colours of the colour bar: the diverging map for signed maps."""
        return diverging_lut() if self._info.signed else self.lut()

    def state(self) -> dict:
        """Return the display settings as a plain dict (used by exports and settings)."""
        return {
            "opacity": self._opacity,
            "colormap": self._colormap,
            "threshold": self._threshold,
            "scale": self._scale,
            "visible": self._visible,
        }


def owner_key(image, frame: int) -> ContentId | None:
    """What a map drawn over ``image`` at ``frame`` belongs to: the frame's content identity.

    Never the path: two series of one folder, or a file replaced on disk, share a path and must
    not share a map. None without an image, or for a frame the image does not have (the
    viewer's frame lags behind while another image is being shown).
    """
    if image is None or not 0 <= frame < getattr(image, "n_frames", 1):
        return None
    return content_of(image, frame)


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """The outline of a boolean (H, W) mask as closed polygons of (x, y) image coordinates.

    Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` in scene coordinates, so
    the polygons run along the mask's pixel edges at half-pixel precision (marching squares at
    level 0.5, skimage.measure.find_contours). Slow for large masks: call it on the worker.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (H, W) mask in image geometry.

    Returns
    -------
    list of numpy.ndarray
        One (N, 2) float array of (x, y) points per closed contour.
    """
    from skimage.measure import find_contours

    # A border of background closes contours that touch the image's edge.
    padded = np.pad(np.asarray(mask, dtype=np.float32), 1)
    return [np.ascontiguousarray(c[:, ::-1] - 0.5) for c in find_contours(padded, 0.5)]
