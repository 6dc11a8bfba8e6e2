"""Reading and preprocessing audit rows: what a decode worker does, without the model.

:func:`load_batch` turns manifest rows into one batched model input; an unreadable row becomes
an error record, never an exception. It needs only an :class:`InputRecipe` (the card's input
spec, intended use and classes), so it runs anywhere the rows can be read: in the audit's
process, in its decode processes (:mod:`engine.audit.decode_pool`) or in Ray tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.audit.body_mask import body_mask
from engine.audit.identifiers import record_key, scrub_paths
from engine.audit.manifest import AuditRow
from engine.core.errors import LucidaError, UsageError
from engine.models.intended_use import IntendedUse, check_input
from engine.models.preprocess import InputSpec, prepare_array

#: Separates the positive classes of a multi-label manifest label (``effusion|nodule``).
LABEL_SEPARATOR = "|"


def label_set(label: str | None, classes: Sequence[str]) -> list[int] | None:
    """Return the class indices a manifest label names (``a|b`` for several); None if unlabelled.

    Raises
    ------
    UsageError
        A name that is not one of ``classes``.
    """
    if label is None:
        return None
    return sorted({_label_index(part.strip(), classes)
                   for part in label.split(LABEL_SEPARATOR) if part.strip()})


def _label_index(label: str | None, classes: Sequence[str]) -> int | None:
    """Return the class index of a manifest label (name or digits); None when unlabelled.

    A multi-label label (classes joined by :data:`LABEL_SEPARATOR`) has no one index: its
    classes are checked and None is returned.
    """
    if label is None:
        return None
    if LABEL_SEPARATOR in label:
        label_set(label, classes)
        return None
    if label in classes:
        return list(classes).index(label)
    if label.isdigit() and int(label) < len(classes):
        return int(label)
    raise UsageError(
        f"label {label!r} is not one of the model's classes ({', '.join(classes)})"
    )


def record_base(row: AuditRow, digest: str | None, keep_identifiers: bool = False) -> dict:
    """The fields every record of ``row`` starts with: key, row, content digest (and path).

    The path is there only with ``keep_identifiers``; the digest names the image otherwise.
    """
    rec = {"key": record_key(row.index, digest), "row": row.index, "digest": digest}
    if keep_identifiers:
        rec["path"] = str(row.path)
    return rec


def error_record(row: AuditRow, reason: str, digest: str | None = None,
                 keep_identifiers: bool = False) -> dict:
    """Return the record stored for an image that could not be audited.

    Without ``keep_identifiers`` a path the reason quotes (the image's, a mask's) is replaced.
    """
    if not keep_identifiers:
        reason = scrub_paths(reason, [row.path, *row.masks.values()])
    return {**record_base(row, digest, keep_identifiers), "error": reason}


#: DICOM attributes that name where and how an image was taken: kept in each record, so that
#: discovery can test whether a cluster of heatmaps is over-represented in one of them.
ACQUISITION_TAGS = ("Manufacturer", "ManufacturerModelName", "StationName", "InstitutionName",
                    "ViewPosition", "Modality", "BodyPartExamined")


def acquisition_attributes(image) -> dict[str, str]:
    """The :data:`ACQUISITION_TAGS` a DICOM image carries (non-empty ones); {} for rasters."""
    ds = getattr(image, "dataset", None)
    if ds is None:
        return {}
    out = {}
    for tag in ACQUISITION_TAGS:
        try:
            value = str(ds.get(tag, "") or "").strip()
        except Exception:  # noqa: BLE001 - a corrupt element must not hide the others
            value = ""
        if value:
            out[tag] = value
    return out


def content_digest(path) -> str | None:
    """The content digest of the image at ``path`` (its case identity), or None if unreadable."""
    from engine.studies.image import open_image

    try:
        return open_image(path).content_id(0).digest
    except Exception:  # noqa: BLE001 - an unreadable file is recorded as such, not raised
        return None


@dataclass(frozen=True)
class InputRecipe:
    """How to turn an image into one model's input, without the model's weights.

    Reading and preprocessing need only the card's input spec, intended use and classes, so
    decode workers (threads here, Ray tasks on a cluster) get this small picklable object and
    never the model.
    """

    spec: InputSpec
    intended_use: IntendedUse | None
    classes: tuple[str, ...]
    #: Whether records of failed reads carry the path (see :func:`error_record`).
    keep_identifiers: bool = False

    @classmethod
    def from_model(cls, model, keep_identifiers: bool = False) -> InputRecipe:
        """The recipe of a loaded model; ``keep_identifiers`` as the audit's settings say."""
        return cls(model.input, getattr(model, "intended_use", None), tuple(model.classes),
                   keep_identifiers)

    def prepare(self, image) -> tuple[torch.Tensor, dict, np.ndarray | None]:
        """Return the (1, C, H, W) CPU model input, the intended-use check of ``image`` and
        its body mask (:func:`engine.audit.body_mask.body_mask`, from the same pixels)."""
        unit = image.model_input(0, window=self.spec.window)
        x = prepare_array(unit, self.spec)
        return x, check_input(self.intended_use, image, x, self.spec).as_dict(), body_mask(unit)


@dataclass
class LoadedBatch:
    """Rows of a batch read and preprocessed: what the model pass needs, and the failures."""

    rows: list[AuditRow]
    errors: dict[int, dict]
    ready: list[tuple[int, tuple[int, ...], int | None]]  # (position, image shape, label index)
    x: torch.Tensor | None
    intended_use: dict[int, dict] = field(default_factory=dict)  # per position
    digests: dict[int, str] = field(default_factory=dict)  # per position, of opened images
    keep_identifiers: bool = False
    bodies: dict[int, np.ndarray | None] = field(default_factory=dict)  # per position
    attributes: dict[int, dict[str, str]] = field(default_factory=dict)  # per position


def load_batch(rows: Sequence[AuditRow], recipe: InputRecipe) -> LoadedBatch:
    """Open and preprocess rows; an unreadable row becomes an error record, not an exception.

    Each opened image's content digest is kept for its record; paths go into the records
    only with ``recipe.keep_identifiers``.
    """
    from engine.studies.image import open_image

    keep_identifiers = recipe.keep_identifiers
    errors, ready, tensors, uses, digests, bodies, attributes = {}, [], [], {}, {}, {}, {}
    for pos, row in enumerate(rows):
        try:
            image = open_image(row.path, decode=True)
            digests[pos] = image.content_id(0).digest
            label = _label_index(row.label, recipe.classes)
            x, uses[pos], bodies[pos] = recipe.prepare(image)
            attributes[pos] = acquisition_attributes(image)
            tensors.append(x)
            ready.append((pos, tuple(image.shape), label))
        except Exception as exc:  # noqa: BLE001 - one broken file must not stop the audit
            reason = exc.one_line() if isinstance(exc, LucidaError) else \
                f"cannot read the image ({type(exc).__name__}: {exc})"
            # Keyed as resume keys it (header only), even when decoding is what failed.
            digest = digests.get(pos) or content_digest(row.path)
            errors[pos] = error_record(row, reason, digest, keep_identifiers)
    x = torch.cat(tensors, 0) if tensors else None
    return LoadedBatch(list(rows), errors, ready, x, uses, digests, keep_identifiers, bodies,
                       attributes)
