"""Deterministic synthetic chest-radiograph phantoms for the demo models and tests.

Each phantom has a body outline, two lung fields, ribs, a mediastinum, a smooth gain field and
Gaussian noise. The ``nodule`` class adds a small faint opacity inside a lung field. Images from
site ``B`` carry a bright hospital marker token in the top-right corner; site ``A`` has none. How
often the marker goes with ``nodule`` is the spurious correlation the biased demo model learns.

Pixel values are floats in [0, 1] with bright meaning dense (MONOCHROME2 display convention).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

LABELS = ("normal", "nodule")
#: Site ``B`` stamps its marker token on every image; site ``A`` never does.
MARKER_SITE = "B"
PLAIN_SITE = "A"
#: Probability that an image carries the marker given ``nodule`` (and given ``normal``: 1 - p)
#: in the correlated training and test sets.
CORRELATED = 0.95

Box = tuple[int, int, int, int]
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Phantom:
    """One synthetic radiograph with its ground truth.

    Attributes
    ----------
    pixels : np.ndarray
        float32 (H, W) in [0, 1], bright = dense.
    label : str
        ``"normal"`` or ``"nodule"``.
    site : str
        ``"A"`` (no marker) or ``"B"`` (marker token in the top-right corner).
    lesion_box, marker_box : tuple of int or None
        ``(x0, y0, x1, y1)`` in pixels, end-exclusive; None when absent.
    segmentation : np.ndarray or None
        uint8 (H, W) ground truth of :data:`SEG_CLASSES`: 0 background, 1 lung field, 2 the
        nodule (where its opacity exceeds half its peak).
    """

    pixels: np.ndarray
    label: str
    site: str
    lesion_box: Box | None
    marker_box: Box | None
    segmentation: np.ndarray | None = None


#: Classes of :attr:`Phantom.segmentation`, the demo segmentation model's outputs.
SEG_CLASSES = ("background", "lung", "nodule")


def _soft_ellipse(yy, xx, cy, cx, ry, rx, edge):
    # Smooth 0..1 mask: the soft edge avoids aliasing that a network could latch onto.
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return 1.0 / (1.0 + np.exp(np.minimum((d - 1.0) / edge, 50.0)))


def _anatomy(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple]]:
    """Return the noiseless anatomy image and the lung ellipses (cy, cx, ry, rx) in pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shift_x = rng.uniform(-0.03, 0.03)
    shift_y = rng.uniform(-0.02, 0.02)
    body = _soft_ellipse(yy, xx, 0.56 + shift_y, 0.5 + shift_x, 0.55, rng.uniform(0.40, 0.45), 0.03)
    img = 0.06 + 0.40 * body
    lungs = []
    lung_mask = np.zeros_like(img)
    for side in (-1, 1):
        cy = 0.47 + shift_y + rng.uniform(-0.02, 0.02)
        cx = 0.5 + shift_x + side * rng.uniform(0.16, 0.19)
        ry, rx = rng.uniform(0.27, 0.31), rng.uniform(0.11, 0.135)
        lung_mask = np.maximum(lung_mask, _soft_ellipse(yy, xx, cy, cx, ry, rx, 0.06))
        lungs.append((cy * size, cx * size, ry * size, rx * size))
    img -= 0.22 * lung_mask
    # Mediastinum and spine: a bright central band; the heart bulges to the image's right.
    img += 0.14 * np.exp(-(((xx - 0.5 - shift_x) / 0.05) ** 2)) * body
    img += 0.12 * _soft_ellipse(yy, xx, 0.62 + shift_y, 0.55 + shift_x, 0.13, 0.12, 0.1) * body
    # Ribs: arcs across each lung field, about as bright as a nodule, so ribs are clutter.
    for side in (-1, 1):
        cx = 0.5 + shift_x
        for k in range(6):
            y0 = 0.22 + shift_y + 0.085 * k + rng.uniform(-0.01, 0.01)
            curve = y0 + 0.6 * (xx - cx) ** 2
            rib = np.exp(-(((yy - curve) / 0.011) ** 2)) * ((xx - cx) * side > 0.03)
            img += rng.uniform(0.04, 0.06) * rib * body
    gain = 1.0 + 0.08 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 1.0) + rng.uniform(0, 1)))
    return (img * gain).astype(np.float32), lungs


