"""Concept folders for testing the demo models with TCAV: the site-B marker, and random images.

``concepts/marker/`` holds phantoms that all carry the marker token, half of them with a
nodule; each ``concepts/random_NN/`` holds phantoms without it (a nodule in half), as TCAV's
random counterexamples are images that do not show the concept. So the marker is the only
thing the concept's examples share that random ones lack. Every image is a PNG written from
a seed: the same arguments write the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from engine.demo.phantoms import make_phantom

#: The demo's concept: the hospital marker token of site B.
MARKER_CONCEPT = "marker"
#: Random concept folders the demo writes (the significance test needs at least ten).
N_RANDOM = 10


def _write(folder: Path, n: int, seed: int, marker: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        ph = make_phantom(rng, nodule=bool(rng.random() < 0.5), marker=bool(rng.random() < marker))
        PILImage.fromarray(np.round(ph.pixels * 255).astype(np.uint8), mode="L").save(
            folder / f"example_{i + 1:03d}.png")


def write_concepts(out: Path, n: int = 40, seed: int = 9000, n_random: int = N_RANDOM) -> Path:
    """Write ``out/marker`` and ``out/random_00`` ... (``n`` images each); return ``out``.

    Parameters
    ----------
    out : Path
        The concepts folder (created).
    n : int
        Images per folder.
    seed : int
        Data seed; folder ``k`` uses ``seed + k``, apart from the demo's training seeds.
    n_random : int
        Random folders.
    """
    _write(Path(out) / MARKER_CONCEPT, n, seed, marker=1.0)
    for k in range(n_random):
        _write(Path(out) / f"random_{k:02d}", n, seed + 1 + k, marker=0.0)
    return Path(out)
