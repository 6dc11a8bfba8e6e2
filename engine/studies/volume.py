"""CT and MR series as volumes in patient space.

A :class:`Volume` holds one series' voxels in modality units (HU for CT), each slice rescaled by
its own slope and intercept, and the affine that places every voxel in the DICOM patient
coordinate system (LPS: x to the patient's left, y to the posterior, z to the head).

Geometry comes from the headers only: ImagePositionPatient, ImageOrientationPatient and
PixelSpacing of every slice (or of every frame of an enhanced multi-frame object, from its
functional groups). Slices are sorted along the slice normal whatever the file order, and the
slice spacing is measured from the positions, never read from SliceThickness. A series whose
geometry does not make one regular grid is refused with one line naming the series: missing
slices, uneven spacing, mixed orientations or sizes, gantry tilt, duplicate positions. Lucida
never resamples such a series silently.

Voxels are decoded on first use, so a study tree can make volumes of its series from headers
alone.

The affine follows the DICOM image-plane equation (PS3.3 C.7.6.2.1.1) and nibabel's DICOM
orientation notes: it maps a voxel index ``(i, j, k, 1)`` = (column, row, slice) to LPS
millimetres. The voxel array itself is indexed ``[slice, row, column]``, i.e. ``[k, j, i]``.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.case import ContentId, array_digest, bytes_digest
from engine.core.errors import StudyError, UsageError
from engine.core.hashing import sha256_file
from engine.studies import display
from engine.studies.calibration import valid_spacing
from engine.studies.windows import WindowPreset

#: Modalities whose series become volumes in a study tree.
VOLUME_MODALITIES = ("CT", "MR")
#: Largest difference of direction cosines that still counts as one orientation.
ORIENTATION_TOL = 1e-4
#: Largest relative difference of slice steps that still counts as even spacing.
SPACING_RTOL = 0.01
#: Positions closer than this (mm) along the normal are duplicates.
DUPLICATE_MM = 0.01
#: Largest angle (degrees) between the slice normal and the stack axis before it is a tilt.
TILT_DEGREES = 0.1
#: How close a step must be to a whole multiple of the spacing to read as missing slices.
_MULTIPLE_TOL = 0.05
#: The window a CT volume opens at when its files carry none (as for CT images).
SOFT_TISSUE = WindowPreset(40.0, 400.0, "soft tissue", "LINEAR")
#: Suffixes of NIfTI files.
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class GeometryError(StudyError):
    """A series whose slices do not make one regular grid; the message names the series."""


def is_volume(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`Volume` (or duck-types as one)."""
    return getattr(obj, "kind", None) == "volume"


