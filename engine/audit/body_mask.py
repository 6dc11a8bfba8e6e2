"""The body in an image, found from the image alone, and the saliency that falls outside it.

Borders, hospital markers, rulers and burnt-in text sit outside the patient's body, so the
share of saliency outside the body is a shortcut measure that needs no region drawn by
anyone. The body is the largest bright connected region after Otsu's threshold, with its
holes filled (dark lungs inside the chest stay part of it), computed on a copy of the image
at most :data:`MASK_SIDE` pixels a side: enough for the body's outline, and cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Longest side of the image the body is found on (the mask has this resolution).
MASK_SIDE = 128
#: Gaussian smoothing (pixels of the reduced image) before thresholding: noise makes no islands.
SMOOTH_SIGMA = 1.0


def body_mask(image: np.ndarray, max_side: int = MASK_SIDE) -> np.ndarray | None:
    """Return the body as a boolean mask, at most ``max_side`` pixels a side.

    Parameters
    ----------
    image : np.ndarray
        (H, W) grey or (H, W, 3) colour, bright meaning dense (as
        :meth:`engine.studies.image.Image.model_input` gives it).
    max_side : int
        The image is reduced (area averaging) so that its longest side is at most this.

    Returns
    -------
    np.ndarray or None
        Boolean (h, w) mask, True inside the body; None when the image is flat (no body can
        be told from the background).
    """
    from scipy import ndimage
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label
    from skimage.transform import resize

    grey = np.asarray(image, dtype=np.float32)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    grey = np.nan_to_num(grey)
    h, w = grey.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        grey = resize(grey, (max(1, round(h * scale)), max(1, round(w * scale))),
                      anti_aliasing=True, preserve_range=True)
    smooth = gaussian(grey, sigma=SMOOTH_SIGMA, preserve_range=True)
    if not float(smooth.max()) > float(smooth.min()):
        return None
    regions = label(smooth > threshold_otsu(smooth))
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    if not sizes.any():
        return None
    return ndimage.binary_fill_holes(regions == int(sizes.argmax()))


def outside_shares(heat: torch.Tensor, masks: Sequence[np.ndarray | None]) -> list[float | None]:
    """Return, per map, the share of its non-negative mass that lies outside the body.

    Parameters
    ----------
    heat : torch.Tensor
        (N, H, W) maps in image geometry; negatives and NaN carry no mass.
    masks : sequence of np.ndarray or None
        Per map, its image's :func:`body_mask` (any resolution: it is brought to (H, W) by
        nearest neighbour), or None.

    Returns
    -------
    list of float or None
        Shares in [0, 1]; None where there is no mask or the map has no positive mass.
    """
    mass = torch.nan_to_num(heat.double(), nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)
    out: list[float | None] = []
    for i, mask in enumerate(masks):
        total = float(mass[i].sum())
        if mask is None or not total > 0.0:
            out.append(None)
            continue
        inside = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        if tuple(inside.shape[2:]) != tuple(mass.shape[1:]):
            inside = F.interpolate(inside, size=tuple(mass.shape[1:]), mode="nearest")
        outside = float((mass[i] * (1.0 - inside[0, 0].double())).sum())
        out.append(min(1.0, max(0.0, outside / total)))
    return out
