"""Open and render a 2000×2000 16-bit MONOCHROME1 radiograph, against plain pydicom.

Prints Lucida's open+render time (header, decode, window, inversion, 8-bit RGB) as a ratio to
pydicom's decode plus ``apply_voi_lut`` measured in the same run (goal ≤ 1.2×), and the time of a
window change on the already opened image (goal ≤ 20 ms).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smoke import sized  # noqa: E402

SIZE = sized(2000, 256)
REPEATS = sized(5, 1)
WINDOWS = sized(20, 3)


def write_radiograph(path: Path, size: int = SIZE) -> None:
    """Write a synthetic 12-bit-in-16 MONOCHROME1 CR image with a window to `path`."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = 2600 - 1800 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.08)
    pixels = (body + rng.normal(0, 40, body.shape)).clip(0, 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "BENCH"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Run the benchmark and print the ratios."""
    import pydicom
    from pydicom.pixels import apply_voi_lut

    from engine.studies.image import open_image

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "radiograph.dcm"
        write_radiograph(path)

        def peer() -> np.ndarray:
            ds = pydicom.dcmread(path)
            return apply_voi_lut(ds.pixel_array, ds)

        def lucida() -> np.ndarray:
            return open_image(path).render()

        peer(), lucida()  # warm the file cache and imports for both
        t_peer = _best(peer)
        t_lucida = _best(lucida)
        image = open_image(path)
        image.render()
        windows = [(1500.0 + 40 * i, 1000.0 + 25 * i) for i in range(WINDOWS)]
        changes = []
        for window in windows:
            start = time.perf_counter()
            image.render(window=window)
            changes.append(time.perf_counter() - start)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"   radiograph {SIZE}x{SIZE} 16-bit MONOCHROME1, best of {REPEATS}; "
        f"{os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(f"   pydicom decode+apply_voi_lut     {t_peer * 1000:8.1f} ms")
    print(f"   lucida open+render (8-bit RGB)  {t_lucida * 1000:8.1f} ms")
    print(f"   ratio lucida/pydicom             {t_lucida / t_peer:8.2f}x   (goal <= 1.2x)")
    print(
        f"   window change                   {statistics.median(changes) * 1000:8.1f} ms median,"
        f" {min(changes) * 1000:.1f} ms best   (goal <= 20 ms)"
    )


if __name__ == "__main__":
    main()