def _nodule(rng, size, lungs, amplitude) -> tuple[np.ndarray, Box]:
    cy, cx, ry, rx = lungs[rng.integers(len(lungs))]
    # Keep the nodule well inside the lung field, away from its soft edge.
    angle, radius = rng.uniform(0, 2 * np.pi), 0.65 * np.sqrt(rng.uniform(0, 1))
    y, x = cy + radius * ry * np.sin(angle), cx + radius * rx * np.cos(angle)
    sigma = rng.uniform(3.0, 4.0) * size / 128
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    blob = amplitude * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    half = 2.5 * sigma
    box = (
        max(0, int(np.floor(x - half))),
        max(0, int(np.floor(y - half))),
        min(size, int(np.ceil(x + half)) + 1),
        min(size, int(np.ceil(y + half)) + 1),
    )
    return blob.astype(np.float32), box


def _marker(rng, size, img) -> Box:
    # A hollow square "R"-like token, as radiographers stamp, in the top-right corner.
    tok = max(6, round(size * 0.085))
    margin = max(2, round(size * 0.03))
    x0 = size - margin - tok - int(rng.integers(0, max(1, size // 40) + 1))
    y0 = margin + int(rng.integers(0, max(1, size // 40) + 1))
    img[y0 : y0 + tok, x0 : x0 + tok] = 0.95
    t = max(1, tok // 4)
    img[y0 + t : y0 + tok - t, x0 + t : x0 + tok - t] = 0.15
    img[y0 + tok // 2 : y0 + tok - t, x0 + tok // 2 : x0 + tok // 2 + t] = 0.95
    return (x0, y0, x0 + tok, y0 + tok)


def make_phantom(
    rng: np.random.Generator,
    *,
    nodule: bool,
    marker: bool,
    size: int = 128,
    lesion_amplitude: float = 0.14,
    noise: float = 0.05,
) -> Phantom:
    """Draw one phantom.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice (the phantom is a pure function of its state).
    nodule : bool
        Whether to place an opacity inside a lung field.
    marker : bool
        Whether to stamp the site-B marker token.
    size : int
        Width and height in pixels.
    lesion_amplitude : float
        Peak brightness the nodule adds (noise is ``noise`` sigma).
    noise : float
        Standard deviation of the additive Gaussian noise.

    Returns
    -------
    Phantom
    """
    img, lungs = _anatomy(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    seg = np.zeros((size, size), np.uint8)
    for cy, cx, ry, rx in lungs:
        seg[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = 1
    lesion_box = None
    if nodule:
        amp = lesion_amplitude * rng.uniform(0.85, 1.15)
        blob, lesion_box = _nodule(rng, size, lungs, amp)
        img += blob
        seg[blob > 0.5 * float(blob.max())] = 2
    img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    marker_box = _marker(rng, size, img) if marker else None
    pixels = np.clip(img, 0.0, 1.0).astype(np.float32)
    return Phantom(
        pixels=pixels,
        label=LABELS[int(nodule)],
        site=MARKER_SITE if marker else PLAIN_SITE,
        lesion_box=lesion_box,
        marker_box=marker_box,
        segmentation=seg,
    )


def phantom_set(
    n: int,
    seed: int,
    *,
    marker_given_nodule: float = CORRELATED,
    size: int = 128,
    lesion_amplitude: float = 0.14,
    noise: float = 0.05,
) -> Iterator[Phantom]:
    """Yield ``n`` phantoms, half ``nodule`` on average, fully determined by ``seed``.

    Parameters
    ----------
    n : int
        Number of phantoms.
    seed : int
        Seed; the first ``k`` phantoms do not depend on ``n``.
    marker_given_nodule : float
        P(marker | nodule); P(marker | normal) is ``1 - marker_given_nodule``. 0.95 is the
        correlated set, 0.05 the counterfactual one, 0.5 makes the marker independent of the label.
    size, lesion_amplitude, noise
        Passed to :func:`make_phantom`.

    Yields
    ------
    Phantom
    """
    # The marker decision uses a golden-ratio sequence rather than independent draws, so
    # every set carries close to the stated share of marker/label conflicts; a 400-image test
    # set then measures the model rather than the luck of the draw.
    offset = float(np.random.default_rng([seed, 2**31]).random())
    seen = [0, 0]  # images drawn so far per class: each class walks its own sequence
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        nodule = bool(rng.random() < 0.5)
        p = marker_given_nodule if nodule else 1.0 - marker_given_nodule
        marker = bool((offset + seen[nodule] * _GOLDEN) % 1.0 < p)
        seen[nodule] += 1
        yield make_phantom(
            rng,
            nodule=nodule,
            marker=marker,
            size=size,
            lesion_amplitude=lesion_amplitude,
            noise=noise,
        )
