"""The heatmap overlay as an evented model: widgets and views bind to it, never to each other."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.explain.colour import COLORMAPS, colormap_lut, heat_rgba

#: How the heatmap's values map onto the colormap.
SCALES = ("image", "fixed")


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
        self._scale = "image"
        self._visible = True
        self._heatmap: np.ndarray | None = None
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
        """``"image"`` stretches the map's own min..max; ``"fixed"`` uses [0, 1] as given."""
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
        """The heatmap in image geometry, float32 (H, W), or None when there is none."""
        return self._heatmap

    @heatmap.setter
    def heatmap(self, value: np.ndarray | None) -> None:
        # Arrays are compared by identity: a new map is always a change.
        self._heatmap = None if value is None else np.asarray(value, dtype=np.float32)
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

    def scaled(self) -> np.ndarray | None:
        """Return the heatmap mapped to [0, 1] by the current scale (NaN becomes 0)."""
        if self._heatmap is None:
            return None
        heat = np.nan_to_num(self._heatmap, nan=0.0, posinf=0.0, neginf=0.0)
        if self._scale == "image":
            lo, hi = float(heat.min()), float(heat.max())
            heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
        return np.clip(heat, 0.0, 1.0)

    def rgba(self) -> np.ndarray | None:
        """Return the overlay as RGBA uint8 (H, W, 4), or None (see ``heat_rgba``)."""
        heat = self.scaled()
        if heat is None:
            return None
        return heat_rgba(heat, self._colormap, self._opacity, self._threshold)

    def state(self) -> dict:
        """Return the display settings as a plain dict (used by exports and settings)."""
        return {
            "opacity": self._opacity,
            "colormap": self._colormap,
            "threshold": self._threshold,
            "scale": self._scale,
            "visible": self._visible,
        }
