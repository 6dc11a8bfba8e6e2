"""Heatmap colouring and blending, shared by CLI overlays, the GUI and report figures."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.errors import UsageError

#: Colormaps offered everywhere a heatmap is drawn.
COLORMAPS = ("jet", "turbo", "inferno", "viridis")


@lru_cache(maxsize=len(COLORMAPS))
def _lut(name: str) -> np.ndarray:
    # Imported here so that engine start-up does not pay for matplotlib.
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    lut = np.round(rgba[:, :3] * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def colormap_lut(name: str) -> np.ndarray:
    """Return the 256-entry colour table of a colormap.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAPS`.

    Returns
    -------
    numpy.ndarray
        (256, 3) uint8, read-only.
    """
    if name not in COLORMAPS:
        raise UsageError(f"unknown colormap {name!r}", fix=f"use one of {', '.join(COLORMAPS)}")
    return _lut(name)


def blend(
    rgb: np.ndarray,
    heat: np.ndarray,
    cmap: str = "jet",
    opacity: float = 0.5,
    threshold: float = 0.0,
) -> np.ndarray:
    """Draw a heatmap over an image.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 image as the viewer shows it ((H, W) grey is accepted).
    heat : numpy.ndarray
        (H, W) heatmap in image geometry with values in [0, 1]; NaN counts as no heat.
    cmap : str
        One of :data:`COLORMAPS`.
    opacity : float
        Weight of the heatmap colour in [0, 1].
    threshold : float
        Pixels whose heat is below this value keep the image's own colour.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if heat.shape != rgb.shape[:2]:
        raise UsageError(f"heatmap shape {heat.shape} does not match image {rgb.shape[:2]}")
    if not 0.0 <= opacity <= 1.0:
        raise UsageError(f"opacity must be in [0, 1], got {opacity}")
    heat = np.clip(heat, 0.0, 1.0)
    colour = colormap_lut(cmap)[np.round(heat * 255.0).astype(np.intp)]
    alpha = np.where(heat >= threshold, np.float32(opacity), np.float32(0.0))[..., None]
    out = rgb.astype(np.float32) * (1.0 - alpha) + colour.astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
