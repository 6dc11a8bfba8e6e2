"""Does the 3-D demo model look at the nodule? Grad-CAM's peak against the nodule's box.

For held-out synthetic chests (a seed the model never trained on), each nodule volume is
explained through the same session the app uses, and the map's peak voxel, on the volume's own
grid, is checked against the nodule's voxel box. ``tools/localisation_3d.py`` prints the table
the README shows; a test holds the rate to at least 80%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.demo.volumes import in_memory_volume, volume_set
from engine.explain.session import ExplainRequest, Session


@dataclass(frozen=True)
class NoduleCheck:
    """One nodule volume: its box, the map's peak, and the model's nodule probability."""

    index: int
    radius_mm: float
    box: tuple[int, int, int, int, int, int]
    peak: tuple[int, int, int]
    hit: bool
    p_nodule: float


def nodule_localisation(model, seed: int, n: int, method: str = "gradcam",
                        layer: str = "auto", size: int = 128,
                        slices: int = 64) -> list[NoduleCheck]:
    """Explain the nodule volumes among ``n`` chests of ``seed`` and check each map's peak.

    Parameters
    ----------
    model : LoadedModel
        The 3-D demo model (``demo-3d``).
    seed, n : int
        Chests drawn as ``demo-data --3d --seed S --n N`` draws them.
    method, layer : str
        The explanation; the target is the nodule class.
    size, slices : int
        Grid of the chests (as written by ``demo-data --3d``).

    Returns
    -------
    list of NoduleCheck
        One per nodule volume; ``box`` is ``(x0, y0, z0, x1, y1, z1)`` in voxels (column, row,
        slice, end-exclusive) and ``peak`` is ``(slice, row, column)``.
    """
    session = Session(device=str(model.device))
    out = []
    for i, (chest, grid) in enumerate(volume_set(n, seed, size, slices)):
        if chest.nodule_center is None:
            continue
        volume = in_memory_volume(chest.render(grid), grid, f"chest {i}")
        result = session.explain(ExplainRequest(image=volume, model=model, methods=[method],
                                                layers=layer, target="nodule"))
        heat = next(iter(result.maps.values())).heatmap
        peak = tuple(int(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape))
        box = grid.box(chest.nodule_center, chest.nodule_radius)
        hit = all(box[a] <= peak[2 - a] < box[a + 3] for a in range(3))
        out.append(NoduleCheck(i, chest.nodule_radius, box, peak, hit,
                               float(result.scores[model.classes.index("nodule")])))
    return out
