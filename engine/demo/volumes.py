"""Synthetic chest CT volumes in Hounsfield units, written as DICOM series and as NIfTI.

Each volume is an analytic chest, rendered on any axial grid: air, a body of subcutaneous fat
over a muscle wall, two lungs (about -860 HU) with branching vessels (blood, +40 HU) running out
from the hila, a mediastinum and heart, a vertebral body, and in about half the volumes one
solid nodule (a sphere of 8 to 13 mm radius, +30 HU) inside a lung. In cross-section a vessel
running across the slices looks much like a nodule; only its extent along the vessel tells them
apart, which is what a 3-D model has to learn. Edges are rendered smooth over about a voxel (so a
grid does not alias them) and CT-like correlated noise is added.

Series are written the way scanners write them: one file per slice, Instance Number counting from
the head down, file names in no slice order, realistic table positions, and anisotropic voxels
(by default 128 x 128 slices of 2.8 mm pixels every 2.5 mm; ``size=512`` gives the usual
0.7 x 0.7 x 2.5 mm). UIDs derive from the seed, so the same arguments write the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import UsageError
from engine.demo.files import write_manifest

#: Class names of the 3-D demo, in the model's output order.
VOLUME_CLASSES = ("normal", "nodule")
#: CT Image Storage.
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
#: Reconstruction field of view in mm: 128 pixels of 2.8 mm, or 512 of 0.7 mm.
FIELD_MM = 358.4
#: Slice spacing of the written series, in mm.
SLICE_MM = 2.5
RESCALE_INTERCEPT = -1024.0
MANIFEST_COLUMNS = ("series", "nifti", "label", "nodule_box", "nodule_center_lps",
                    "nodule_radius_mm")

AIR, FAT, SOFT, LUNG, BLOOD, BONE, NODULE = -1000.0, -100.0, 45.0, -860.0, 40.0, 450.0, 30.0


@dataclass(frozen=True)
class AxialGrid:
    """An axial voxel grid in patient LPS space: what one written series covers.

    Attributes
    ----------
    shape : tuple of int
        ``(slices, rows, columns)``.
    spacing : tuple of float
        ``(slice, row, column)`` in mm.
    origin : tuple of float
        LPS mm of the centre of voxel ``(0, 0, 0)``: the lowest slice's first pixel.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable LPS coordinates ``(x, y, z)`` of the voxel centres (mm)."""
        s, r, c = self.shape
        dz, dy, dx = self.spacing
        x0, y0, z0 = self.origin
        x = (x0 + dx * np.arange(c, dtype=np.float32))[None, None, :]
        y = (y0 + dy * np.arange(r, dtype=np.float32))[None, :, None]
        z = (z0 + dz * np.arange(s, dtype=np.float32))[:, None, None]
        return x, y, z

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) voxel ``(column, row, slice, 1)`` to LPS mm."""
        dz, dy, dx = self.spacing
        out = np.diag([dx, dy, dz, 1.0])
        out[:3, 3] = self.origin
        return out

    def box(self, center, radius: float) -> tuple[int, int, int, int, int, int]:
        """Voxel box ``(x0, y0, z0, x1, y1, z1)`` (column, row, slice; end-exclusive) whose
        voxel centres lie within ``radius`` of ``center`` along every axis."""
        lo, hi = [], []
        for axis, size in ((0, self.shape[2]), (1, self.shape[1]), (2, self.shape[0])):
            step = self.spacing[2 - axis]
            first = int(np.ceil((center[axis] - radius - self.origin[axis]) / step))
            last = int(np.floor((center[axis] + radius - self.origin[axis]) / step)) + 1
            lo.append(min(max(first, 0), size))
            hi.append(min(max(last, 0), size))
        return (*lo, *hi)


@dataclass(frozen=True)
class Vessel:
    """One straight vessel segment: from ``start`` to ``end`` (LPS mm), radius in mm."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class ChestVolume:
    """One synthetic chest: its anatomy, its label and its nodule (if any)."""

    label: str
    body: tuple[float, float]
    fat_mm: float
    lungs: tuple[tuple[float, float, float, float, float, float], ...]
    heart: tuple[float, float, float, float, float, float]
    vessels: tuple[Vessel, ...]
    nodule_center: tuple[float, float, float] | None
    nodule_radius: float
    noise_hu: float
    seed: int

    def render(self, grid: AxialGrid) -> np.ndarray:
        """HU on ``grid``: float32 ``(slices, rows, columns)``."""
        x, y, z = grid.axes()
        edge = 0.5 * min(grid.spacing[1:])
        ax, ay = self.body
        body_q = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
        body = _inside((1.0 - body_q) * min(ax, ay), edge)
        inner = _inside((1.0 - np.sqrt((x / (ax - self.fat_mm)) ** 2
                                       + (y / (ay - self.fat_mm)) ** 2)) * min(ax, ay), edge)
        hu = AIR + body * (FAT - AIR) + inner * (SOFT - FAT)
        hu = np.broadcast_to(hu, grid.shape).astype(np.float32)
        heart = _ellipsoid(x, y, z, self.heart, edge)
        lung = np.zeros(grid.shape, np.float32)
        for params in self.lungs:
            lung = np.maximum(lung, _ellipsoid(x, y, z, params, edge))
        lung *= 1.0 - heart
        hu = hu + lung * (LUNG - hu)
        vessels = np.zeros(grid.shape, np.float32)
        for vessel in self.vessels:
            _add_tube(vessels, grid, vessel, edge)
        hu = hu + lung * vessels * (BLOOD - hu)
        spine = _inside(18.0 - np.sqrt(x**2 + (y - 0.78 * ay) ** 2), edge)
        hu = hu + np.broadcast_to(spine, grid.shape) * (BONE - hu)
        if self.nodule_center is not None:
            _add_nodule(hu, grid, self.nodule_center, self.nodule_radius, edge)
        rng = np.random.default_rng(self.seed)
        noise = rng.standard_normal(grid.shape, dtype=np.float32) * np.float32(self.noise_hu)
        # Reconstruction kernels correlate CT noise over neighbouring pixels.
        noise = 0.5 * noise + 0.25 * (np.roll(noise, 1, 2) + np.roll(noise, -1, 2))
        noise = 0.5 * noise + 0.25 * (np.roll(noise, 1, 1) + np.roll(noise, -1, 1))
        hu = hu + noise * np.float32(2.0) * (body > 0.5)
        return np.clip(hu, -1024.0, 3071.0).astype(np.float32)


