"""De-identification after DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Two halves:

* :func:`deidentify_dataset` applies the profile's actions to a DICOM data set (empty, remove or
  replace-UID), removes private tags, and records that it did so.
* :class:`Scrubber` applies the same promise to every other output (PNG text chunks, PDF
  metadata, HTML, JSON, captions): it blanks identifiers in free text and, as a last guard,
  refuses to write any file whose bytes still hold the patient's name or ID.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from engine.core.errors import ExportError

#: Recorded in DeidentificationMethod so a reader knows what was done.
METHOD = "DICOM PS3.15 Annex E Basic Profile (Lucida)"
#: DICOM code (DCM 113100) for the basic profile, for DeidentificationMethodCodeSequence.
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
#: Shown wherever an identifier was blanked in free text.
REMOVED = "[removed]"

# Annex E actions: "Z" empties the attribute (type 2: it must stay present), "X" removes it.
_ZERO = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "ContentCreatorName",
)
_REMOVE = (
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "MedicalRecordLocator",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "MilitaryRank",
    "BranchOfService",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientReligiousPreference",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "PatientState",
    "PregnancyStatus",
    "MedicalAlerts",
    "Allergies",
    "SmokingStatus",
    "LastMenstrualDate",
    "IssuerOfPatientID",
    "PatientInsurancePlanCodeSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "PerformingPhysicianName",
    "PerformingPhysicianIdentificationSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence",
    "RequestingPhysician",
    "ScheduledPerformingPhysicianName",
    "OperatorsName",
    "OperatorIdentificationSequence",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "ContentDate",
    "ContentTime",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "StudyDescription",
    "SeriesDescription",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
    "RequestAttributesSequence",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "AdmissionID",
    "AdmittingDiagnosesDescription",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "DeviceSerialNumber",
    "ProtocolName",
    "ImageComments",
    "FrameComments",
    "TextComments",
    "TextString",
    "DerivationDescription",
)
_INSTANCE_UID_SUFFIXES = ("InstanceUID", "FrameOfReferenceUID", "ConcatenationUID", "EventUID")
# Curves (50xx) and overlay data and comments (60xx,3000 / 60xx,4000) can carry burned-in text.
_REPEATING_GROUPS = ((0x5000, None), (0x6000, 0x3000), (0x6000, 0x4000))


def _is_repeating_removed(tag) -> bool:
    group = tag.group & 0xFF00
    return any(
        group == g and (elem is None or tag.element == elem) for g, elem in _REPEATING_GROUPS
    )


def _clean(ds: Dataset, uid_map: dict[str, str]) -> None:
    for keyword in _REMOVE:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in _ZERO:
        if keyword in ds:
            ds.data_element(keyword).value = ""
    for elem in list(ds):
        if _is_repeating_removed(elem.tag):
            del ds[elem.tag]
        elif elem.VR == "PN":
            # Any person name the table above does not list is still a person's name.
            elem.value = ""
        elif elem.VR == "UI" and elem.keyword.endswith(_INSTANCE_UID_SUFFIXES) and elem.value:
            old = str(elem.value)
            elem.value = uid_map.setdefault(old, generate_uid())
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, uid_map)


def deidentify_dataset(ds: Dataset, uid_map: dict[str, str] | None = None) -> Dataset:
    """Return a de-identified copy of a DICOM data set (PS3.15 Annex E, basic profile).

    Patient name, ID, birth date and sex, accession number, referring physician, study date,
    time and ID are emptied (they are type 2 and must stay present). Other identifying
    attributes (institution, operators, other physicians, descriptions, comments, further dates)
    are removed; every remaining person name is emptied; instance UIDs are replaced
    consistently; private tags, curves and overlay data are removed. Patient Identity Removed
    is set to YES, with the method recorded as text and as code DCM 113100.

    Parameters
    ----------
    ds : pydicom.Dataset
        The source data set; it is not modified.
    uid_map : dict, optional
        Old UID -> new UID, shared between calls so references stay consistent.

    Returns
    -------
    pydicom.Dataset
        The de-identified copy.
    """
    out = copy.deepcopy(ds)
    uid_map = {} if uid_map is None else uid_map
    out.remove_private_tags()
    _clean(out, uid_map)
    if getattr(out, "file_meta", None) is not None:
        _clean(out.file_meta, uid_map)
    mark_deidentified(out)
    return out


def mark_deidentified(ds: Dataset) -> None:
    """Set Patient Identity Removed, De-identification Method and its code sequence.

    Parameters
    ----------
    ds : pydicom.Dataset
        Modified in place.
    """
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = [code]


#: Identifiers whose presence in any byte of a de-identified export is refused.
GUARDED = ("PatientName", "PatientID", "AccessionNumber", "OtherPatientIDs")
# Shorter values occur by chance in compressed image bytes, so the byte guard skips them
# (free text is still scrubbed of them).
_GUARD_MIN_LEN = 6
_SCRUB_MIN_LEN = 3


def _path_variants(path: str | Path) -> set[str]:
    """A path as outputs could hold it: in full, its folder, and its file name.

    The stem alone is left out: a de-identified output calls the case by a pseudonym
    (``case-001``), which a file of that name would otherwise have refused.
    """
    path = Path(path).absolute()
    forms = {str(path), path.as_posix(), str(path.parent), path.name}
    return {f for f in forms if f not in ("", ".", "/")}


def _variants(value: str) -> set[str]:
    value = value.strip()
    out = {value}
    if "^" in value:
        parts = [p for p in value.split("^") if p]
        out.add(" ".join(parts))
        if len(parts) >= 2:
            out.add(f"{parts[0]}, {' '.join(parts[1:])}")
            out.add(" ".join(parts[1:] + parts[:1]))
    if "\\" in value:
        out.update(v for v in value.split("\\") if v)
    return {v for v in out if v}


class Scrubber:
    """Keeps one case's identifiers out of free text and out of written bytes.

    Parameters
    ----------
    identifiers : mapping of str to str
        What :meth:`engine.studies.image.Image.identifiers` returns (``''`` where absent).
    active : bool
        False when the user chose to keep identifiers: then nothing is changed or refused.
    paths : iterable of str or Path
        Where the case was read from. Its file name, full path and folder are identifiers too:
        a file is often named for the patient (``DOE_JOHN_1234567.png``) and folders for the
        patient or the study.
    """

    def __init__(self, identifiers: Mapping[str, str], active: bool = True,
                 paths: Iterable[str | Path] = ()) -> None:
        self.active = active
        self.identifiers = {k: str(v) for k, v in identifiers.items() if v}
        words: set[str] = set()
        for value in self.identifiers.values():
            words |= {v for v in _variants(value) if len(v) >= _SCRUB_MIN_LEN}
        located = {v for path in paths if str(path or "") for v in _path_variants(path)
                   if len(v) >= _GUARD_MIN_LEN}
        words |= located
        # Longest first, so a full name is blanked before one of its parts.
        self._pattern = (
            re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.I)
            if words
            else None
        )
        guarded: set[str] = set()
        for key in GUARDED:
            for v in _variants(self.identifiers.get(key, "")):
                if len(v) >= _GUARD_MIN_LEN:
                    guarded.add(v)
        self._guarded = sorted(guarded | located)

    def text(self, value: str) -> str:
        """Return ``value`` with every identifier replaced by ``[removed]``.

        Parameters
        ----------
        value : str
            Free text: a caption, a file name, a warning.

        Returns
        -------
        str
            The scrubbed text (unchanged when inactive).
        """
        if not self.active or self._pattern is None or not value:
            return value
        return self._pattern.sub(REMOVED, value)

    def deep(self, obj):
        """Scrub every string inside nested dicts, lists and tuples (keys included).

        Parameters
        ----------
        obj : object
            A JSON-like structure.

        Returns
        -------
        object
            A scrubbed copy.
        """
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {self.deep(k): self.deep(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.deep(v) for v in obj]
        return obj

    def check(self, data: bytes, name: str) -> None:
        """Refuse bytes that still hold the patient's name or ID, in any common encoding.

        Parameters
        ----------
        data : bytes
            A complete output file.
        name : str
            The file name, for the message.

        Raises
        ------
        ExportError
            If a guarded identifier occurs in UTF-8, Latin-1, UTF-16 or HTML-escaped form.
        """
        if not self.active:
            return
        for value in self._guarded:
            for needle in _encodings(value):
                if needle in data:
                    raise ExportError(
                        "the export still holds a patient identifier and was not written",
                        path=name,
                        fix="report this; or export with identifiers kept, on purpose",
                    )


def _encodings(value: str) -> set[bytes]:
    forms = {value, html.escape(value)}
    out: set[bytes] = set()
    for form in forms:
        for enc in ("utf-8", "utf-16-le", "utf-16-be", "latin-1"):
            try:
                out.add(form.encode(enc))
            except UnicodeEncodeError:
                continue
    return out
