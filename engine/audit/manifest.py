"""The dataset an audit runs over: a manifest CSV, or a folder of DICOM files.

A manifest CSV has a ``path`` column, an optional ``label`` column, an optional patient column
(``patient``, ``patient_id`` or ``PatientID``: hashed on reading, never a group or an output),
any number of group columns (site, sex, scanner, ...) and region-of-interest columns:
``<role>_box`` holds ``x0 y0 x1 y1`` in image pixels, ``<role>_mask`` holds the path of a mask
image. Relative paths are resolved against
the manifest's folder. A bad row is reported with its line number and skipped; the others run.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.core import boxes
from engine.core.boxes import Box
from engine.core.errors import UsageError

#: The automatic role for the outer band of every image; a manifest cannot define it.
BORDER_ROLE = "border"
#: DICOM tags that become group columns when the dataset is a folder of DICOM files.
DICOM_GROUP_TAGS = ("Manufacturer", "InstitutionName", "ViewPosition", "PatientSex")
#: Upper edges of the age bands (years) for the ``AgeBand`` group of a DICOM folder.
AGE_BANDS = (18, 40, 60, 80)
#: Manifest columns that name the patient (the first present is used); never a group.
PATIENT_COLUMNS = ("patient", "patient_id", "PatientID")


def patient_hash(patient_id: str) -> str | None:
    """A one-way digest of a patient identifier (None when empty): kept in memory, never written.

    Images of one patient are resampled together by the performance bootstrap; the digest lets
    them be grouped without holding the identifier itself.
    """
    text = str(patient_id or "").strip()
    return hashlib.sha256(f"lucida-patient:{text}".encode()).hexdigest() if text else None


@dataclass(frozen=True)
class AuditRow:
    """One image of the dataset with everything the audit needs to know about it.

    ``key`` names the row as written (its line and path) and stays in memory; the records an
    audit stores are keyed on the row and the image's content instead
    (:func:`engine.audit.identifiers.record_key`).
    """

    index: int
    key: str
    path: Path
    label: str | None
    groups: dict[str, str] = field(default_factory=dict)
    boxes: dict[str, Box] = field(default_factory=dict)
    masks: dict[str, Path] = field(default_factory=dict)
    #: :func:`patient_hash` of the manifest's patient column or the DICOM PatientID.
    patient: str | None = None


@dataclass(frozen=True)
class RowProblem:
    """A row that could not be audited: its line (1 = header) or file, and why."""

    line: int
    path: str
    reason: str

    def one_line(self) -> str:
        """Return the problem as the single line shown to the user."""
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.path or '(no path)'}: {self.reason}"


@dataclass
class Manifest:
    """The rows to audit, the rows that were rejected, and the columns that matter."""

    source: Path
    rows: list[AuditRow]
    problems: list[RowProblem]
    group_columns: list[str]
    roles: list[str]


def parse_box(text: str) -> Box | None:
    """Parse a ``<role>_box`` cell (see :func:`engine.core.boxes.parse_box`); None when empty.

    Raises
    ------
    UsageError
        If the cell is not four numbers with ``0 <= x0 < x1`` and ``0 <= y0 < y1``.
    """
    return boxes.parse_box(text) if text.strip() else None


def read_manifest(path: str | Path, *, labelled: bool = False) -> Manifest:
    """Read a manifest CSV; rows with problems are reported, not fatal.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    labelled : bool
        Every row needs a label (scoring a model); the file must have a ``label`` column and
        a row without a label is a problem.

    Returns
    -------
    Manifest
        Good rows in file order, and one :class:`RowProblem` per rejected row.

    Raises
    ------
    UsageError
        If the file cannot be read or lacks a ``path`` (or, ``labelled``, ``label``) column.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(
            f"cannot read the manifest ({exc})", path=path, fix="pass a UTF-8 CSV file"
        ) from None
    header = [h.strip() for h in header or []]
    required = ("path", "label") if labelled else ("path",)
    missing = [c for c in required if c not in header]
    if missing:
        raise UsageError(
            f"the manifest has no {' or '.join(repr(c) for c in missing)} column; it needs "
            f"{' and '.join(required)} columns",
            path=path,
            fix="add a header row with path,label and any group or <role>_box columns",
        )
    box_cols = {h: h[: -len("_box")] for h in header if h.endswith("_box")}
    mask_cols = {h: h[: -len("_mask")] for h in header if h.endswith("_mask")}
    for col, role in {**box_cols, **mask_cols}.items():
        if role == BORDER_ROLE or not role:
            raise UsageError(
                f"column {col!r} names a reserved or empty role",
                path=path,
                fix=f"rename it; the role {BORDER_ROLE!r} is the automatic outer band",
            )
    patient_col = next((c for c in PATIENT_COLUMNS if c in header), None)
    special = {"path", "label", patient_col} | box_cols.keys() | mask_cols.keys()
    group_cols = [h for h in header if h not in special]
    roles = sorted(set(box_cols.values()) | set(mask_cols.values()))
    root = path.parent
    rows: list[AuditRow] = []
    problems: list[RowProblem] = []
    for number, cells in enumerate(lines, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            problems.append(
                RowProblem(number, cells[0] if cells else "", f"has {len(cells)} cells, the "
                           f"header has {len(header)}")
            )
            continue
        rec = {h: c.strip() for h, c in zip(header, cells, strict=True)}
        row, reason = _row_from_record(rec, number, root, box_cols, mask_cols, group_cols,
                                       patient_col)
        if row is not None and labelled and row.label is None:
            row, reason = None, "no label"
        if row is None:
            problems.append(RowProblem(number, rec.get("path", ""), reason))
        else:
            rows.append(row)
    return Manifest(path, rows, problems, group_cols, roles)


def _row_from_record(rec, number, root, box_cols, mask_cols, group_cols, patient_col=None):
    """Build one row, or return ``(None, reason)`` for the first thing wrong with it."""
    written = rec["path"]
    if not written:
        return None, "empty path"
    image_path = _resolve(root, written)
    if not image_path.is_file():
        return None, f"file not found ({image_path})"
    boxes = {}
    for col, role in box_cols.items():
        try:
            box = parse_box(rec[col])
        except UsageError as exc:
            return None, f"column {col}: {exc.one_line()}"
        if box is not None:
            boxes[role] = box
    masks = {}
    for col, role in mask_cols.items():
        if rec[col]:
            mask = _resolve(root, rec[col])
            if not mask.is_file():
                return None, f"column {col}: mask not found ({mask})"
            masks[role] = mask
    row = AuditRow(
        index=number - 2,
        key=f"{number - 2}:{written}",
        path=image_path,
        label=rec.get("label") or None,
        groups={c: rec[c] for c in group_cols if rec[c]},
        boxes=boxes,
        masks=masks,
        patient=patient_hash(rec[patient_col]) if patient_col else None,
    )
    return row, ""


def _resolve(root: Path, written: str) -> Path:
    """Resolve a manifest path against the manifest's folder."""
    p = Path(written).expanduser()
    return p if p.is_absolute() else root / p


def age_band(age_years: float | None) -> str:
    """Return the band label for an age in years, e.g. ``"40-59"``; ``""`` when unknown."""
    if age_years is None:
        return ""
    low = 0
    for high in AGE_BANDS:
        if age_years < high:
            return f"{low}-{high - 1}"
        low = high
    return f"{low}+"


def _dicom_age(ds) -> float | None:
    """The patient's age in years from PatientAge (``045Y``), or birth and study dates."""
    text = str(getattr(ds, "PatientAge", "") or "").strip().upper()
    match = re.fullmatch(r"(\d{1,3})([DWMY])", text)
    if match:
        per_year = {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[match.group(2)]
        return int(match.group(1)) / per_year
    birth = str(getattr(ds, "PatientBirthDate", "") or "")
    study = str(getattr(ds, "StudyDate", "") or "")
    if len(birth) >= 8 and len(study) >= 8 and birth[:8].isdigit() and study[:8].isdigit():
        return (int(study[:4]) - int(birth[:4])) - ((study[4:8]) < (birth[4:8]))
    return None


def scan_dicom_folder(folder: str | Path) -> Manifest:
    """Build a manifest from every DICOM file under a folder, grouped by tags.

    Groups are Manufacturer, InstitutionName, ViewPosition, PatientSex and ``AgeBand``. There
    are no labels (accuracy is then not measured) and no ROIs besides the automatic border.

    Raises
    ------
    UsageError
        If the folder holds no DICOM file.
    """
    import pydicom

    folder = Path(folder)
    rows: list[AuditRow] = []
    problems: list[RowProblem] = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - any unreadable file is a non-DICOM to skip
            continue
        if "PixelData" not in ds and not hasattr(ds, "Rows"):
            problems.append(RowProblem(0, str(file), "DICOM file without an image"))
            continue
        groups = {t: str(getattr(ds, t, "") or "").strip() for t in DICOM_GROUP_TAGS}
        groups["AgeBand"] = age_band(_dicom_age(ds))
        rel = file.relative_to(folder).as_posix()
        rows.append(
            AuditRow(
                index=len(rows),
                key=f"{len(rows)}:{rel}",
                path=file,
                label=None,
                groups={k: v for k, v in groups.items() if v},
                patient=patient_hash(str(getattr(ds, "PatientID", "") or "")),
            )
        )
    if not rows:
        raise UsageError(
            "no DICOM image found in the folder", path=folder, fix="pass a folder of DICOM files"
        )
    columns = [*DICOM_GROUP_TAGS, "AgeBand"]
    used = [c for c in columns if any(c in r.groups for r in rows)]
    return Manifest(folder, rows, problems, used, [])


def load_dataset(source: str | Path) -> Manifest:
    """Read a manifest CSV or scan a DICOM folder, whichever ``source`` is.

    Raises
    ------
    UsageError
        If ``source`` does not exist or is neither.
    """
    source = Path(source)
    if source.is_dir():
        return scan_dicom_folder(source)
    if source.is_file():
        return read_manifest(source)
    raise UsageError(
        "dataset not found", path=source, fix="pass a manifest .csv or a folder of DICOM files"
    )
