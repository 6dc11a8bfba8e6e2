"""PNG, JPEG, TIFF and BMP files through Pillow: 8/16-bit grey, RGB, RGBA and palette.

Grey pictures stay grey (so the window tools and the model-input pipeline treat them like a
radiograph); palettes whose entries are all grey count as grey. Transparent pixels are
composited over black, the viewer's background.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from engine.core.errors import StudyError
from engine.core.reading import CancellableFile
from engine.studies.decode_errors import reraise_fatal

#: File signatures of the raster formats Pillow reads for Lucida.
_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"MM\x00+",
    b"BM",
    b"GIF87a",
    b"GIF89a",
)
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_FIX = "the file is truncated or corrupt; save or export it again"


def is_raster(head: bytes) -> bool:
    """Whether the first bytes of a file are a PNG, JPEG, TIFF, BMP or GIF signature."""
    return head.startswith(_MAGIC)


def open_raster(path: Path, image_class: type, decode: bool = False) -> Any:
    """Read a raster file's header and return an ``engine.studies.image.Image`` for it.

    Parameters
    ----------
    path : Path
        The file.
    image_class : type
        :class:`engine.studies.image.Image`, passed in to keep the modules free of an import cycle.
    decode : bool
        Also decode the first frame while the file is open, and hand it to the image's cache;
        a caller that needs the pixels at once then opens the file through Pillow only once.

    Raises
    ------
    StudyError
        Pillow cannot identify or read the file.
    """
    with _pillow_errors(path, "cannot be read as an image"), _open(path) as im:
        grey = _is_grey(im)
        bits = 16 if im.mode.startswith("I;16") or im.mode in ("I", "F") else 8
        rotated = _rotated(im)
        width, height = ImageOps.exif_transpose(im).size if rotated else im.size
        details = {
            "format": im.format or "",
            "mode": im.mode,
            "bits": bits,
            "transfer_syntax": None,
        }
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        first = _decode_open(im, path, 0, not grey, rotated) if decode else None
    image = image_class(
        path=path,
        kind="raster",
        n_frames=n_frames,
        shape=(height, width),
        is_color=not grey,
        photometric="MONOCHROME2" if grey else "RGB",
        modality="OT",
        dataset=None,
        details=details,
    )
    if first is not None:
        image._seed_frame(0, first)
    return image


def read_frame(path: Path, frame: int, is_color: bool) -> np.ndarray:
    """Decode one frame (page) of a raster file.

    Returns
    -------
    numpy.ndarray
        Grey: (H, W) uint8, uint16, int32 or float32 as stored. Colour: uint8 (H, W, 3).
    """
    with _pillow_errors(path, f"frame {frame} cannot be decoded"), _open(path) as im:
        return _decode_open(im, path, frame, is_color, _rotated(im))


def _decode_open(im, path: Path, frame: int, is_color: bool, rotated: bool) -> np.ndarray:
    """Decode one frame of an open Pillow image (see :func:`read_frame`)."""
    with _pillow_errors(path, f"frame {frame} cannot be decoded"):
        if frame:
            im.seek(frame)
        im.load()
        im = ImageOps.exif_transpose(im) if rotated else im
        return _colour(im) if is_color else _grey(im)


@contextmanager
def _pillow_errors(path: Path, what: str):
    """Turn anything Pillow raises on a corrupt file into a one-line :class:`StudyError`."""
    try:
        yield
    except StudyError:
        raise
    except BaseException as exc:  # noqa: BLE001 - Pillow raises many types on corrupt files
        reraise_fatal(exc)
        raise StudyError(f"{what} ({exc})", path=path, fix=_FIX) from None


@contextmanager
def _open(path: Path):
    """Open with Pillow, its warnings about odd metadata silenced and oversized images refused.

    Pillow reads through a :class:`CancellableFile`, so cancelling the work stops the read.
    """
    with warnings.catch_warnings(), CancellableFile(path) as fh:
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            im = PILImage.open(fh)
        except (UnidentifiedImageError, PILImage.DecompressionBombWarning) as exc:
            raise StudyError(f"cannot be read as an image ({exc})", path=path, fix=_FIX) from None
        with im:
            yield im


def _rotated(im) -> bool:
    try:
        return im.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # noqa: BLE001 - a broken EXIF block just means no rotation
        return False


def _is_grey(im) -> bool:
    if im.mode in _GREY_MODES:
        return True
    if im.mode in ("P", "PA"):
        palette = np.asarray(im.getpalette() or [], dtype=np.int32)
        palette = palette[: palette.size // 3 * 3].reshape(-1, 3)
        return bool(palette.size) and bool(
            np.all(palette[:, 0] == palette[:, 1]) and np.all(palette[:, 1] == palette[:, 2])
        )
    return False


def _has_alpha(im) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def _grey(im) -> np.ndarray:
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        arr = np.asarray(im)
        if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0 and arr.max() <= 0xFFFF:
            arr = arr.astype(np.uint16)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        return np.ascontiguousarray(arr)
    if _has_alpha(im):
        la = np.asarray(im.convert("LA"), dtype=np.float32)
        return (la[..., 0] * la[..., 1] / 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(np.asarray(im.convert("L"), dtype=np.uint8))


def _colour(im) -> np.ndarray:
    if _has_alpha(im):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.ascontiguousarray((rgb + 0.5).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
