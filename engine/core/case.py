"""What a case is: the content explained, the model, and what is explained, as frozen values.

A case is identified by its content, never by its path. Caches, overlay owners, metrics,
reports, review files and audit records key on :class:`Case`; paths are for display only.

- :class:`ContentId` names what was opened: a DICOM instance and frame, a series and its
  geometry, or the digest of a raster file or an in-memory array.
- :class:`Target` is what is explained: the class, the contrasted class (``versus``) and the
  region of interest, one value instead of three arguments.
- :class:`Case` joins them with the model's hash, and optionally the method and parameters of
  one map.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["VERDICTS", "Case", "ContentId", "Target", "Verdict", "array_digest", "bytes_digest",
           "content_of", "freeze"]


def bytes_digest(*parts: bytes | str) -> str:
    """SHA-256 hex digest of the parts, each length-prefixed so that no two splits collide."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def array_digest(values: np.ndarray) -> str:
    """SHA-256 hex digest of an array's dtype, shape and values (C order)."""
    values = np.ascontiguousarray(values)
    return bytes_digest(str(values.dtype), repr(tuple(values.shape)), values.tobytes())


def freeze(value: Any) -> Any:
    """A hashable, order-independent copy of nested dicts, lists and sets of plain values."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return tuple(sorted(freeze(v) for v in value))
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class ContentId:
    """The content of one image frame or one volume, independent of where it was read from.

    Attributes
    ----------
    kind : str
        ``"instance"`` (a DICOM instance), ``"series"`` (a volume from a DICOM series),
        ``"file"`` (a raster or NIfTI file) or ``"array"`` (pixels in memory).
    digest : str
        SHA-256 hex digest of the content: the file's bytes, the array's values, or for a
        series its UID, instances and geometry.
    uid : str
        The SOP or Series Instance UID where there is one (``""`` otherwise); for display.
    frame : int
        Frame of a multi-frame image (0 otherwise).
    """

    kind: str
    digest: str
    uid: str = ""
    frame: int = 0

    def at_frame(self, frame: int) -> ContentId:
        """The same content at another frame."""
        return replace(self, frame=int(frame))

    @property
    def short(self) -> str:
        """A short stable label (``instance:1a2b3c4d5e6f#2``) for logs and tooltips."""
        return f"{self.kind}:{self.digest[:12]}" + (f"#{self.frame}" if self.frame else "")

    def as_dict(self) -> dict:
        """JSON-ready form (review files, ``result.json``)."""
        return {"kind": self.kind, "digest": self.digest, "uid": self.uid, "frame": self.frame}

    @classmethod
    def from_dict(cls, data: dict) -> ContentId:
        """Inverse of :meth:`as_dict`."""
        return cls(kind=str(data["kind"]), digest=str(data["digest"]),
                   uid=str(data.get("uid", "")), frame=int(data.get("frame", 0)))


@dataclass(frozen=True)
class Target:
    """What a map explains: a class, optionally against a second class, optionally in a region.

    Attributes
    ----------
    label : str or int
        ``"top"`` (the highest-scoring class), a class index or a class name.
    versus : str or int or None
        A contrasted class: the map then explains ``logit[label] - logit[versus]``.
    roi : tuple of float or None
        ``(x0, y0, x1, y1)`` image pixels: the region whose logits a segmentation model's map
        explains, and where localisation metrics look.
    """

    label: str | int = "top"
    versus: str | int | None = None
    roi: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.roi is not None:
            object.__setattr__(self, "roi", tuple(float(v) for v in self.roi))
        if isinstance(self.label, np.integer):
            object.__setattr__(self, "label", int(self.label))

    def resolved(self, label: int, versus: int | None) -> Target:
        """The same target with class indices in place of names or ``top``."""
        return replace(self, label=int(label), versus=None if versus is None else int(versus))

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {"label": self.label, "versus": self.versus,
                "roi": None if self.roi is None else list(self.roi)}


@dataclass(frozen=True)
class Case:
    """One case: this content, this model, this target, and optionally one method's map.

    Attributes
    ----------
    content : ContentId
        What was explained.
    model : str
        The model's hash (see :func:`engine.models.loaded.model_hash`).
    target : Target
        What was explained about it.
    method : str
        Registry key of the explainer (``""`` for the capture every method shares).
    params : tuple
        The method's parameters, frozen with :func:`freeze`.
    """

    content: ContentId
    model: str
    target: Target = field(default_factory=Target)
    method: str = ""
    params: tuple = ()

    @property
    def capture(self) -> Case:
        """The case without its method: what one capture (forward and backward pass) serves."""
        return replace(self, method="", params=())

    def with_method(self, method: str, params: dict | tuple = ()) -> Case:
        """This case for one method and its parameters."""
        return replace(self, method=method, params=freeze(params))

    @property
    def key(self) -> str:
        """A stable hex digest of the whole case, for file names and records."""
        return bytes_digest(repr(self))[:16]

    def as_dict(self) -> dict:
        """JSON-ready form (review files, reports, audit records)."""
        return {"content": self.content.as_dict(), "model_sha256": self.model,
                "target": self.target.as_dict(), "method": self.method,
                "params": dict(self.params) if self.params else {}, "key": self.key}


#: The answers a reviewer can give about a case's prediction and map.
VERDICTS = ("agree", "disagree", "unsure")


@dataclass(frozen=True)
class Verdict:
    """The reviewer's verdict on a case: agree, disagree or unsure, with a comment.

    Attributes
    ----------
    value : str
        One of :data:`VERDICTS`.
    comment : str
        Free text; de-identified outputs scrub it like any other free text.
    recorded : str
        ISO 8601 time it was given (``""`` when unknown).
    """

    value: str
    comment: str = ""
    recorded: str = ""

    def __post_init__(self) -> None:
        if self.value not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {self.value!r}")

    def as_dict(self) -> dict:
        """JSON-ready form (review files, ``result.json``, reports)."""
        return {"value": self.value, "comment": self.comment, "recorded": self.recorded}

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        """Inverse of :meth:`as_dict`."""
        return cls(value=str(data["value"]), comment=str(data.get("comment", "")),
                   recorded=str(data.get("recorded", "")))


def content_of(image: Any, frame: int = 0) -> ContentId:
    """The content identity of one frame of ``image``.

    Images, slices and volumes opened by :mod:`engine.studies` name their own content
    (``content_id``). Anything else that offers ``model_input`` (pixels held in a notebook,
    say) is named by the values it gives the model, never by its name or path.
    """
    own = getattr(image, "content_id", None)
    if own is not None:
        return own(frame)
    values = np.asarray(image.model_input(frame, window="default"))
    return ContentId("array", array_digest(values), frame=int(frame))
