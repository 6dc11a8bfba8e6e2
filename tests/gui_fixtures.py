"""Small inputs for the GUI tests: real files opened by the engine, made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from engine.studies.image import open_image

PYDICOM_FILES = Path(__import__("pydicom").__file__).parent / "data" / "test_files"


def raster_image(folder: Path, size: tuple[int, int] = (48, 64)):
    """Open a grey PNG with a diagonal gradient (so windowing visibly changes it)."""
    rows, cols = size
    grid = np.add.outer(np.arange(rows), np.arange(cols)).astype(np.float32)
    pixels = (255 * grid / grid.max()).astype(np.uint8)
    path = folder / "gradient.png"
    PILImage.fromarray(pixels).save(path)
    return open_image(path)


def ct_image():
    """Open pydicom's bundled CT slice (signed, rescaled to HU)."""
    return open_image(PYDICOM_FILES / "CT_small.dcm")


def multiframe_image():
    """Open pydicom's bundled multi-frame grey RT dose."""
    return open_image(PYDICOM_FILES / "rtdose.dcm")


def ramp_heatmap(shape: tuple[int, int]) -> np.ndarray:
    """Return a left-to-right heat ramp from 0 to 1 in image geometry."""
    rows, cols = shape
    return np.tile(np.linspace(0.0, 1.0, cols, dtype=np.float32), (rows, 1))
