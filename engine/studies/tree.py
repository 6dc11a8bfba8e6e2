"""Files and folders become a browsable Patient → Study → Series → Image tree.

Folders are walked recursively. Every file is opened with :func:`engine.studies.image.open_image`
(headers only; pixels are decoded when shown). A DICOMDIR is read as the index it is, through
pydicom's ``FileSet``: the images it references join the tree. Files that hold no image (a
structured report, an RT plan, an ECG, a presentation state, a README) are *skipped*; images
that cannot be read have *failed*. Both are listed in :attr:`StudyTree.problems` with the
reason, and never stop the others.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import LucidaError, NotAnImage
from engine.studies.dicom_io import DicomdirIndex
from engine.studies.image import Image, SeriesWindow, open_image
from engine.studies.nifti import open_nifti
from engine.studies.volume import VOLUME_MODALITIES, is_nifti, volume_from_images

#: Label for grouping keys a file does not carry (raster files carry none).
UNKNOWN = "(unknown)"
#: How pydicom's FileSet names a record whose file is missing.
_MISSING_RECORD = re.compile(r"referenced SOP Instance .* does not exist: (.+)$")
#: Kinds of :class:`FileProblem`: a file that holds no image, or an image that cannot be read.
SKIPPED, FAILED = "skipped", "failed"
#: Kind of the problem of a CT or MR series whose slices open but do not make a volume.
NOT_A_VOLUME = "not a volume"


@dataclass(frozen=True)
class FileProblem:
    """A file that was not opened, why, and whether that is a failure or only a skip."""

    path: Path
    reason: str
    kind: str  # SKIPPED or FAILED


@dataclass
class Series:
    """Images of one series, in display order."""

    uid: str
    number: str = ""
    description: str = ""
    modality: str = ""
    images: list[Image] = field(default_factory=list)
    #: The series as a volume in patient space (CT and MR with a regular grid of slices).
    volume: Any = None
    #: Why a CT or MR series is not a volume (one line naming it); its images still open.
    volume_error: str = ""

    @property
    def middle(self) -> Image | None:
        """The middle image of the series (what a 2-D view shows of a stack of slices)."""
        return self.images[len(self.images) // 2] if self.images else None

    def shown_as(self, reads_volumes: bool) -> Any:
        """What opening the series shows: its volume, or its middle slice.

        Parameters
        ----------
        reads_volumes : bool
            Whether the volume can be explained (no model yet, or a 3-D one). A 2-D model
            gets the middle slice; a series that is not a volume always shows a slice.
        """
        if self.volume is not None and reads_volumes:
            return self.volume
        return self.middle


@dataclass
class Study:
    """Series of one study, ordered by series number."""

    uid: str
    date: str = ""
    description: str = ""
    accession: str = ""
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    """Studies of one patient, ordered by date."""

    id: str
    name: str = ""
    studies: list[Study] = field(default_factory=list)


@dataclass
class StudyTree:
    """Everything opened from a selection of files and folders."""

    patients: list[Patient] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    #: NIfTI files, opened as volumes (a DICOM series' volume is on its :class:`Series`).
    nifti: list[Any] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[Path, str]]:
        """Every file that was not opened, as (path, reason), skipped or failed alike."""
        return [(p.path, p.reason) for p in self.problems]

    @property
    def failed(self) -> list[FileProblem]:
        """The images that could not be read (not the files that hold no image)."""
        return [p for p in self.problems if p.kind == FAILED]

    def all_volumes(self) -> list[Any]:
        """Every volume: each CT/MR series that makes one, then the NIfTI files."""
        return [series.volume for patient in self.patients for study in patient.studies
                for series in study.series if series.volume is not None] + list(self.nifti)

    def all_series(self) -> list[Series]:
        """Every series, in tree order."""
        return [series for patient in self.patients for study in patient.studies
                for series in study.series]

    def series_of(self, image: Any) -> Series | None:
        """The series holding ``image`` (a slice, or a series' volume), or None."""
        for series in self.all_series():
            if image is series.volume or any(i is image for i in series.images):
                return series
        return None

    def volume_problems(self) -> list[FileProblem]:
        """A CT or MR series that does not make a volume, as a problem naming its folder."""
        return [FileProblem(series.images[0].path.parent, series.volume_error, NOT_A_VOLUME)
                for series in self.all_series() if series.volume_error]

    def all_images(self) -> list[Image]:
        """Every image, in tree order (patient, study, series, then display order)."""
        return [
            image
            for patient in self.patients
            for study in patient.studies
            for series in study.series
            for image in series.images
        ]


def expand_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """List the files under `paths`, walking folders recursively in name order.

    Hidden files and folders (names starting with a dot) are left out.

    Returns
    -------
    files : list of Path
    missing : list of (Path, str)
        Paths that do not exist, with the reason.
    """
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / n for n in names if not n.startswith("."))
            candidates = sorted(found)
        elif path.exists():
            candidates = [path]
        else:
            missing.append((path, "no such file or folder"))
            continue
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                files.append(candidate)
    return files, missing


