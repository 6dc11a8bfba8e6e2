"""Finishing maps of a 3-D model into the volume's own voxel grid.

A 3-D explainer's raw map is (d, h, w) over the model input: the volume oriented, resampled to
the card's spacing and cropped or padded (:mod:`engine.models.volume_preprocess`). Finishing
cleans it as every map is cleaned (:func:`engine.explain.core.finish_stack`: non-finite values
become 0 with a warning, flat maps are flagged, unsigned maps clipped at 0, peak 1) and brings
it back through the exact inverse of that chain, so the heatmap is (slices, rows, columns) on
the volume's grid, sorted along the slice normal like the volume itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engine.explain.core import MapResult, finish_stack
from engine.models.volume_preprocess import maps_to_volume


def finish_volume_stack(raw: torch.Tensor, model: Any, volume: Any, signed: bool = False,
                        what: str = "map") -> tuple[torch.Tensor, list, list]:
    """Finish (N, d, h, w) raw maps of one volume into (N, slices, rows, columns) heatmaps.

    Parameters
    ----------
    raw : torch.Tensor
        Raw maps spanning the model input (any resolution).
    model : LoadedModel
        A 3-D model; its card's grid says where its input lies in the volume.
    volume : Volume
        The volume the maps explain.
    signed : bool
        Keep the sign (scale by the largest magnitude) instead of clipping at 0.
    what : str
        Names the map in warnings.

    Returns
    -------
    heat : torch.Tensor
        (N, slices, rows, columns) float32.
    warnings : list of str or None
    scales : list of float
        The raw value each map's 1 stands for.
    """
    grid = model.model_grid(volume)
    shape = tuple(volume.shape)
    return finish_stack(raw, model, shape, signed, what,
                        resample=lambda clean: maps_to_volume(clean, grid, shape))


def finish_volume_map(method: str, layer: str, raw: Any, model: Any, volume: Any,
                      signed: bool = False, units: str = "a.u.") -> MapResult:
    """Finish one (d, h, w) raw map into a :class:`MapResult` on the volume's grid."""
    t = raw.detach().float().cpu() if isinstance(raw, torch.Tensor) else torch.as_tensor(
        np.asarray(raw, dtype=np.float32))
    while t.ndim > 3 and t.shape[0] == 1:
        t = t[0]
    heat, warnings, scales = finish_volume_stack(t[None], model, volume, signed,
                                                 f"{method} map for {layer}")
    return MapResult(method=method, layer=layer, raw=t.numpy().astype(np.float32),
                     heatmap=heat[0].numpy(), warning=warnings[0], signed=signed,
                     scale=float(scales[0]), units=units)