def _inside(signed_mm, edge: float) -> np.ndarray:
    """Smooth 0..1 indicator of a region from a signed distance (positive inside), in mm."""
    return (0.5 * (1.0 + np.tanh(np.asarray(signed_mm, np.float32) / np.float32(edge)))).astype(
        np.float32)


def _ellipsoid(x, y, z, params, edge: float) -> np.ndarray:
    cx, cy, cz, ax, ay, az = params
    q = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2)
    return _inside((1.0 - q) * min(ax, ay, az), edge)


def _slab(grid: AxialGrid, lo, hi) -> tuple[slice, slice, slice]:
    """The index ranges of the voxels whose centres lie within the LPS box [lo, hi]."""
    out = []
    for axis, size in ((2, grid.shape[0]), (1, grid.shape[1]), (0, grid.shape[2])):
        step = grid.spacing[2 - axis]
        a = int(np.floor((lo[axis] - grid.origin[axis]) / step))
        b = int(np.ceil((hi[axis] - grid.origin[axis]) / step)) + 1
        out.append(slice(min(max(a, 0), size), min(max(b, 0), size)))
    return tuple(out)


def _coords(grid: AxialGrid, region) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, z = grid.axes()
    return x[:, :, region[2]], y[:, region[1], :], z[region[0], :, :]


