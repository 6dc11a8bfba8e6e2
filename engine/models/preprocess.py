"""Turning an image into model input, and a model-input map back into image geometry.

The model card states the input size, channels, mean and std, how a DICOM image is windowed
(``default`` | ``minmax`` | ``[center, width]``), whether the image is stretched (``resize``),
fitted with padding (``letterbox``) or scaled to cover and centre-cropped (``crop``, timm's and
Hugging Face's eval transform), the share of the scaled image kept by a centre crop
(``crop_pct``) and the resampling filter (``interpolation``). Mismatches between image and
model are adapted in the documented ways: grey images are repeated to three channels, colour
images become grey by their luminance for one-channel models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.errors import ModelError

#: ITU-R BT.601 luma weights, used when a colour image meets a one-channel model.
LUMA = (0.299, 0.587, 0.114)
RESIZE_MODES = ("resize", "letterbox", "crop")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input.

    Attributes
    ----------
    size : tuple of int
        ``(height, width)`` of the model input.
    channels : int
        1 or 3.
    mean, std : tuple of float
        Per-channel normalisation applied after scaling the image to [0, 1].
    window : str or tuple
        ``"default"`` (the file's first window preset), ``"minmax"`` or ``(center, width)``.
    resize : str
        ``"resize"`` stretches to ``size``; ``"letterbox"`` keeps the aspect ratio and pads;
        ``"crop"`` keeps the aspect ratio, scales the image to cover ``size / crop_pct`` and
        crops the centre ``size``.
    interpolation : str
        ``"bilinear"``, ``"bicubic"`` or ``"nearest"``: the filter that resizes the image.
    crop_pct : float
        In (0, 1]: the share of the scaled image's extent kept by the centre crop. With
        ``resize``, the image is stretched to ``size / crop_pct`` and its centre ``size`` kept
        (timm's ``squash``); 1 keeps everything.
    """

    size: tuple[int, int]
    channels: int
    mean: tuple
    std: tuple
    window: str | tuple = "default"
    resize: str = "resize"
    interpolation: str = "bilinear"
    crop_pct: float = 1.0


@dataclass(frozen=True)
class Placement:
    """Where the image content sits inside the model input: ``(top, left, height, width)``.

    A letterboxed image lies inside the input (padding around it); a centre-cropped one
    covers more than the input, so ``top`` and ``left`` are negative and the part outside
    ``(0, 0, *size)`` is cut away.
    """

    top: int
    left: int
    height: int
    width: int


