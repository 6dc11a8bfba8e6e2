"""Orientation markers: which way the patient lies along each edge of an image.

DICOM patient coordinates are LPS: +x towards the patient's left, +y posterior, +z head.
Image Orientation (Patient) gives the direction of increasing column index (the row direction,
pointing right on screen) and of increasing row index (the column direction, pointing down).
The right edge is labelled with the row direction, the bottom edge with the column direction,
and the opposite edges with their opposites. An oblique direction gets two or three letters,
strongest first (``"LP"``: mostly left, somewhat posterior), as viewers show it.

Without Image Orientation (Patient), projection radiographs carry Patient Orientation, two
strings of letters for the row and column directions; those are used as written.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

#: Letters for the positive and negative direction of each patient axis (x, y, z).
_AXES = (("L", "R"), ("P", "A"), ("H", "F"))
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
#: A direction component below this (about 6 degrees of tilt) gets no letter of its own.
OBLIQUE_THRESHOLD = 0.1


@dataclass(frozen=True)
class EdgeLabels:
    """The letters shown at the middle of each image edge."""

    left: str
    right: str
    top: str
    bottom: str


def direction_letters(vector, threshold: float = OBLIQUE_THRESHOLD) -> str:
    """Letters for one direction in LPS patient space, strongest component first.

    Parameters
    ----------
    vector : sequence of 3 floats
        A direction (need not be unit length).
    threshold : float
        Components smaller than this fraction of the vector's length get no letter.

    Returns
    -------
    str
        E.g. ``"L"``, ``"LP"``, ``"FPL"``; ``""`` for a zero vector.
    """
    x, y, z = (float(v) for v in vector)
    norm = math.sqrt(x * x + y * y + z * z)
    if norm == 0 or not math.isfinite(norm):
        return ""
    parts = sorted(((abs(c) / norm, _AXES[i][0 if c > 0 else 1])
                    for i, c in enumerate((x, y, z))), reverse=True)
    return "".join(letter for size, letter in parts if size >= threshold)


def labels_from_iop(iop) -> EdgeLabels | None:
    """Edge labels from Image Orientation (Patient), or None if it is malformed.

    Parameters
    ----------
    iop : sequence of 6 floats
        Row direction cosines, then column direction cosines.
    """
    try:
        values = [float(v) for v in iop]
    except (TypeError, ValueError):
        return None
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        return None
    row, col = values[:3], values[3:]
    right, bottom = direction_letters(row), direction_letters(col)
    left, top = direction_letters([-v for v in row]), direction_letters([-v for v in col])
    if not (right and bottom):
        return None
    return EdgeLabels(left=left, right=right, top=top, bottom=bottom)


def labels_from_patient_orientation(value) -> EdgeLabels | None:
    """Edge labels from Patient Orientation (``["L", "F"]``: rows run left, columns down to
    the feet), or None if it is absent or malformed."""
    try:
        row, col = (str(v).upper() for v in value)
    except (TypeError, ValueError):
        return None
    if not (row and col) or any(c not in _OPPOSITE for c in row + col):
        return None
    return EdgeLabels(left=_flip(row), right=row, top=_flip(col), bottom=col)


def _flip(letters: str) -> str:
    return "".join(_OPPOSITE[c] for c in letters)


def edge_labels(image, frame: int = 0) -> EdgeLabels | None:
    """Orientation markers of one frame of ``image``, or None when its orientation is unknown.

    Parameters
    ----------
    image : Image
        Anything with a ``dataset`` attribute (a pydicom Dataset or None).
    frame : int
        Zero-based frame, for enhanced multi-frame objects (per-frame Plane Orientation).

    Returns
    -------
    EdgeLabels or None
        None for raster files and for DICOM files without a usable orientation.
    """
    ds = getattr(image, "dataset", None)
    if ds is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a malformed value is read as absent
        for keyword, index in (("PerFrameFunctionalGroupsSequence", frame),
                               ("SharedFunctionalGroupsSequence", 0)):
            groups = ds.get(keyword)
            if groups and index < len(groups):
                plane = groups[index].get("PlaneOrientationSequence")
                if plane and "ImageOrientationPatient" in plane[0]:
                    found = labels_from_iop(plane[0].ImageOrientationPatient)
                    if found is not None:
                        return found
        if "ImageOrientationPatient" in ds:
            found = labels_from_iop(ds.ImageOrientationPatient)
            if found is not None:
                return found
        return labels_from_patient_orientation(ds.get("PatientOrientation"))
