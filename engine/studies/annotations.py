"""Corner annotations, as diagnostic viewers show them: patient, study, series, frame, window.

Top left: the patient (name, ID, birth date and sex). Top right: the study (institution,
description, date) and the series. Bottom left: the image (frame, size, modality). Bottom right:
the window and, on screen, the zoom.

De-identified corners keep only what does not identify the patient: no name, ID, birth date,
institution, date or free-text description (a description may hold a name); the top left says
the identifiers were removed. Exports burn in these unless the user keeps identifiers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from engine.studies.windows import window_value

#: Shown in the top-left corner of de-identified annotations.
DEIDENTIFIED = "Identifiers removed"


@dataclass(frozen=True)
class Corners:
    """Lines of text for each corner of an image, top line first."""

    top_left: list[str] = field(default_factory=list)
    top_right: list[str] = field(default_factory=list)
    bottom_left: list[str] = field(default_factory=list)
    bottom_right: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Every line of every corner (for searching them, e.g. for identifiers)."""
        return self.top_left + self.top_right + self.bottom_left + self.bottom_right


def _text(ds, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # noqa: BLE001 - a corrupt element must not hide the other corners
        return ""
    return "" if value is None else str(value).strip()


def _date(value: str) -> str:
    """``20240102`` as ``2024-01-02``; anything else as written."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def corner_text(image, frame: int = 0, window: tuple[float, float] | None = None, *,
                zoom: float | None = None, deidentified: bool = False) -> Corners:
    """Compose the corner annotations of one frame.

    Parameters
    ----------
    image : Image
        The image shown (DICOM or raster).
    frame : int
        Zero-based frame shown.
    window : (center, width), optional
        The window the frame is shown at; no window line without it (colour images).
    zoom : float, optional
        Screen pixels per image pixel; shown as a percentage when given.
    deidentified : bool
        Leave out everything that identifies the patient (see the module docstring).

    Returns
    -------
    Corners
    """
    ds = getattr(image, "dataset", None)
    top_left: list[str] = []
    top_right: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if deidentified:
            top_left.append(DEIDENTIFIED)
        elif ds is not None:
            name = _text(ds, "PatientName").replace("^", " ").strip()
            top_left += [name] if name else []
            pid = _text(ds, "PatientID")
            top_left += [f"ID {pid}"] if pid else []
            sex = _text(ds, "PatientSex")
            born = "  ".join(v for v in (_date(_text(ds, "PatientBirthDate")),
                                         f"Sex {sex}" if sex else "") if v)
            top_left += [born] if born else []
        if ds is not None:
            if not deidentified:
                for keyword in ("InstitutionName", "StudyDescription"):
                    value = _text(ds, keyword)
                    top_right += [value] if value else []
                date = _date(_text(ds, "StudyDate"))
                top_right += [date] if date else []
            series = _text(ds, "SeriesNumber")
            described = "" if deidentified else _text(ds, "SeriesDescription")
            line = " ".join(v for v in (f"Se {series}" if series else "", described) if v)
            top_right += [line] if line else []
    rows, cols = image.shape
    bottom_left = [f"Frame {frame + 1} / {image.n_frames}"] if image.n_frames > 1 else []
    instance = _text(ds, "InstanceNumber") if ds is not None else ""
    bottom_left += [f"Im {instance}"] if instance and image.n_frames == 1 else []
    bottom_left.append(f"{cols} × {rows}  {image.modality}")
    bottom_right = [] if window is None else [
        f"W {window_value(window[1])}  L {window_value(window[0])}"]
    if zoom is not None:
        bottom_right.append(f"Zoom {100 * zoom:.0f} %")
    return Corners(top_left, top_right, bottom_left, bottom_right)
