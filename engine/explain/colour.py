"""Heatmap colouring and blending, shared by CLI overlays, the GUI and report figures."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.core.errors import UsageError

#: Colormaps offered everywhere a heatmap is drawn.
COLORMAPS = ("jet", "turbo", "inferno", "viridis")
#: The colormap of signed maps: blue below 0, white-grey at 0, red above, symmetric in lightness,
#: so neither sign looks stronger than the other at the same magnitude.
DIVERGING = "coolwarm"


@lru_cache(maxsize=len(COLORMAPS) + 1)
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


def diverging_lut() -> np.ndarray:
    """Return the 256-entry colour table of signed maps (:data:`DIVERGING`); entry 128 is 0.

    Returns
    -------
    numpy.ndarray
        (256, 3) uint8, read-only: entry 0 is -1, entry 255 is +1.
    """
    return _lut(DIVERGING)


#: Heat range above the threshold over which the overlay fades in: a hard cut shows the map's
#: upsampling as staircase edges when a small model grid is drawn over a large image.
EDGE = 0.05


def heat_rgba(
    heat: np.ndarray,
    cmap: str = "jet",
    opacity: float = 0.5,
    threshold: float = 0.0,
) -> np.ndarray:
    """Colour a heatmap as RGBA: the one colouring the viewer, overlays and figures share.

    Parameters
    ----------
    heat : numpy.ndarray
        (H, W) heatmap with values in [0, 1]; NaN counts as no heat.
    cmap : str
        One of :data:`COLORMAPS`.
    opacity : float
        Alpha of the colour where the heat is shown, in [0, 1].
    threshold : float
        Heat below this value is transparent; above it the alpha rises over :data:`EDGE` to
        ``opacity``.

    Returns
    -------
    numpy.ndarray
        (H, W, 4) uint8, not premultiplied.
    """
    if not 0.0 <= opacity <= 1.0:
        raise UsageError(f"opacity must be in [0, 1], got {opacity}")
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=1.0,
                                 neginf=0.0), 0.0, 1.0)
    out = np.empty(heat.shape + (4,), dtype=np.uint8)
    out[..., :3] = colormap_lut(cmap)[(heat * 255.0 + 0.5).astype(np.uint8)]
    out[..., 3] = _alpha(heat, opacity, threshold)
    return out


def signed_rgba(heat: np.ndarray, opacity: float = 0.5, threshold: float = 0.0) -> np.ndarray:
    """Colour a signed heatmap as RGBA with the diverging map, centred at 0.

    Parameters
    ----------
    heat : numpy.ndarray
        (H, W) signed heatmap with values in [-1, 1]; NaN counts as 0.
    opacity : float
        Alpha where the magnitude is shown, in [0, 1].
    threshold : float
        Magnitudes below this are transparent, whatever their sign (as in :func:`heat_rgba`).

    Returns
    -------
    numpy.ndarray
        (H, W, 4) uint8, not premultiplied.
    """
    if not 0.0 <= opacity <= 1.0:
        raise UsageError(f"opacity must be in [0, 1], got {opacity}")
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=1.0,
                                 neginf=-1.0), -1.0, 1.0)
    out = np.empty(heat.shape + (4,), dtype=np.uint8)
    # -1 -> entry 0, 0 -> entry 128 (rounded up from 127.5), +1 -> entry 255.
    out[..., :3] = diverging_lut()[((heat + 1.0) * 127.5 + 0.5).astype(np.uint8)]
    out[..., 3] = _alpha(np.abs(heat), opacity, threshold)
    return out


def _alpha(magnitude: np.ndarray, opacity: float, threshold: float) -> np.ndarray:
    """Alpha of each pixel: transparent below ``threshold``, fading in over :data:`EDGE`."""
    alpha = opacity * 255.0
    if threshold > 0:
        ramp = np.clip((magnitude - threshold) / EDGE + 1.0 / 256, 0.0, 1.0)
        return np.where(magnitude >= threshold, alpha * ramp + 0.5, 0).astype(np.uint8)
    return np.full(magnitude.shape, round(alpha), dtype=np.uint8)


def blend(
    rgb: np.ndarray,
    heat: np.ndarray,
    cmap: str = "jet",
    opacity: float = 0.5,
    threshold: float = 0.0,
    signed: bool = False,
) -> np.ndarray:
    """Draw a heatmap over an image, coloured exactly as :func:`heat_rgba` colours it.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 image as the viewer shows it ((H, W) grey is accepted).
    heat : numpy.ndarray
        (H, W) heatmap in image geometry with values in [0, 1]; NaN counts as no heat.
    cmap, opacity, threshold
        As in :func:`heat_rgba`.
    signed : bool
        ``heat`` is a signed map in [-1, 1]: coloured by :func:`signed_rgba` (``cmap`` unused).

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    heat = np.asarray(heat)
    if heat.shape != rgb.shape[:2]:
        raise UsageError(f"heatmap shape {heat.shape} does not match image {rgb.shape[:2]}")
    rgba = signed_rgba(heat, opacity, threshold) if signed else heat_rgba(heat, cmap, opacity,
                                                                          threshold)
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * (1.0 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
