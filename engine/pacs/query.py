"""What a PACS query asks and what it answers, the same for DICOMweb and DIMSE."""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field

from pydicom.dataset import Dataset

from engine.core.errors import UsageError

_DATE_RANGE = re.compile(r"^(\d{8})?-(\d{8})?$")


def parse_date_range(text: str) -> str:
    """Turn ``FROM-TO`` (``YYYYMMDD``, either end open) into a DICOM date range.

    Parameters
    ----------
    text : str
        ``20240101-20241231``, ``20240101-``, ``-20241231`` or one date ``20240101``; the ISO
        form ``2024-01-01`` is accepted for a single date.

    Returns
    -------
    str
        The DICOM range matching value (``20240101-20241231``).

    Raises
    ------
    UsageError
        For anything else.
    """
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text.replace("-", "")
    if re.fullmatch(r"\d{8}", text):
        return text
    match = _DATE_RANGE.match(text)
    if not match or not (match.group(1) or match.group(2)):
        raise UsageError(f"--date {text!r} is not a date range",
                         fix="write FROM-TO as YYYYMMDD-YYYYMMDD; either end may be left open")
    start, end = match.group(1) or "", match.group(2) or ""
    if start and end and start > end:
        raise UsageError(f"--date {text!r} ends before it starts", fix="swap the two dates")
    return f"{start}-{end}"


@dataclass(frozen=True)
class StudyQuery:
    """Study-level matching keys; empty strings match everything.

    ``patient_name`` may hold DICOM wildcards (``*``, ``?``).
    """

    patient_id: str = ""
    patient_name: str = ""
    accession: str = ""
    modality: str = ""
    date: str = ""

    def keys(self) -> dict[str, str]:
        """The non-empty matching keys, by DICOM keyword."""
        pairs = {
            "PatientID": self.patient_id,
            "PatientName": self.patient_name,
            "AccessionNumber": self.accession,
            "ModalitiesInStudy": self.modality,
            "StudyDate": self.date,
        }
        return {k: v for k, v in pairs.items() if v}


#: What a study search asks the PACS to return.
STUDY_FIELDS = (
    "StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyTime",
    "StudyDescription", "AccessionNumber", "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
)
#: What a series search asks the PACS to return.
SERIES_FIELDS = (
    "SeriesInstanceUID", "StudyInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)
#: What an instance search asks the PACS to return.
INSTANCE_FIELDS = ("SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID", "InstanceNumber")


def _text(ds: Dataset, keyword: str) -> str:
    # A PACS sends what its files hold; a malformed date is shown as it is, not warned about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyMatch:
    """One study a search found."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    date: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = field(default_factory=tuple)
    series_count: int | None = None
    instance_count: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> StudyMatch:
        """Read a C-FIND answer or a QIDO-RS result (as a data set)."""
        modalities = _text(ds, "ModalitiesInStudy")
        return cls(
            study_uid=_text(ds, "StudyInstanceUID"),
            patient_id=_text(ds, "PatientID"),
            patient_name=_text(ds, "PatientName"),
            date=_text(ds, "StudyDate"),
            description=_text(ds, "StudyDescription"),
            accession=_text(ds, "AccessionNumber"),
            modalities=tuple(m for m in modalities.split("\\") if m),
            series_count=_int(ds, "NumberOfStudyRelatedSeries"),
            instance_count=_int(ds, "NumberOfStudyRelatedInstances"),
        )

    def as_dict(self) -> dict:
        """A JSON-ready dict (for ``pacs find --json``)."""
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out


@dataclass(frozen=True)
class SeriesMatch:
    """One series a search found."""

    series_uid: str
    study_uid: str = ""
    modality: str = ""
    number: int | None = None
    description: str = ""
    instance_count: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> SeriesMatch:
        """Read a C-FIND answer or a QIDO-RS result (as a data set)."""
        return cls(
            series_uid=_text(ds, "SeriesInstanceUID"),
            study_uid=_text(ds, "StudyInstanceUID"),
            modality=_text(ds, "Modality"),
            number=_int(ds, "SeriesNumber"),
            description=_text(ds, "SeriesDescription"),
            instance_count=_int(ds, "NumberOfSeriesRelatedInstances"),
        )

    def as_dict(self) -> dict:
        """A JSON-ready dict (for ``pacs find --study UID --json``)."""
        return asdict(self)


@dataclass(frozen=True)
class InstanceRef:
    """One instance to retrieve."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset, study_uid: str) -> InstanceRef:
        """Read a C-FIND answer or a QIDO-RS result (as a data set)."""
        return cls(
            study_uid=_text(ds, "StudyInstanceUID") or study_uid,
            series_uid=_text(ds, "SeriesInstanceUID"),
            sop_uid=_text(ds, "SOPInstanceUID"),
            sop_class=_text(ds, "SOPClassUID"),
        )
