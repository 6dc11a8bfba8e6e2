"""Review files (``.lucida``): what a reviewer looked at, so a colleague can see exactly that.

A review file is versioned JSON. It names the open files (and, for DICOM, the study, series and
instance UIDs that find them again on a PACS), the model card with the SHA-256 of the model it
loaded, and the view: method, parameters, layer, target and contrasted class, frame, window,
zoom and pan, ROIs, the distance measured, whether the image annotations show, opacity, colour
map, threshold and scale, with the trust metrics computed for that map, and the reviewer's
verdict (agree, disagree or unsure, with a comment).

Reopening never trusts anything the file says: it re-hashes the shown image and the model's
files and reports every difference (:func:`check_review`), and a model that needs trust is
asked about again by whoever loads it. Nothing here imports Qt; the window maps its state to
and from :class:`Review`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.core.atomic import write_atomic
from engine.core.case import Verdict
from engine.core.errors import LucidaError
from engine.core.hashing import sha256_file
from engine.core.jsonsafe import jsonable
from engine.core.versions import app_version

__all__ = [
    "REVIEW_FORMAT",
    "REVIEW_SUFFIX",
    "REVIEW_VERSION",
    "Review",
    "ReviewError",
    "ReviewFile",
    "check_review",
    "file_entry",
    "load_review",
    "save_review",
]

#: The ``format`` field every review file carries.
REVIEW_FORMAT = "lucida-review"
#: The schema version written; files of a newer version are refused, not half-read.
REVIEW_VERSION = 1
#: The file name suffix of review files.
REVIEW_SUFFIX = ".lucida"
#: The view fields a review restores, with the type each must have in the file.
VIEW_FIELDS = {
    "method": (str, type(None)), "layer": (str, type(None)), "target": (str, type(None)),
    "versus": (str, type(None)), "params": dict, "frame": int, "window": (list, type(None)),
    "invert": bool, "zoom": (float, int), "center": (list, type(None)), "fitted": bool,
    "rois": list, "opacity": (float, int), "colormap": str, "threshold": (float, int),
    "scale": str, "overlay": bool, "annotations": bool, "ruler": (list, type(None)),
}


class ReviewError(LucidaError):
    """A review file that cannot be read or written."""


@dataclass
class ReviewFile:
    """One opened file or folder, and how to recognise it again.

    Attributes
    ----------
    path : str
        The path as opened (absolute).
    sha256 : str
        The file's SHA-256 when it is a file; empty for a folder.
    uids : dict
        ``StudyInstanceUID``, ``SeriesInstanceUID`` and ``SOPInstanceUID`` of a DICOM file (a
        PACS finds the image by them when the file is gone), else empty.
    """

    path: str
    sha256: str = ""
    uids: dict = field(default_factory=dict)


@dataclass
class Review:
    """Everything a review file holds.

    Attributes
    ----------
    opened : list of ReviewFile
        The files and folders that were open, in the order they were opened.
    shown : ReviewFile or None
        The image on screen.
    model : dict
        ``spec`` (a card path or a built-in name), ``sha256`` (of the model file it loaded) and
        ``needs_trust`` (it was a pickle or other code-bearing format).
    view : dict
        The fields of :data:`VIEW_FIELDS`.
    metrics : dict or None
        The trust metrics computed for the shown map, as the trust panel had them.
    verdict : Verdict or None
        The reviewer's verdict on the shown case (files saved before verdicts have none).
    """

    opened: list[ReviewFile]
    shown: ReviewFile | None
    model: dict
    view: dict
    metrics: dict | None = None
    verdict: Verdict | None = None

    def as_dict(self) -> dict:
        """The JSON document, with format, version and the writing Lucida's version."""
        return {"format": REVIEW_FORMAT, "version": REVIEW_VERSION, "lucida": app_version(),
                **jsonable(asdict(self))}


def file_entry(path: str | Path, dataset=None, hash_file: bool = True) -> ReviewFile:
    """Describe an opened path for a review: its hash, and its UIDs when ``dataset`` is DICOM.

    Parameters
    ----------
    path : str or Path
        A file or a folder.
    dataset : pydicom.Dataset, optional
        The file's header, when it is DICOM.
    hash_file : bool
        Record the file's SHA-256 (reopening then notices a changed file).
    """
    path = Path(path).absolute()
    digest = sha256_file(path) if hash_file and path.is_file() else ""
    uids = {}
    if dataset is not None:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            value = getattr(dataset, keyword, None)
            if value:
                uids[keyword] = str(value)
    return ReviewFile(str(path), digest, uids)