def placement(spec: InputSpec, image_shape: tuple[int, int]) -> Placement:
    """Return where an image of ``image_shape`` lands inside the model input.

    Parameters
    ----------
    spec : InputSpec
        The model's input spec.
    image_shape : tuple of int
        ``(rows, cols)`` of the image.

    Returns
    -------
    Placement
    """
    th, tw = spec.size
    crop_pct = spec.crop_pct
    if spec.resize == "resize":
        if crop_pct >= 1.0:
            return Placement(0, 0, th, tw)
        # timm's squash: each edge stretched to floor(size / crop_pct), then the centre kept.
        sh, sw = _scaled(th, crop_pct), _scaled(tw, crop_pct)
        return Placement(-round((sh - th) / 2), -round((sw - tw) / 2), sh, sw)
    h, w = image_shape
    if spec.resize == "crop":
        # torchvision's Resize(shortest edge) then CenterCrop, as timm and Hugging Face evaluate.
        sh, sw = _scaled(th, crop_pct), _scaled(tw, crop_pct)
        # The edge that needs the larger scale gets its target exactly; the other is truncated.
        if sh * w >= sw * h:
            ch, cw = sh, max(sw, int(w * sh / h))
        else:
            ch, cw = max(sh, int(h * sw / w)), sw
        return Placement(-round((ch - th) / 2), -round((cw - tw) / 2), ch, cw)
    scale = min(th / h, tw / w)
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    return Placement((th - ch) // 2, (tw - cw) // 2, ch, cw)


def _scaled(edge: int, crop_pct: float) -> int:
    """``floor(edge / crop_pct)``, timm's scale size, robust to a ratio such as 32 / 36 that
    floats store a hair off (32 / (32 / 36) may be 35.999...)."""
    return math.floor(edge / crop_pct + 1e-6)


def _pads(place: Placement, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``F.pad`` amounts (left, right, top, bottom) that put the placed image on the input grid.

    Positive amounts pad (letterbox), negative ones crop (centre crop).
    """
    th, tw = size
    return (place.left, tw - place.left - place.width,
            place.top, th - place.top - place.height)


def _match_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """Return (C, H, W) float32 with the model's channel count."""
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = np.moveaxis(arr[..., :3], -1, 0)
    else:
        raise ModelError(
            f"image array of shape {arr.shape} is neither grey (H,W) nor colour (H,W,3)",
            fix="open a single-frame grey or RGB image",
        )
    if arr.shape[0] == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=0)
    if channels == 1:
        return np.tensordot(np.asarray(LUMA, np.float32), arr, axes=1)[None]
    raise ModelError(
        f"the model expects {channels} input channels; only 1 (grey) or 3 (RGB) are supported",
        fix="set [input] channels = 1 or 3 in the model card",
    )


def prepare_array(arr: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Turn an image scaled to [0, 1] into a normalised model input.

    Parameters
    ----------
    arr : np.ndarray
        float (H, W) grey or (H, W, 3) colour, values in [0, 1].
    spec : InputSpec
        Size, channels, normalisation and resize mode.

    Returns
    -------
    torch.Tensor
        float32 (1, C, H', W') on the CPU.
    """
    chw = _match_channels(np.asarray(arr, dtype=np.float32), spec.channels)
    x = torch.from_numpy(np.ascontiguousarray(chw))[None]
    place = placement(spec, chw.shape[1:])
    if (place.height, place.width) != tuple(x.shape[2:]):
        x = _resample(x, (place.height, place.width), spec.interpolation)
    pads = _pads(place, spec.size)
    if any(pads):
        # Zero (black) padding for a letterbox, a centre crop for negative amounts.
        x = F.pad(x, pads)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def _resample(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """Resize (1, C, H, W) image values in [0, 1] with the spec's filter."""
    if interpolation == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    # Antialiasing keeps thin structures from aliasing when large images shrink (and matches
    # PIL, which timm's and Hugging Face's transforms use).
    x = F.interpolate(x, size=size, mode=interpolation, align_corners=False, antialias=True)
    # Bicubic overshoots at edges; PIL clips to the pixel range, so the values are clipped too.
    return x.clamp_(0.0, 1.0) if interpolation == "bicubic" else x


def maps_to_image(raw: torch.Tensor, spec: InputSpec, image_shape: tuple[int, int]) -> torch.Tensor:
    """Bring (N, h, w) maps that cover the model input back to (N, H, W) image geometry.

    Parameters
    ----------
    raw : torch.Tensor
        (N, h, w) maps spanning the whole model input (any resolution); all images of the batch
        share ``image_shape``.
    spec : InputSpec
        The spec the input was prepared with.
    image_shape : tuple of int
        ``(rows, cols)`` of the image.

    Returns
    -------
    torch.Tensor
        float32 (N, rows, cols), bilinear; letterbox padding is cut away first, and the parts
        of the image that a centre crop cut away get 0 (the model never saw them).
    """
    t = raw.float()[:, None]
    pads = _pads(placement(spec, image_shape), spec.size)
    if spec.resize == "letterbox" or any(pads):
        t = F.interpolate(t, size=tuple(spec.size), mode="bilinear", align_corners=False)
        t = F.pad(t, tuple(-p for p in pads))
    return F.interpolate(t, size=tuple(image_shape), mode="bilinear", align_corners=False)[:, 0]


def map_to_image(heat: np.ndarray, spec: InputSpec, image_shape: tuple[int, int]) -> np.ndarray:
    """Bring one (h, w) map over the model input back to the image's pixel grid.

    The one-map form of :func:`maps_to_image`; returns float32 numpy (rows, cols).
    """
    t = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None]
    return maps_to_image(t, spec, image_shape)[0].numpy().astype(np.float32)


def normalise_spec(spec: InputSpec) -> InputSpec:
    """Check a spec and broadcast one-value mean/std to every channel.

    Raises
    ------
    ModelError
        When a field is out of range; the message names the field.
    """
    if spec.channels not in (1, 3):
        raise ModelError(
            f"[input] channels = {spec.channels} is not supported", fix="use 1 (grey) or 3 (RGB)"
        )
    if len(spec.size) != 2 or min(spec.size) < 1:
        raise ModelError(f"[input] size = {list(spec.size)} is invalid", fix="use [height, width]")
    if spec.resize not in RESIZE_MODES:
        raise ModelError(
            f"[input] resize = {spec.resize!r} is unknown",
            fix="use 'resize', 'letterbox' or 'crop'",
        )
    if spec.interpolation not in INTERPOLATIONS:
        raise ModelError(
            f"[input] interpolation = {spec.interpolation!r} is unknown",
            fix="use 'bilinear', 'bicubic' or 'nearest'",
        )
    if not 0.0 < float(spec.crop_pct) <= 1.0:
        raise ModelError(
            f"[input] crop_pct = {spec.crop_pct} is out of range", fix="use a value in (0, 1]"
        )
    mean, std = tuple(spec.mean), tuple(spec.std)
    if len(mean) == 1:
        mean = mean * spec.channels
    if len(std) == 1:
        std = std * spec.channels
    if len(mean) != spec.channels or len(std) != spec.channels:
        raise ModelError(
            f"[input] mean/std have {len(mean)}/{len(std)} values for {spec.channels} channels",
            fix="give one value per channel, or a single value for all",
        )
    if any(s <= 0 for s in std):
        raise ModelError("[input] std must be positive", fix="check the model card")
    window = spec.window
    if isinstance(window, (list, tuple)):
        if len(window) != 2 or float(window[1]) <= 0:
            raise ModelError(
                f"[input] window = {list(window)} is invalid", fix="use [center, width], width > 0"
            )
        window = (float(window[0]), float(window[1]))
    elif window not in ("default", "minmax"):
        raise ModelError(
            f"[input] window = {window!r} is unknown",
            fix="use 'default', 'minmax' or [center, width]",
        )
    return InputSpec(
        size=(int(spec.size[0]), int(spec.size[1])),
        channels=int(spec.channels),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        window=window,
        resize=spec.resize,
        interpolation=spec.interpolation,
        crop_pct=float(spec.crop_pct),
    )
