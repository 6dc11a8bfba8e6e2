"""What stands in for absent input: black, a blurred copy of the image, or uniform noise.

Integrated Gradients integrates from a baseline to the image; LIME and KernelSHAP show the
superpixels a sample leaves out as the baseline's pixels. All three baselines are defined in
pixel space ([0, 1] pixel values, before the model card's mean/std), so "black" means a black
image whatever the normalisation, and are returned in the model's normalised space.

- ``black``: every pixel value 0.
- ``blur``: the image under a Gaussian blur of sigma 5% of its longest side (Fong and Vedaldi
  2017 blur the image to remove evidence; Sturmfels et al. 2020 compare it with the others).
- ``uniform``: independent uniform noise in [0, 1] per pixel, from a seeded generator.

This module holds no explainer; the attribution plugins share it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.explain.api import Param

#: The baselines every attribution method offers, in the order the schema lists them.
BASELINES = ("black", "blur", "uniform")
#: Gaussian sigma of the ``blur`` baseline, as a share of the input's longest side.
BLUR_SIGMA = 0.05

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def baseline_param(default: str = "black") -> Param:
    """Return the ``baseline`` parameter shared by the attribution methods."""
    return Param("baseline", "choice", default, choices=BASELINES,
                 help="what absent input is: black pixels, a blurred image or uniform noise")


def gaussian_blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (N, C, *spatial) pixels with a separable Gaussian, reflecting at the borders.

    Parameters
    ----------
    pixels : torch.Tensor
        Images (2D) or volumes (3D), any channel count.
    sigma : float
        Standard deviation in pixels; the kernel is cut at 3 sigma (and at the image size).
    """
    n_spatial = pixels.dim() - 2
    out = pixels
    channels = pixels.shape[1]
    for axis in range(n_spatial):
        size = pixels.shape[2 + axis]
        radius = min(max(1, math.ceil(3 * sigma)), size - 1)
        if radius < 1:
            continue
        offsets = torch.arange(-radius, radius + 1, dtype=pixels.dtype, device=pixels.device)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = kernel / kernel.sum()
        shape = [1, 1] + [1] * n_spatial
        shape[2 + axis] = kernel.numel()
        pad = [0, 0] * n_spatial
        # F.pad lists the last axis first.
        pad[2 * (n_spatial - 1 - axis)] = pad[2 * (n_spatial - 1 - axis) + 1] = radius
        padded = F.pad(out, pad, mode="reflect")
        out = _CONV[n_spatial](padded, kernel.reshape(shape).expand(channels, *shape[1:]),
                               groups=channels)
    return out


def baseline_input(capture, kind: str, seed: int = 0,
                   inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Return the baseline of each input, in the model's normalised space.

    Parameters
    ----------
    capture : Capture
        Supplies the inputs and the pixel <-> normalised mapping.
    kind : str
        One of :data:`BASELINES`.
    seed : int
        Seed of the ``uniform`` noise.
    inputs : torch.Tensor, optional
        (N, C, *spatial) normalised inputs; defaults to ``capture.input``.

    Returns
    -------
    torch.Tensor
        Shaped like ``inputs``.
    """
    x = capture.input if inputs is None else inputs
    if kind == "black":
        return capture.from_pixels(0.0).to(x).expand_as(x).clone()
    if kind == "blur":
        pixels = capture.to_pixels(x)
        sigma = BLUR_SIGMA * max(x.shape[2:])
        return capture.from_pixels(gaussian_blur(pixels, sigma))
    if kind == "uniform":
        gen = torch.Generator().manual_seed(int(seed))
        # One draw shared by every input, so that a map does not depend on its batch.
        noise = torch.rand((1, *x.shape[1:]), generator=gen, dtype=x.dtype).to(x.device)
        return capture.from_pixels(noise).expand_as(x).clone()
    raise ValueError(f"unknown baseline {kind!r}")