def is_nifti(path: str | Path) -> bool:
    """Whether a file name says NIfTI (``.nii`` or ``.nii.gz``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


@dataclass(frozen=True)
class _Plane:
    """Geometry of one slice, read from its header."""

    image: Any
    frame: int
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    sop_uid: str


class Volume:
    """One volume: voxels in modality units on a regular grid placed in patient space.

    Build one with :func:`volume_from_images`, :func:`open_volume` or
    :func:`engine.studies.nifti.open_nifti`.

    Attributes
    ----------
    kind : str
        Always ``"volume"``.
    path : Path
        The series folder, the enhanced multi-frame file or the NIfTI file.
    name : str
        How messages name the volume (``series 3 "CHEST" (1.2.3...)``, or the file name).
    modality : str
        DICOM modality (``""`` for NIfTI, which does not say).
    affine : numpy.ndarray
        (4, 4) float64: voxel ``(column, row, slice, 1)`` to patient LPS millimetres.
    spacing : tuple of float
        ``(slice, row, column)`` spacing in mm, the order of the voxel array's axes.
    sop_uids : list of str
        SOP Instance UID of each slice, in volume order (empty strings for NIfTI).
    frames : list of int
        Frame of each slice within its file (0 for single-frame files).
    images : list
        The :class:`engine.studies.image.Image` of each slice, in volume order (empty for NIfTI).
    """

    kind = "volume"
    n_frames = 1
    is_color = False
    photometric = "MONOCHROME2"

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        modality: str,
        affine: np.ndarray,
        shape: tuple[int, int, int],
        sop_uids: list[str] | None = None,
        frames: list[int] | None = None,
        images: list | None = None,
        loader=None,
        voxels: np.ndarray | None = None,
        series_uid: str = "",
        description: str = "",
        dataset: Any = None,
        window: WindowPreset | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.modality = modality
        self.affine = np.asarray(affine, dtype=np.float64)
        self._shape = tuple(int(s) for s in shape)
        self.sop_uids = list(sop_uids or [""] * self._shape[0])
        self.frames = list(frames or [0] * self._shape[0])
        self.images = list(images or [])
        self.series_uid = series_uid
        self.description = description
        self.dataset = dataset
        self._loader = loader
        self._voxels = None if voxels is None else _read_only(voxels)
        self._window = window
        self._lock = threading.Lock()
        self._content: ContentId | None = None

    def __repr__(self) -> str:
        s, r, c = self.shape
        ds, dr, dc = self.spacing
        return (f"Volume({self.name}, {self.modality or 'unknown modality'}, {s}x{r}x{c} "
                f"slices x rows x columns, {ds:.3g} x {dr:.3g} x {dc:.3g} mm)")

    # -- geometry ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices, rows, columns)``."""
        return self._shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        """``(slice, row, column)`` voxel spacing in mm, from the affine's columns."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[2]), float(norms[1]), float(norms[0])

    @property
    def normal(self) -> np.ndarray:
        """Unit vector from one slice to the next (LPS)."""
        step = self.affine[:3, 2]
        return step / np.linalg.norm(step)

    def index_to_patient(self, kji) -> np.ndarray:
        """Patient LPS mm of voxel indices ``[..., (slice, row, column)]`` (may be fractional)."""
        kji = np.asarray(kji, dtype=np.float64)
        ijk = kji[..., ::-1]
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_index(self, points) -> np.ndarray:
        """Voxel indices ``[..., (slice, row, column)]`` (fractional) of patient LPS points."""
        points = np.asarray(points, dtype=np.float64)
        ijk = (points - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T
        return ijk[..., ::-1]

    def geometry(self) -> dict:
        """The volume's geometry as JSON-ready values (``volume_geometry.json``, ``info``)."""
        s, r, c = self.shape
        ds, dr, dc = self.spacing
        return {
            "name": self.name,
            "modality": self.modality,
            "shape": [s, r, c],
            "axes": ["slice", "row", "column"],
            "spacing_mm": {"slice": ds, "row": dr, "column": dc},
            "affine": [[float(v) for v in row] for row in self.affine],
            "affine_maps": "(column, row, slice, 1) voxel index to patient LPS mm",
            "origin_lps_mm": [float(v) for v in self.affine[:3, 3]],
            "row_direction": [float(v) for v in self.affine[:3, 0] / max(dc, 1e-12)],
            "column_direction": [float(v) for v in self.affine[:3, 1] / max(dr, 1e-12)],
            "slice_normal": [float(v) for v in self.normal],
            "series_instance_uid": self.series_uid,
            "sop_instance_uids": list(self.sop_uids),
            "frames": list(self.frames),
        }

    # -- voxels ------------------------------------------------------------------------------
    @property
    def voxels(self) -> np.ndarray:
        """float32 ``(slices, rows, columns)`` in modality units, decoded once; read-only."""
        with self._lock:
            if self._voxels is None:
                self._voxels = _read_only(np.asarray(self._loader(), dtype=np.float32))
                if self._voxels.shape != self.shape:
                    raise StudyError(
                        f"{self.name} decoded to shape {self._voxels.shape}, not {self.shape}",
                        path=self.path, fix="check that every slice has the series' size")
            return self._voxels

    @property
    def default_window(self) -> WindowPreset:
        """The window the volume opens at: the first slice's, soft tissue for CT, else robust."""
        if self._window is None:
            if self.images:
                preset = self.images[0].default_window_for(self.frames[0])
                self._window = preset or SOFT_TISSUE
            elif self.modality == "CT":
                self._window = SOFT_TISSUE
            else:
                sample = self.voxels[:: max(1, self.shape[0] // 8)]
                center, width = display.robust_window(display.values_sample(
                    sample.reshape(-1, sample.shape[-1])))
                self._window = WindowPreset(center, width, "auto", "LINEAR_EXACT")
        return self._window

    def slice_view(self, index: int) -> SliceView:
        """Slice ``index`` as a 2-D image a 2-D model can read (see :class:`SliceView`)."""
        if not 0 <= index < self.shape[0]:
            raise UsageError(f"slice {index} is out of range; {self.name} has "
                             f"{self.shape[0]} slices", path=self.path,
                             fix=f"pick a slice from 0 to {self.shape[0] - 1}")
        return SliceView(self, index)

    def identifiers(self) -> dict[str, str]:
        """Patient and study identifiers of the first slice (``''`` for NIfTI)."""
        if self.images:
            return self.images[0].identifiers()
        return {}

    def content_id(self, frame: int = 0) -> ContentId:
        """What this volume is, by content: the case identity's first part.

        A DICOM series is named by its Series Instance UID, its instances (UID and frame, in
        order) and its geometry, so two series or reconstructions in one folder are two cases;
        a NIfTI file by its bytes; voxels in memory by their values. ``frame`` is accepted for
        the image interface and must be 0.
        """
        if frame:
            raise UsageError(f"a volume has one frame, not frame {frame}", path=self.path,
                             fix="use frame 0")
        with self._lock:
            if self._content is None:
                if self.images or self.series_uid:
                    digest = bytes_digest(self.series_uid, "\\".join(self.sop_uids),
                                          repr(self.frames), repr(self.shape),
                                          np.round(self.affine, 6).tobytes())
                    self._content = ContentId("series", digest, uid=self.series_uid)
                elif self._loader is not None and self.path.is_file():
                    self._content = ContentId("file", sha256_file(self.path))
                else:
                    self._content = None
        if self._content is None:
            self._content = ContentId("array", bytes_digest(
                array_digest(self.voxels), np.round(self.affine, 6).tobytes()))
        return self._content

    def info(self) -> dict:
        """What ``main.py info`` prints for a volume: its kind, path and geometry."""
        return {"path": str(self.path), "kind": "volume", **self.geometry()}


class SliceView:
    """One slice of a volume as a 2-D image: what a 2-D model reads, slice by slice.

    For a DICOM series it defers to the slice's own :class:`engine.studies.image.Image` (its
    windows and polarity); for NIfTI it windows the voxels with the volume's default window.
    """

    kind = "slice"
    n_frames = 1
    is_color = False
    photometric = "MONOCHROME2"

    def __init__(self, volume: Volume, index: int) -> None:
        self.volume = volume
        self.index = index
        self.shape = volume.shape[1:]
        self.modality = volume.modality
        image = volume.images[index] if volume.images else None
        self._image = image
        self.dataset = getattr(image, "dataset", None)
        self.path = Path(getattr(image, "path", volume.path))

    def model_input(self, frame: int = 0, window="default") -> np.ndarray:
        """The slice in [0, 1] as :meth:`engine.studies.image.Image.model_input` gives it."""
        if self._image is not None:
            return self._image.model_input(self.volume.frames[self.index], window=window)
        values = self.volume.voxels[self.index]
        if isinstance(window, str) and window == "minmax":
            lo, hi = float(values.min()), float(values.max())
            return ((values - lo) / (hi - lo) if hi > lo else values * 0).astype(np.float32)
        preset = self.volume.default_window if window == "default" else window
        if not isinstance(preset, WindowPreset):
            preset = WindowPreset(float(preset[0]), float(preset[1]), "custom", "LINEAR")
        return display.window_unit(values, preset.center, preset.width, preset.function)

    def content_id(self, frame: int = 0) -> ContentId:
        """The slice's own instance and frame, or the volume's content and the slice index."""
        if self._image is not None:
            return self._image.content_id(self.volume.frames[self.index])
        return self.volume.content_id().at_frame(self.index)

    def identifiers(self) -> dict[str, str]:
        """The slice's identifiers (see :meth:`Volume.identifiers`)."""
        return self.volume.identifiers()


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    arr.flags.writeable = False
    return arr


def _floats(value, n: int) -> np.ndarray | None:
    try:
        out = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def _group_value(ds, frame: int | None, sequence: str, keyword: str):
    """A value from the frame's functional group, else the shared group, else the top level."""
    for groups in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if not seq:
            continue
        item = seq[frame] if groups.startswith("PerFrame") and frame is not None and \
            frame < len(seq) else seq[0] if not groups.startswith("PerFrame") else None
        inner = item.get(sequence) if item is not None else None
        if inner and keyword in inner[0]:
            return inner[0].get(keyword)
    return ds.get(keyword)


def _planes_of(image, name: str) -> list[_Plane]:
    """Every slice an image contributes: one, or one per frame of an enhanced object.

    ``name`` names the series in the line that refuses a slice without a usable pixel size.
    """
    ds = image.dataset
    if ds is None:
        raise StudyError("is not DICOM, so it has no position in patient space", path=image.path,
                         fix="open a DICOM series or a NIfTI file")
    enhanced = image.n_frames > 1 and "PerFrameFunctionalGroupsSequence" in ds
    frames = range(image.n_frames) if enhanced else [0]
    if image.n_frames > 1 and not enhanced:
        raise StudyError("is a multi-frame object without per-frame positions", path=image.path,
                         fix="a volume needs ImagePositionPatient for every frame")
    uid = str(ds.get("SOPInstanceUID", "") or "")
    planes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for frame in frames:
            f = frame if enhanced else None
            position = _floats(_group_value(ds, f, "PlanePositionSequence",
                                            "ImagePositionPatient"), 3)
            orientation = _floats(_group_value(ds, f, "PlaneOrientationSequence",
                                               "ImageOrientationPatient"), 6)
            raw_spacing = _group_value(ds, f, "PixelMeasuresSequence", "PixelSpacing")
            spacing = valid_spacing(raw_spacing)
            missing = [keyword for keyword, v in (("ImagePositionPatient", position),
                                                  ("ImageOrientationPatient", orientation))
                       if v is None]
            where = f" (frame {frame})" if enhanced else ""
            if missing:
                raise StudyError(f"has no valid {' or '.join(missing)}{where}", path=image.path,
                                 fix="a volume needs the image plane of every slice")
            if spacing is None:
                # Image Plane: Pixel Spacing is type 1 and has no default; a zero size would
                # make a singular affine, so the series is no volume.
                shown = "" if raw_spacing is None else f" {raw_spacing}"
                raise _fail(name, image.path, f"{Path(image.path).name}{where} has no usable "
                            f"PixelSpacing{shown} (each value must be above 0 mm)",
                            "correct PixelSpacing in the files (e.g. dcmodify -m "
                            "PixelSpacing=0.7\\0.7), or open the slices as 2-D images, "
                            "which measure in pixels")
            planes.append(_Plane(image, frame, position, orientation,
                                 (float(spacing[0]), float(spacing[1])),
                                 int(image.shape[0]), int(image.shape[1]), uid))
    return planes


def series_name(images: list) -> str:
    """How messages name a series: ``series 3 "CHEST 2.5" (1.2.3...)``."""
    ds = images[0].dataset if images else None
    if ds is None:
        return "series"
    number = str(ds.get("SeriesNumber", "") or "").strip()
    description = str(ds.get("SeriesDescription", "") or "").strip()
    uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    parts = ["series"] + ([number] if number else []) + ([f'"{description}"'] if description
                                                          else [])
    return " ".join(parts) + (f" ({uid})" if uid else "")


def _common_folder(images: list) -> Path:
    return Path(os.path.commonpath([str(Path(image.path).resolve().parent) for image in images]))


def _fail(name: str, path: Path, message: str, fix: str) -> GeometryError:
    return GeometryError(f"{name}: {message}", path=path, fix=fix)


def _check_uniform(planes: list[_Plane], name: str, path: Path) -> None:
    sizes = sorted({(p.rows, p.columns) for p in planes})
    if len(sizes) > 1:
        shown = ", ".join(f"{c}x{r}" for r, c in sizes)
        raise _fail(name, path, f"mixed slice sizes ({shown} columns x rows)",
                    "split the series so each part has one size")
    spacings = sorted({p.pixel_spacing for p in planes})
    if max(abs(a - b) for s in spacings for a, b in zip(s, spacings[0], strict=True)) > \
            1e-4 * max(spacings[0]):
        shown = ", ".join(f"{a:g}x{b:g}" for a, b in spacings[:3])
        raise _fail(name, path, f"mixed pixel spacings ({shown} mm)",
                    "split the series so each part has one pixel spacing")
    first = planes[0].orientation
    for p in planes[1:]:
        if np.max(np.abs(p.orientation - first)) > ORIENTATION_TOL:
            raise _fail(name, path, "mixed slice orientations (ImageOrientationPatient differs, "
                        f"e.g. in {Path(p.image.path).name})",
                        "split the series so each part has one orientation (a localiser "
                        "mixed into the series, say)")


def _check_steps(planes: list[_Plane], along: np.ndarray, normal: np.ndarray, name: str,
                 path: Path) -> float:
    """Check the sorted slice positions; return the measured slice spacing in mm."""
    if len(planes) < 2:
        raise _fail(name, path, "has one slice; a volume needs at least two",
                    "open the image on its own")
    steps = np.diff(along)
    dup = np.nonzero(steps < DUPLICATE_MM)[0]
    if len(dup):
        a, b = planes[dup[0]], planes[dup[0] + 1]
        raise _fail(name, path, f"{len(dup)} duplicate slice position(s), first at "
                    f"{along[dup[0]]:.2f} mm along the slice normal ({Path(a.image.path).name} "
                    f"and {Path(b.image.path).name})",
                    "remove the duplicate slices (a second reconstruction mixed in?)")
    base = float(np.median(steps))
    span = planes[-1].position - planes[0].position
    sideways = np.linalg.norm(span - np.dot(span, normal) * normal)
    tilt = math.degrees(math.atan2(sideways, float(np.dot(span, normal))))
    if tilt > TILT_DEGREES:
        raise _fail(name, path, f"gantry tilt of {tilt:.2f} degrees (the slices step sideways)",
                    "reconstruct without tilt, or resample the series in a tool that corrects "
                    "tilt; Lucida does not resample silently")
    uneven = np.nonzero(np.abs(steps - base) > SPACING_RTOL * base)[0]
    if len(uneven):
        ratios = steps[uneven] / base
        whole = np.abs(ratios - np.round(ratios)) < _MULTIPLE_TOL
        if np.all(whole & (np.round(ratios) >= 2)):
            count = int(np.sum(np.round(ratios) - 1))
            first = uneven[0]
            raise _fail(name, path, f"{count} slice(s) missing, first between "
                        f"{along[first]:.2f} and {along[first + 1]:.2f} mm along the slice "
                        f"normal (spacing {base:.3g} mm)",
                        "export the complete series; Lucida does not interpolate missing "
                        "slices")
        raise _fail(name, path, f"uneven slice spacing (steps from {steps.min():.3g} to "
                    f"{steps.max():.3g} mm)",
                    "open a series with one slice spacing, or resample it in a tool that "
                    "says so; Lucida does not resample silently")
    return float(np.mean(steps))


def volume_from_images(images: list, *, name: str | None = None,
                       path: str | Path | None = None) -> Volume:
    """Make a volume of one series' images, from their headers only.

    Parameters
    ----------
    images : list of Image
        The series' DICOM images in any order: single-frame slices, or one enhanced
        multi-frame object with per-frame positions.
    name : str, optional
        How messages name the series (default: its number, description and UID).
    path : str or Path, optional
        Where the series lives (default: the folder holding its files).

    Returns
    -------
    Volume
        Slices sorted along the slice normal; voxels decoded on first use.

    Raises
    ------
    GeometryError
        Missing slices, uneven spacing, mixed orientations, sizes or pixel spacings, gantry
        tilt, duplicate positions, fewer than two slices, or a slice without a usable pixel
        spacing (absent, zero, negative or unreadable); one line naming the series.
    StudyError
        A slice without position or orientation, or a colour image.
    """
    if not images:
        raise UsageError("no images to make a volume of")
    name = name or series_name(images)
    where = Path(path) if path is not None else (
        Path(images[0].path) if len(images) == 1 else _common_folder(images))
    for image in images:
        if image.is_color:
            raise _fail(name, where, f"{Path(image.path).name} is a colour image",
                        "a volume is made of grey slices")
    planes = [plane for image in images for plane in _planes_of(image, name)]
    _check_uniform(planes, name, where)
    orientation = planes[0].orientation
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    norm = np.linalg.norm(normal)
    if norm < 0.5:
        raise _fail(name, where, "ImageOrientationPatient is not two perpendicular directions",
                    "check the files' headers")
    normal = normal / norm
    along_all = np.asarray([np.dot(p.position, normal) for p in planes])
    order = np.argsort(along_all, kind="stable")
    planes = [planes[i] for i in order]
    along = along_all[order]
    _check_steps(planes, along, normal, name, where)
    row_spacing, col_spacing = planes[0].pixel_spacing
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = (planes[-1].position - planes[0].position) / (len(planes) - 1)
    affine[:3, 3] = planes[0].position
    first = images[0]
    ds = first.dataset

    def load() -> np.ndarray:
        return np.stack([p.image.modality_frame(p.frame) for p in planes])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        description = str(ds.get("SeriesDescription", "") or "")
    return Volume(
        path=where, name=name, modality=first.modality, affine=affine,
        shape=(len(planes), planes[0].rows, planes[0].columns),
        sop_uids=[p.sop_uid for p in planes], frames=[p.frame for p in planes],
        images=[p.image for p in planes], loader=load, series_uid=series_uid,
        description=description, dataset=ds,
    )


def open_volume(path: str | Path) -> Volume:
    """Open a series folder, an enhanced multi-frame file or a NIfTI file as a volume.

    Parameters
    ----------
    path : str or Path
        A folder holding one CT/MR series (searched recursively; files that are not images are
        ignored), one enhanced multi-frame DICOM file, or a ``.nii``/``.nii.gz`` file.

    Returns
    -------
    Volume

    Raises
    ------
    GeometryError
        The series' slices do not make one regular grid (see :func:`volume_from_images`).
    StudyError
        Nothing in the folder makes a volume, or the file cannot be read.
    UsageError
        The folder holds several series.
    """
    path = Path(path)
    if is_nifti(path):
        from engine.studies.nifti import open_nifti

        return open_nifti(path)
    if not path.exists():
        raise StudyError("no such file or folder", path=path, fix="check the path")
    if path.is_file():
        from engine.studies.image import open_image

        return volume_from_images([open_image(path)], path=path)
    from engine.studies.tree import open_paths

    tree = open_paths([path])
    series = [s for p in tree.patients for st in p.studies for s in st.series
              if s.images and s.images[0].kind == "dicom"]
    if not series:
        reason = f" ({tree.problems[0].reason})" if tree.problems else ""
        raise StudyError(f"holds no DICOM series{reason}", path=path,
                         fix="pass a folder of DICOM slices or a NIfTI file")
    if len(series) > 1:
        shown = "; ".join(series_name(s.images) for s in series[:4])
        raise UsageError(f"holds {len(series)} series ({shown})", path=path,
                         fix="pass the folder of one series")
    return volume_from_images(series[0].images, path=path)