def open_paths(
    paths: Iterable[str | os.PathLike],
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> StudyTree:
    """Open files and folders into a Patient → Study → Series → Image tree.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Files and folders, mixed; folders are walked recursively.
    progress : callable, optional
        ``progress(fraction, message)`` after each file.
    cancel : CancelToken, optional
        Checked before each file; cancelling raises :class:`engine.core.cancel.Cancelled`.

    Returns
    -------
    StudyTree
        Series are sorted by Instance Number, then by position along the slice normal, then by
        file name. Multi-frame instances are one image with ``n_frames`` frames. Files that are
        not displayable images are in ``problems`` with the reason; those that hold no image
        are ``skipped``, images that cannot be read have ``failed``.
    """
    files, missing = expand_paths(paths)
    problems = [FileProblem(path, reason, FAILED) for path, reason in missing]
    seen = {f.resolve() for f in files}
    images: list[Image] = []
    nifti: list[Any] = []
    i = 0
    while i < len(files):
        path = files[i]
        i += 1
        if cancel is not None:
            cancel.check()
        try:
            if is_nifti(path):
                nifti.append(open_nifti(path))
            else:
                images.append(open_image(path))
        except DicomdirIndex as index:
            listed, absent = _indexed_files(index.dataset, path)
            new = [f for f in listed if f.resolve() not in seen]
            seen.update(f.resolve() for f in new)
            files.extend(new)
            problems += [FileProblem(f, f"listed in {path} but missing", FAILED) for f in absent]
        except LucidaError as exc:
            reason = exc.message + (f" ({exc.fix})" if exc.fix else "")
            kind = SKIPPED if isinstance(exc, NotAnImage) else FAILED
            problems.append(FileProblem(path, reason, kind))
        if progress is not None:
            progress(i / len(files), path.name)
    return StudyTree(patients=_group(images), problems=problems, nifti=nifti)


def _indexed_files(dataset, path: Path) -> tuple[list[Path], list[Path]]:
    """The files a DICOMDIR references, in its order: (present, missing).

    pydicom's FileSet leaves out records whose file is missing, with a warning naming it.
    """
    from pydicom.fileset import FileSet

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            present = [Path(instance.path) for instance in FileSet(dataset)]
    except Exception:  # noqa: BLE001 - a corrupt index lists nothing; its folder is walked
        return [], []
    missing = [
        Path(match.group(1).strip())
        for w in caught
        if (match := _MISSING_RECORD.search(str(w.message)))
    ]
    return present, missing


def _text(image: Image, keyword: str) -> str:
    ds = image.dataset
    if ds is None:
        return ""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a corrupt element only loses its label
        return ""
    return "" if value is None else str(value).strip()


def _group(images: list[Image]) -> list[Patient]:
    patients: dict[str, Patient] = {}
    studies: dict[tuple[str, str], Study] = {}
    series_map: dict[tuple[str, str, str], Series] = {}
    for image in images:
        patient_id = _text(image, "PatientID") or UNKNOWN
        patient = patients.setdefault(
            patient_id, Patient(id=patient_id, name=_text(image, "PatientName"))
        )
        study_uid = _text(image, "StudyInstanceUID") or (
            UNKNOWN if image.kind == "dicom" else f"images in {image.path.parent}"
        )
        study = studies.get((patient_id, study_uid))
        if study is None:
            study = Study(
                uid=study_uid,
                date=_text(image, "StudyDate"),
                description=_text(image, "StudyDescription"),
                accession=_text(image, "AccessionNumber"),
            )
            studies[(patient_id, study_uid)] = study
            patient.studies.append(study)
        series_uid = _text(image, "SeriesInstanceUID") or (
            UNKNOWN if image.kind == "dicom" else str(image.path.parent)
        )
        key = (patient_id, study_uid, series_uid)
        series = series_map.get(key)
        if series is None:
            series = Series(
                uid=series_uid,
                number=_text(image, "SeriesNumber"),
                description=_text(image, "SeriesDescription"),
                modality=image.modality,
            )
            series_map[key] = series
            study.series.append(series)
        series.images.append(image)
    for patient in patients.values():
        patient.studies.sort(key=lambda s: (s.date, s.uid))
        for study in patient.studies:
            study.series.sort(key=lambda s: (_number(s.number), s.uid))
            for series in study.series:
                series.images.sort(key=_image_order)
                _make_volume(series)
                if len(series.images) > 1:
                    shared = SeriesWindow(series.images)
                    for image in series.images:
                        image.series_window = shared
    return sorted(patients.values(), key=lambda p: (p.id == UNKNOWN, p.name, p.id))


def _make_volume(series: Series) -> None:
    """Make a CT or MR series a volume, from headers only, or record why it is not one."""
    images = series.images
    if series.modality not in VOLUME_MODALITIES or not images or images[0].kind != "dicom":
        return
    if len(images) == 1 and images[0].n_frames < 2:
        return
    try:
        series.volume = volume_from_images(images)
    except LucidaError as exc:
        series.volume_error = exc.one_line()


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def _image_order(image: Image) -> tuple[float, float, str]:
    return (_number(_text(image, "InstanceNumber")), _slice_position(image), str(image.path))


def _slice_position(image: Image) -> float:
    """Distance of the image plane along its normal, or 0 when the geometry is missing."""
    ds = image.dataset
    if ds is None:
        return 0.0
    try:
        position = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=float)
        orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        normal = np.cross(orientation[:3], orientation[3:6])
        value = float(np.dot(position[:3], normal))
    except Exception:  # noqa: BLE001 - missing or malformed geometry falls back to names
        return 0.0
    return value if math.isfinite(value) else 0.0