def save_review(path: str | Path, review: Review) -> Path:
    """Write ``review`` to ``path`` (``.lucida`` is added when missing), all or nothing.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    if path.suffix != REVIEW_SUFFIX:
        path = path.with_name(path.name + REVIEW_SUFFIX)
    data = json.dumps(review.as_dict(), indent=2, sort_keys=True).encode()
    return write_atomic(path, data + b"\n")


def _fail(path: Path, what: str, fix: str = "open a review file that Lucida saved") -> ReviewError:
    return ReviewError(what, path=path, fix=fix)


def _file(path: Path, value, name: str) -> ReviewFile:
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise _fail(path, f"the review's {name} entry has no path")
    uids = value.get("uids") or {}
    if not isinstance(uids, dict):
        raise _fail(path, f"the review's {name} entry has malformed UIDs")
    return ReviewFile(value["path"], str(value.get("sha256") or ""),
                      {str(k): str(v) for k, v in uids.items()})


def load_review(path: str | Path) -> Review:
    """Read a review file, checking its format, version and every field it restores.

    Raises
    ------
    ReviewError
        The file is missing, not JSON, not a review, of a newer version, or malformed; the
        message names the file and the field.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(path, "no such review file", "check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"not a readable review file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != REVIEW_FORMAT:
        raise _fail(path, "not a Lucida review file")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise _fail(path, "the review file has no valid version")
    if version > REVIEW_VERSION:
        raise _fail(path, f"the review was saved by a newer Lucida (format {version}; this one "
                    f"reads up to {REVIEW_VERSION})", "update Lucida to open it")
    opened = doc.get("opened")
    if not isinstance(opened, list) or not opened:
        raise _fail(path, "the review names no open files")
    files = [_file(path, item, "opened") for item in opened]
    shown = None if doc.get("shown") is None else _file(path, doc["shown"], "shown")
    model = doc.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("spec"), str):
        raise _fail(path, "the review names no model")
    view = doc.get("view")
    if not isinstance(view, dict):
        raise _fail(path, "the review has no view")
    for name, kinds in VIEW_FIELDS.items():
        if name in view and not isinstance(view[name], kinds):
            raise _fail(path, f"the review's view field {name!r} is malformed")
    metrics = doc.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise _fail(path, "the review's metrics are malformed")
    return Review(files, shown, {"spec": model["spec"], "sha256": str(model.get("sha256", "")),
                                 "needs_trust": bool(model.get("needs_trust", False))},
                  view, metrics, _verdict(path, doc.get("verdict")))


def _verdict(path: Path, value) -> Verdict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("value"), str) \
            or not isinstance(value.get("comment", ""), str) \
            or not isinstance(value.get("recorded", ""), str):
        raise _fail(path, "the review's verdict is malformed")
    try:
        return Verdict.from_dict(value)
    except ValueError as exc:
        raise _fail(path, f"the review's verdict is malformed ({exc})") from None


def check_review(review: Review, model_sha256: str | None = None) -> list[str]:
    """What differs between a review and the files on this machine, one line each.

    Parameters
    ----------
    review : Review
        The review being reopened.
    model_sha256 : str, optional
        The SHA-256 of the model as loaded now; compared with the review's when given.

    Returns
    -------
    list of str
        Empty when every file is where it was and unchanged.
    """
    problems = []
    entries = review.opened + ([review.shown] if review.shown is not None
                               and review.shown.path not in {e.path for e in review.opened}
                               else [])
    for entry in entries:
        if not Path(entry.path).exists():
            where = (f"; study {entry.uids['StudyInstanceUID']} can be retrieved from a PACS"
                     if "StudyInstanceUID" in entry.uids else "")
            problems.append(f"{entry.path}: no longer exists{where}")
    shown = review.shown
    if shown is not None and shown.sha256 and Path(shown.path).is_file():
        if sha256_file(shown.path) != shown.sha256:
            problems.append(f"{shown.path}: the image changed since the review was saved "
                            "(its SHA-256 differs); the maps you see are of the new file")
    expected = review.model.get("sha256")
    if model_sha256 is not None and expected and model_sha256 != expected:
        problems.append(f"{review.model['spec']}: the model changed since the review was saved "
                        "(its SHA-256 differs); its maps and predictions may differ")
    return problems
