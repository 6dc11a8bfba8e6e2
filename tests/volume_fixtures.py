"""Small DICOM series with chosen geometry, for the volume tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engine.studies.volume import Volume

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _base(sop_class: str, series_uid: str, rows: int, cols: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.3.5"
    ds.Modality = "CT"
    ds.PatientID = "VOL"
    ds.SeriesNumber = 7
    ds.SeriesDescription = "TEST SERIES"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    return ds


def write_series(folder: Path, hu: np.ndarray, positions, *, orientation=AXIAL,
                 spacing=(0.7, 0.8), rescales=None, names=None, sizes=None,
                 orientations=None) -> list[Path]:
    """Write one CT file per slice of ``hu`` (slices, rows, cols) at the given positions.

    ``rescales`` gives (slope, intercept) per slice (stored values are chosen so the HU come
    out right); ``names`` the file names (default: reversed slice order); ``sizes`` and
    ``orientations`` override one slice's size or orientation to make bad series.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    paths = []
    for k, position in enumerate(positions):
        values = hu[k]
        if sizes and k in sizes:
            values = np.zeros(sizes[k], np.float32)
        ds = _base(CT, series_uid, *values.shape)
        slope, intercept = rescales[k] if rescales else (1.0, -1024.0)
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        ds.ImageOrientationPatient = list((orientations or {}).get(k, orientation))
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.PixelSpacing = [f"{spacing[0]:g}", f"{spacing[1]:g}"]
        ds.SliceThickness = "99"  # wrong on purpose: spacing must come from the positions
        ds.InstanceNumber = k + 1
        stored = np.round((values - intercept) / slope).astype(np.int16)
        ds.PixelData = stored.tobytes()
        name = names[k] if names else f"slice_{len(positions) - k:03d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        paths.append(folder / name)
    return paths


def axial_positions(n: int, step: float = 2.5, origin=(-10.0, -20.0, -50.0)) -> list:
    """Positions of ``n`` axial slices ``step`` mm apart, lowest first."""
    return [(origin[0], origin[1], origin[2] + k * step) for k in range(n)]


def ramp(n: int, rows: int = 6, cols: int = 5) -> np.ndarray:
    """HU that say where they are: 100 * slice + 10 * row + column - 500."""
    k, j, i = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    return (100.0 * k + 10.0 * j + i - 500.0).astype(np.float32)


def write_enhanced(path: Path, hu: np.ndarray, positions, frame_order, *, orientation=AXIAL,
                   spacing=(0.7, 0.8), rescales=None) -> Path:
    """Write one Enhanced CT object whose frame ``f`` holds slice ``frame_order[f]``."""
    s, rows, cols = hu.shape
    ds = _base(ENHANCED_CT, generate_uid(), rows, cols)
    ds.NumberOfFrames = s
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{spacing[0]:g}", f"{spacing[1]:g}"]
    measures.SliceThickness = "99"
    shared.PixelMeasuresSequence = Sequence([measures])
    plane = Dataset()
    plane.ImageOrientationPatient = list(orientation)
    shared.PlaneOrientationSequence = Sequence([plane])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames, stored = [], []
    for f, k in enumerate(frame_order):
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [f"{v:.4f}" for v in positions[k]]
        item.PlanePositionSequence = Sequence([pos])
        slope, intercept = rescales[f] if rescales else (1.0, -1024.0)
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        transform.RescaleType = "HU"
        item.PixelValueTransformationSequence = Sequence([transform])
        frames.append(item)
        stored.append(np.round((hu[k] - intercept) / slope).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack(stored).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def memory_volume(values: np.ndarray, spacing=(2.5, 0.7, 0.7), flip_rows: bool = False) -> Volume:
    """An in-memory axial CT of ``values`` at ``spacing`` (dz, dy, dx) mm, rows maybe flipped."""
    dz, dy, dx = spacing
    r = values.shape[1]
    affine = np.diag([dx, dy, dz, 1.0])
    affine[:3, 3] = (-20.0, -30.0, 100.0)
    if flip_rows:
        # Rows run anterior (-y): the same patient stored upside down.
        affine[1, 1] = -dy
        affine[1, 3] = -30.0 + (r - 1) * dy
        values = values[:, ::-1]
    return Volume(path="mem", name="mem", modality="CT", affine=affine, shape=values.shape,
                  voxels=np.ascontiguousarray(values))


def index_ramp(shape=(6, 10, 8)) -> np.ndarray:
    """Values that say where they are: 100 * slice + 10 * row + column."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (100.0 * k + 10.0 * j + i).astype(np.float32)
