"""Turning an image into model input, and a model-input map back into image geometry.

The model card states the input size, channels, mean and std, how a DICOM image is windowed
(``default`` | ``minmax`` | ``[center, width]``) and whether the image is stretched (``resize``)
or fitted with padding (``letterbox``). Mismatches between image and model are adapted in the
documented ways: grey images are repeated to three channels, colour images become grey by their
luminance for one-channel models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.errors import ModelError

#: ITU-R BT.601 luma weights, used when a colour image meets a one-channel model.
LUMA = (0.299, 0.587, 0.114)
RESIZE_MODES = ("resize", "letterbox")


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
        ``"resize"`` stretches to ``size``; ``"letterbox"`` keeps the aspect ratio and pads.
    """

    size: tuple[int, int]
    channels: int
    mean: tuple
    std: tuple
    window: str | tuple = "default"
    resize: str = "resize"


@dataclass(frozen=True)
class Placement:
    """Where the image content sits inside the model input: ``(top, left, height, width)``."""

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
    if spec.resize != "letterbox":
        return Placement(0, 0, th, tw)
    h, w = image_shape
    scale = min(th / h, tw / w)
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    return Placement((th - ch) // 2, (tw - cw) // 2, ch, cw)


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
        # Antialiasing keeps thin structures from aliasing when large images shrink.
        x = F.interpolate(
            x, size=(place.height, place.width), mode="bilinear", align_corners=False,
            antialias=True,
        )
    if spec.resize == "letterbox" and (place.height, place.width) != tuple(spec.size):
        canvas = torch.zeros((1, x.shape[1], *spec.size), dtype=x.dtype)
        rows = slice(place.top, place.top + place.height)
        cols = slice(place.left, place.left + place.width)
        canvas[:, :, rows, cols] = x
        x = canvas
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


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
        float32 (N, rows, cols), bilinear; letterbox padding is cut away first.
    """
    t = raw.float()[:, None]
    if spec.resize == "letterbox":
        place = placement(spec, image_shape)
        t = F.interpolate(t, size=tuple(spec.size), mode="bilinear", align_corners=False)
        t = t[:, :, place.top : place.top + place.height, place.left : place.left + place.width]
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
            f"[input] resize = {spec.resize!r} is unknown", fix="use 'resize' or 'letterbox'"
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
    )