def _add_tube(out: np.ndarray, grid: AxialGrid, vessel: Vessel, edge: float) -> None:
    a, b = np.asarray(vessel.start, np.float32), np.asarray(vessel.end, np.float32)
    pad = vessel.radius + 3 * edge
    region = _slab(grid, np.minimum(a, b) - pad, np.maximum(a, b) + pad)
    if any(s.stop <= s.start for s in region):
        return
    x, y, z = _coords(grid, region)
    d = b - a
    t = ((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / float(d @ d)
    t = np.clip(t, 0.0, 1.0)
    dist = np.sqrt((x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2
                   + (z - a[2] - t * d[2]) ** 2)
    out[region] = np.maximum(out[region], _inside(vessel.radius - dist, edge))


def _add_nodule(hu: np.ndarray, grid: AxialGrid, center, radius: float, edge: float) -> None:
    c = np.asarray(center, np.float32)
    region = _slab(grid, c - radius - 3 * edge, c + radius + 3 * edge)
    x, y, z = _coords(grid, region)
    dist = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
    inside = _inside(radius - dist, edge)
    hu[region] = hu[region] + inside * (NODULE - hu[region])


def _vessel_tree(rng: np.random.Generator, side: float, hilum, lung) -> list[Vessel]:
    """Vessels branching out of one hilum into its lung: a few trunks, each forking twice."""
    vessels: list[Vessel] = []
    cx, cy, cz, ax, ay, az = lung
    for _ in range(int(rng.integers(3, 5))):
        target = np.array([cx + side * rng.uniform(0.2, 0.8) * ax,
                           cy + rng.uniform(-0.7, 0.7) * ay,
                           cz + rng.uniform(-0.8, 0.8) * az])
        start = np.asarray(hilum, float)
        radius = rng.uniform(2.0, 3.0)
        for _depth in range(3):
            end = start + (target - start) * rng.uniform(0.45, 0.65)
            vessels.append(Vessel(tuple(start), tuple(end), radius))
            for _fork in range(2 if _depth < 2 else 1):
                jitter = rng.normal(0, 25.0, 3)
                tip = end + (target - start) * 0.5 + jitter
                vessels.append(Vessel(tuple(end), tuple(tip), radius * 0.6))
            start, radius = end, radius * 0.75
    return vessels


def _inside_lung(point, lung, margin: float) -> bool:
    cx, cy, cz, ax, ay, az = lung
    q = np.sqrt(((point[0] - cx) / (ax - margin)) ** 2 + ((point[1] - cy) / (ay - margin)) ** 2
                + ((point[2] - cz) / (az - margin)) ** 2)
    return bool(q < 1.0)


def chest_volume(rng: np.random.Generator, nodule: bool, z_center: float,
                 seed: int) -> ChestVolume:
    """Draw one chest: body and lung sizes, vessels, and a nodule if ``nodule``."""
    ax, ay = rng.uniform(145, 170), rng.uniform(105, 125)
    lungs, vessels = [], []
    heart = (rng.uniform(10, 25), rng.uniform(-45, -25), z_center - rng.uniform(30, 50),
             rng.uniform(45, 60), rng.uniform(38, 48), rng.uniform(55, 70))
    for side in (-1.0, 1.0):
        lung = (side * rng.uniform(62, 75), rng.uniform(0, 12), z_center + rng.uniform(-10, 10),
                rng.uniform(48, 58), rng.uniform(70, 85), rng.uniform(120, 150))
        lungs.append(lung)
        hilum = (side * rng.uniform(30, 40), rng.uniform(-5, 10), z_center + rng.uniform(-20, 20))
        vessels += _vessel_tree(rng, side, hilum, lung)
    center, radius = None, 0.0
    if nodule:
        radius = float(rng.uniform(8.0, 13.0))
        while center is None:
            lung = lungs[int(rng.integers(0, 2))]
            cx, cy, cz, lax, lay, _ = lung
            point = (cx + rng.uniform(-1, 1) * lax, cy + rng.uniform(-1, 1) * lay,
                     z_center + rng.uniform(-45, 45))
            if _inside_lung(point, lung, radius + 8.0) and not _inside_lung(
                    point, (*heart[:3], heart[3] + radius, heart[4] + radius, heart[5] + radius),
                    0.0):
                center = tuple(float(v) for v in point)
    return ChestVolume(
        label=VOLUME_CLASSES[int(nodule)], body=(ax, ay), fat_mm=rng.uniform(8, 16),
        lungs=tuple(lungs), heart=heart, vessels=tuple(vessels), nodule_center=center,
        nodule_radius=radius, noise_hu=float(rng.uniform(12, 25)), seed=seed,
    )


def demo_grid(rng: np.random.Generator, size: int = 128, slices: int = 64,
              slice_mm: float = SLICE_MM) -> AxialGrid:
    """A scanner-like axial grid: the field of view centred near the body, a table position."""
    pixel = FIELD_MM / size
    shift = rng.uniform(-8, 8, 2)
    z0 = -float(rng.uniform(150, 250))
    origin = (-FIELD_MM / 2 + pixel / 2 + shift[0], -FIELD_MM / 2 + pixel / 2 + shift[1], z0)
    return AxialGrid((slices, size, size), (slice_mm, pixel, pixel), origin)


def volume_set(n: int, seed: int, size: int = 128,
               slices: int = 64) -> list[tuple[ChestVolume, AxialGrid]]:
    """``n`` chests with their grids; nodules in about half, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2 == 1)
    out = []
    for i in range(n):
        grid = demo_grid(rng, size, slices)
        z_center = grid.origin[2] + grid.spacing[0] * (slices - 1) / 2
        out.append((chest_volume(rng, bool(labels[i]), z_center, seed * 100003 + i), grid))
    return out


def slice_datasets(hu: np.ndarray, grid: AxialGrid, index: int, seed: int,
                   label: str) -> list[Dataset]:
    """One CT Image Storage dataset per slice, in slice order (lowest first)."""
    def uid(*parts):
        return generate_uid(entropy_srcs=["lucida-demo-volume", str(seed), str(index), *parts])

    s, r, c = grid.shape
    stored = np.round(hu - RESCALE_INTERCEPT).clip(0, 4095).astype(np.uint16)
    n = index + 1
    out = []
    for k in range(s):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_SOP_CLASS
        meta.MediaStorageSOPInstanceUID = uid("sop", str(k))
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CT_SOP_CLASS
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = uid("study")
        ds.SeriesInstanceUID = uid("series")
        ds.FrameOfReferenceUID = uid("frame")
        ds.Modality = "CT"
        ds.PatientName = f"DEMO^VOLUME^{n:04d}"
        ds.PatientID = f"DEMOCT{seed:03d}{n:05d}"
        ds.PatientBirthDate = f"{1945 + (index * 5) % 45}0{1 + index % 9}1{index % 9}"
        ds.PatientSex = "MF"[index % 2]
        ds.AccessionNumber = f"CTACC{seed:03d}{n:05d}"
        ds.InstitutionName = "LUCIDA DEMO HOSPITAL A"
        ds.ReferringPhysicianName = "DEMO^REFERRER"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240103"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "100000"
        ds.StudyID = f"{n}"
        ds.SeriesNumber = 2
        # Scanners number slices from the head down.
        ds.InstanceNumber = s - k
        ds.StudyDescription = "Synthetic chest CT"
        ds.SeriesDescription = f"Chest {grid.spacing[0]:g} mm ({label})"
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.Manufacturer = "Lucida demo generator"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        x0, y0, z0 = grid.origin
        ds.ImagePositionPatient = [f"{x0:.4f}", f"{y0:.4f}", f"{z0 + k * grid.spacing[0]:.4f}"]
        ds.SliceLocation = f"{z0 + k * grid.spacing[0]:.4f}"
        ds.SliceThickness = f"{grid.spacing[0]:g}"
        ds.PixelSpacing = [f"{grid.spacing[1]:.4f}", f"{grid.spacing[2]:.4f}"]
        ds.Rows, ds.Columns = r, c
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = f"{RESCALE_INTERCEPT:g}", 1, "HU"
        ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
        ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG"]
        ds.KVP = 120
        ds.PixelData = stored[k].tobytes()
        out.append(ds)
    return out


def write_series(hu: np.ndarray, grid: AxialGrid, folder: Path, index: int, seed: int,
                 label: str) -> list[Path]:
    """Write one file per slice into ``folder``, named in no slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    datasets = slice_datasets(hu, grid, index, seed, label)
    order = np.random.default_rng([seed, index, 7]).permutation(len(datasets))
    paths = []
    for name_index, k in enumerate(order):
        path = folder / f"IM{name_index + 1:04d}.dcm"
        datasets[k].save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_nifti_volume(hu: np.ndarray, grid: AxialGrid, path: Path) -> Path:
    """Write the volume as NIfTI (RAS+ affine, data indexed ``[column, row, slice]``)."""
    import nibabel as nib

    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ grid.affine
    # The values the DICOM series stores, so both files hold the same HU.
    stored = np.round(hu - RESCALE_INTERCEPT).clip(0, 4095) + RESCALE_INTERCEPT
    data = np.transpose(stored.astype(np.int16), (2, 1, 0))
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return path


def write_volume_set(out: Path, n: int, seed: int, *, size: int = 128, slices: int = 64,
                     nifti: bool = True, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None) -> Path:
    """Write ``n`` chest CT volumes and ``manifest.csv`` into ``out``.

    Parameters
    ----------
    out : Path
        Output folder (created): ``volume_0001/`` (one DICOM file per slice) and
        ``volume_0001.nii.gz`` per volume.
    n, seed : int
        Number of volumes and data seed.
    size : int
        Rows and columns per slice; the field of view stays 358.4 mm, so 512 gives 0.7 mm.
    slices : int
        Slices per volume, 2.5 mm apart.
    nifti : bool
        Also write each volume as NIfTI.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    Path
        The manifest: series folder, NIfTI file, label, the nodule's voxel box
        ``x0 y0 z0 x1 y1 z1`` (column, row, slice in the volume sorted along its normal,
        end-exclusive), its centre (LPS mm) and radius.
    """
    if n < 1 or size < 32 or slices < 8:
        raise UsageError("need --n >= 1, --size >= 32 and at least 8 slices",
                         fix="pass larger values")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (chest, grid) in enumerate(volume_set(n, seed, size, slices)):
        if cancel is not None:
            cancel.check()
        hu = chest.render(grid)
        name = f"volume_{i + 1:04d}"
        write_series(hu, grid, out / name, i, seed, chest.label)
        nii = f"{name}.nii.gz" if nifti else ""
        if nifti:
            write_nifti_volume(hu, grid, out / nii)
        box = centre = ""
        if chest.nodule_center is not None:
            box = " ".join(str(v) for v in grid.box(chest.nodule_center, chest.nodule_radius))
            centre = " ".join(f"{v:.2f}" for v in chest.nodule_center)
        rows.append((name, nii, chest.label, box, centre,
                     f"{chest.nodule_radius:.2f}" if chest.nodule_center else ""))
        if progress is not None:
            progress((i + 1) / n, name)
    return write_manifest(out, MANIFEST_COLUMNS, rows)


def in_memory_volume(hu: np.ndarray, grid: AxialGrid, name: str = "demo volume"):
    """The volume a written series opens as, without the files: HU stored as integers."""
    from engine.studies.volume import Volume

    stored = np.round(hu - RESCALE_INTERCEPT).clip(0, 4095) + RESCALE_INTERCEPT
    return Volume(path=Path(name), name=name, modality="CT", affine=grid.affine,
                  shape=grid.shape, voxels=stored.astype(np.float32))
