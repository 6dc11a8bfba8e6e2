"""Writing demo phantoms as DICOM and PNG files with a ground-truth manifest.

DICOM files are CR or DX, 12 bits stored in 16, with window presets, PixelSpacing, fake patient
identifiers (``DEMO^PATIENT^0001``, PatientID, birth date, accession number, an institution per
site) so de-identification can be tested, and every third one MONOCHROME1. UIDs are derived from
the seed, so the same arguments write the same files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import UsageError
from engine.demo.phantoms import CORRELATED, Phantom, phantom_set

MANIFEST_COLUMNS = ("path", "label", "site", "lesion_box", "marker_box")
SOP_CLASSES = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
}
INSTITUTIONS = {"A": "LUCIDA DEMO HOSPITAL A", "B": "LUCIDA DEMO HOSPITAL B"}
#: Physical size of one pixel for a 128-pixel phantom (a 36 cm field of view).
FIELD_MM = 358.4
MAX_STORED = 4095  # 12 bits


def box_text(box) -> str:
    """Format a box as ``x0 y0 x1 y1`` (empty for None)."""
    return "" if box is None else " ".join(str(int(v)) for v in box)


def stored_values(pixels: np.ndarray) -> np.ndarray:
    """Quantise [0, 1] pixels to 12-bit stored values (MONOCHROME2)."""
    return np.round(np.clip(pixels, 0, 1) * MAX_STORED).astype(np.uint16)


def phantom_dataset(ph: Phantom, index: int, seed: int, *, modality: str, mono1: bool) -> Dataset:
    """Build a DICOM dataset (with file meta) holding one phantom.

    Parameters
    ----------
    ph : Phantom
        The image and its ground truth.
    index : int
        Image number; used for the fake identifiers.
    seed : int
        Data seed; with ``index`` it fixes the UIDs.
    modality : str
        ``"CR"`` or ``"DX"``.
    mono1 : bool
        Store inverted (MONOCHROME1: bright means low values).

    Returns
    -------
    pydicom.dataset.Dataset
    """
    values = stored_values(ph.pixels)
    uid = lambda *parts: generate_uid(entropy_srcs=["lucida-demo", str(seed), str(index), *parts])  # noqa: E731
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.Modality = modality
    n = index + 1
    ds.PatientName = f"DEMO^PATIENT^{n:04d}"
    ds.PatientID = f"DEMO{seed:03d}{n:05d}"
    ds.PatientBirthDate = f"{1940 + (index * 7) % 50}{1 + index % 12:02d}{1 + index % 28:02d}"
    ds.PatientSex = "FM"[index % 2]
    ds.AccessionNumber = f"ACC{seed:03d}{n:05d}"
    ds.InstitutionName = INSTITUTIONS[ph.site]
    ds.ReferringPhysicianName = "DEMO^REFERRER"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
    ds.StudyID = f"{n}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.StudyDescription = "Synthetic chest phantom"
    ds.SeriesDescription = f"PA chest ({ph.label})"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Manufacturer = "Lucida demo generator"
    rows, cols = values.shape
    spacing = f"{FIELD_MM / cols:.4f}"
    ds.PixelSpacing = [spacing, spacing]
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    # The first window spans the full 12-bit range: the demo models were trained on it.
    centers, widths = [2048, round(0.32 * MAX_STORED)], [4096, round(0.45 * MAX_STORED)]
    if mono1:
        values = (MAX_STORED - values).astype(np.uint16)
        centers[1] = MAX_STORED - centers[1]
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = centers, widths
    ds.WindowCenterWidthExplanation = ["FULL", "LUNG"]
    ds.PixelData = values.tobytes()
    return ds


def write_manifest(out: Path, columns: tuple[str, ...], rows: list[tuple]) -> Path:
    """Write a demo set's ground truth as ``manifest.csv`` in ``out``.

    Parameters
    ----------
    out : Path
        The demo set's folder.
    columns : tuple of str
        The header row.
    rows : list of tuple
        One row per written case, in the order of ``columns``.

    Returns
    -------
    Path
        The manifest's path.
    """
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
    return manifest


def write_demo_set(
    out: Path,
    n: int,
    seed: int,
    *,
    marker_given_nodule: float = CORRELATED,
    fmt: str = "mixed",
    size: int = 128,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Write ``n`` phantoms and ``manifest.csv`` into ``out``.

    Parameters
    ----------
    out : Path
        Output folder (created).
    n, seed : int
        Number of images and data seed.
    marker_given_nodule : float
        P(marker | nodule); see :func:`engine.demo.phantoms.phantom_set`.
    fmt : str
        ``mixed`` (every fourth image PNG, the rest DICOM), ``dicom`` or ``png``.
    size : int
        Image width and height in pixels.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    Path
        The manifest's path.
    """
    if n < 1 or size < 32:
        raise UsageError(f"cannot make {n} phantoms of {size} × {size} pixels: it takes at "
                         "least 1 phantom of at least 32 × 32 pixels",
                         fix="ask for more phantoms or a larger size")
    if fmt not in ("mixed", "dicom", "png"):
        raise UsageError(f"unknown format {fmt!r}", fix="use mixed, dicom or png")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    phantoms = phantom_set(n, seed, marker_given_nodule=marker_given_nodule, size=size)
    for i, ph in enumerate(phantoms):
        if cancel is not None:
            cancel.check()
        png = fmt == "png" or (fmt == "mixed" and i % 4 == 3)
        name = f"phantom_{i + 1:04d}.{'png' if png else 'dcm'}"
        if png:
            PILImage.fromarray(np.round(ph.pixels * 255).astype(np.uint8), mode="L").save(
                out / name
            )
        else:
            ds = phantom_dataset(ph, i, seed, modality="CR" if i % 2 == 0 else "DX",
                                 mono1=i % 3 == 2)
            ds.save_as(out / name, enforce_file_format=True)
        rows.append((name, ph.label, ph.site, box_text(ph.lesion_box), box_text(ph.marker_box)))
        if progress is not None:
            progress((i + 1) / n, name)
    return write_manifest(out, MANIFEST_COLUMNS, rows)
