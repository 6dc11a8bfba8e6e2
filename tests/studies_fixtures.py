"""Shared helpers for the studies tests: bundled pydicom files and pydicom's reference display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

#: pydicom's bundled test files (never downloaded: only what ships in the installed package).
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def bundled(name: str) -> Path:
    """Path of a test file bundled with pydicom (a declared dependency, so never skipped)."""
    path = TEST_FILES / name
    if not path.is_file():
        pytest.fail(f"{name} is not bundled with this pydicom; install pydicom>=3.0")
    return path


def read(name_or_path: str | Path) -> Dataset:
    """Read a bundled file (by name) or any path with pydicom."""
    path = Path(name_or_path)
    return pydicom.dcmread(path if path.is_file() else bundled(str(name_or_path)), force=True)


def pydicom_window_8bit(values: np.ndarray, ds: Dataset, center, width, function="LINEAR"):
    """What pydicom's ``apply_windowing`` gives for a window, scaled to 0..255.

    pydicom outputs the stored-value range; a very low and a very high sentinel value are
    windowed alongside the data to read that range's ends from pydicom itself.
    """
    probe = Dataset()
    for keyword in ("BitsStored", "PixelRepresentation", "RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            probe[keyword] = ds[keyword]
    probe.PhotometricInterpretation = "MONOCHROME2"
    probe.WindowCenter, probe.WindowWidth, probe.VOILUTFunction = center, width, function
    flat = np.concatenate([np.asarray(values, dtype=np.float64).ravel(), [-1e12, 1e12]])
    out = apply_windowing(flat, probe)
    lo, hi = out[-2], out[-1]
    return ((out[:-2] - lo) / (hi - lo) * 255.0).reshape(np.shape(values))


def pydicom_voi_lut_8bit(stored: np.ndarray, ds: Dataset, index: int = 0) -> np.ndarray:
    """pydicom's modality LUT then VOI LUT item `index`, scaled by the LUT's bit depth."""
    values = apply_modality_lut(stored, ds)
    bits = int(ds.VOILUTSequence[index].LUTDescriptor[2])
    return apply_voi(np.rint(values).astype(np.int64), ds, index=index) * 255.0 / (2**bits - 1)


def assert_close_8bit(actual: np.ndarray, expected: np.ndarray, tol: int = 1) -> None:
    """Every pixel within `tol` grey levels (float rounding differs between float32/64)."""
    diff = np.abs(actual.astype(np.int32) - np.rint(expected).astype(np.int32))
    where = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= tol, f"max difference {diff.max()} at {where}"
