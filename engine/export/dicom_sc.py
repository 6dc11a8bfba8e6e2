"""DICOM Secondary Capture of an annotated figure, ready for a PACS or any viewer."""

from __future__ import annotations

import datetime as _dt
import io
import secrets

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from engine.core.versions import app_version
from engine.export.deid import deidentify_dataset, mark_deidentified

#: Secondary Capture Image Storage.
SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"

_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_STUDY = (
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)


def secondary_capture(
    rgb: np.ndarray,
    source: Dataset | None,
    *,
    keep_identifiers: bool,
    derivation: str,
    series_description: str = "Lucida explanation",
) -> bytes:
    """Build a Secondary Capture Image Storage file from an RGB figure.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 figure, text burned in.
    source : pydicom.Dataset, optional
        The explained image's data set (None for raster images): its patient and study
        attributes are carried over, de-identified unless ``keep_identifiers``.
    keep_identifiers : bool
        Keep patient identifiers and reference the source image in Source Image Sequence.
        Otherwise the patient and study attributes go through the PS3.15 Annex E basic profile
        and the source is not referenced (its UIDs would link back to the patient).
    derivation : str
        Derivation Description: what the figure shows and how it was made.
    series_description : str
        Series Description.

    Returns
    -------
    bytes
        A DICOM Part 10 file, Explicit VR Little Endian.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    # Only the header is carried over; the source pixels are not copied.
    src = Dataset()
    for elem in source if source is not None else ():
        if elem.tag.group != 0x7FE0:
            src.add(elem)
    if not keep_identifiers:
        src = deidentify_dataset(src)
    now = _dt.datetime.now()
    sop_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"LUCIDA_{app_version()}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SC_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # Patient and General Study: type 2 attributes must be present, even if empty.
    for keyword in _PATIENT + _STUDY:
        setattr(ds, keyword, src.get(keyword, ""))
    if not keep_identifiers:
        # Annex E allows a dummy value; a PACS may refuse an empty Patient ID. The token is
        # random per export so it links to nothing.
        ds.PatientName = "Anonymous"
        ds.PatientID = f"ANON-{secrets.token_hex(6).upper()}"
    if src.get("StudyDescription"):
        ds.StudyDescription = src.StudyDescription
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    # General Series: Laterality is type 2C (paired body parts); empty when unknown.
    ds.Laterality = src.get("Laterality", "")
    ds.SeriesNumber = 9001
    ds.SeriesDescription = series_description
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.Manufacturer = "Lucida"
    ds.SoftwareVersions = app_version()
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    ds.DerivationDescription = derivation[:1024]
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"

    if keep_identifiers and source is not None and "SOPInstanceUID" in source:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.get("SOPClassUID", "")
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ds.SourceImageSequence = [ref]
    if not keep_identifiers:
        mark_deidentified(ds)

    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(rgb.shape[0]), int(rgb.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = rgb.tobytes()

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
