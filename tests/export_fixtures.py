"""Test inputs for exports: a DICOM with fake identifiers and a small explanation result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engine.explain.session import ExplainResult, MapResult

#: Fake identifiers written into the test DICOM; no export may contain them unless asked.
FAKE = {
    "PatientName": "TESTCASE^JANE^QUINCY",
    "PatientID": "LUCIDA-ID-424242",
    "PatientBirthDate": "19700203",
    "AccessionNumber": "ACC98765432",
    "InstitutionName": "Example General Hospital",
    "ReferringPhysicianName": "REFERRER^ROBERT",
    "OperatorsName": "OPERATOR^OLIVIA",
}


def write_fake_dicom(path: Path, size: int = 64) -> Path:
    """Write a small CR image with fake patient identifiers and a private tag."""
    yy, xx = np.mgrid[0:size, 0:size]
    blob = np.exp(-((yy - size * 0.4) ** 2 + (xx - size * 0.6) ** 2) / (size * 2.0))
    pixels = (800 + 1500 * blob + 200 * np.sin(xx / 5.0)).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for key, value in FAKE.items():
        setattr(ds, key, value)
    ds.PatientSex = "F"
    ds.StudyDate = "20240115"
    ds.StudyTime = "101500"
    ds.StudyID = "STUDY77"
    ds.Modality = "CR"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 1500
    ds.WindowWidth = 2000
    ds.PixelData = pixels.tobytes()
    block = ds.private_block(0x0011, "LUCIDA TEST", create=True)
    block.add_new(0x01, "LO", FAKE["PatientName"])
    ds.save_as(path, enforce_file_format=True)
    return path


def fake_result(image, methods=("gradcam",), layers=("features.3",)) -> ExplainResult:
    """A constructed explanation result with Gaussian maps (no model run, so tests stay fast)."""
    rows, cols = image.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    maps = {}
    for i, (method, layer) in enumerate((m, lay) for m in methods for lay in layers):
        heat = np.exp(-((yy - rows * 0.4) ** 2 + (xx - cols * 0.6) ** 2) / (rows * (3 + i)))
        heat = (heat / heat.max()).astype(np.float32)
        maps[method, layer] = MapResult(
            method=method, layer=layer, raw=heat[::8, ::8], heatmap=heat, warning=None
        )
    return ExplainResult(
        model={
            "name": "demo",
            "sha256": "5f" * 32,
            "files": {"card.toml": "a1" * 32, "weights.safetensors": "5f" * 32},
            "classes": ["normal", "nodule"],
            "output": "softmax",
            "kind": "module",
            "card": "resources/models/demo/card.toml",
        },
        image_path=str(image.path),
        frame=0,
        classes=["normal", "nodule"],
        scores=[0.1875, 0.8125],
        target=1,
        target_name="nodule",
        maps=maps,
        params={"gradcam": {}},
        timings_ms={"load": 12.5, "forward": 3.1, "backward": 2.0, "maps": 1.2},
        warnings=[],
    )
