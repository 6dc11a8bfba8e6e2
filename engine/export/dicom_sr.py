"""The explanation as a DICOM Comprehensive SR, built and checked by highdicom.

It records what a reader of the figure would ask: which model (name and SHA-256), what it
predicted (every class probability), which class was explained, with which method at which layer,
the trust metrics when they were computed, and which images it is about (the source image and
the Parametric Maps).

Concepts DICOM has codes for use them (DCM 111001 Algorithm Name, 111003 Algorithm Version,
121112 Source of Measurement); the others use Lucida's private coding scheme ``99LUCIDA``.
"""

from __future__ import annotations

import datetime
import math
import warnings

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from engine.core.case import Verdict
from engine.core.errors import ExportError
from engine.core.versions import app_version
from engine.export.content import intended_use_of
from engine.export.validation import validation_section

#: Comprehensive SR Storage.
SR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"
#: Series Number of the reports Lucida writes.
SR_SERIES_NUMBER = 9003
#: Series Description of the report, as a PACS lists the series.
SR_SERIES_DESCRIPTION = "Lucida explanation report"
#: Lucida's private coding scheme (the ``99`` prefix marks a private scheme in DICOM PS3.16).
SCHEME = "99LUCIDA"

_C = hd.sr.CodedConcept
REPORT = _C("LUC0001", SCHEME, "Model explanation report")
ALGORITHM_NAME = _C("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = _C("111003", "DCM", "Algorithm Version")
MODEL_SHA256 = _C("LUC0002", SCHEME, "Model SHA-256")
PREDICTION = _C("LUC0003", SCHEME, "Prediction")
CLASS_PROBABILITY = _C("LUC0004", SCHEME, "Class probability")
CLASS_NAME = _C("LUC0005", SCHEME, "Class")
TARGET = _C("LUC0006", SCHEME, "Explained class")
EXPLANATION = _C("LUC0007", SCHEME, "Explanation map")
METHOD = _C("LUC0008", SCHEME, "Explanation method")
LAYER = _C("LUC0009", SCHEME, "Model layer")
MAP = _C("LUC0010", SCHEME, "Parametric map")
TRUST = _C("LUC0011", SCHEME, "Trust metrics")
SOURCE = _C("121112", "DCM", "Source of Measurement")
REVIEW = _C("LUC0012", SCHEME, "Reviewer verdict")
VERDICT = _C("LUC0013", SCHEME, "Verdict")
VERDICT_COMMENT = _C("LUC0014", SCHEME, "Reviewer comment")
VERDICT_RECORDED = _C("LUC0015", SCHEME, "Verdict recorded")
VALIDATION = _C("LUC0016", SCHEME, "Method and its validation")
#: The coded answers of :data:`engine.core.case.VERDICTS`.
VERDICT_CODES = {
    "agree": _C("LUC0020", SCHEME, "Reviewer agrees"),
    "disagree": _C("LUC0021", SCHEME, "Reviewer disagrees"),
    "unsure": _C("LUC0022", SCHEME, "Reviewer unsure"),
}
_NO_UNITS = codes.UCUM.NoUnits
# Numbers in the metrics dict that identify rather than measure.
_NOT_METRICS = {"target", "target_index", "frame"}


def _metric_concept(name: str) -> hd.sr.CodedConcept:
    return _C(f"LUCM-{name}"[:16], SCHEME, name.replace("_", " "))


def explanation_sr(
    result,
    source: Dataset,
    maps: list[Dataset],
    *,
    series_uid: str,
    metrics: dict | None = None,
    frame: int = 0,
    instance_number: int = 1,
    series_number: int = SR_SERIES_NUMBER,
    verdict: Verdict | None = None,
) -> Dataset:
    """Build the Comprehensive SR of one explained image.

    Parameters
    ----------
    result : ExplainResult
        The explanation (model, prediction, target, maps, parameters).
    source : pydicom.Dataset
        The explained image's header; patient and study are copied from it, so pass a
        de-identified copy for a research export.
    maps : list of pydicom.Dataset
        The Parametric Maps of ``result.maps``, in the same order.
    series_uid : str
        Series Instance UID of the new series.
    metrics : dict, optional
        Trust metrics (``method``, ``layer`` and numeric measures), recorded when given.
    frame : int
        Frame of a multi-frame source that was explained (0-based).
    instance_number, series_number : int
        Instance and Series Number.
    verdict : Verdict, optional
        The reviewer's verdict: a ``Reviewer verdict`` container with the coded answer, the
        comment (pass it scrubbed for a research export) and when it was given.

    Returns
    -------
    highdicom.sr.ComprehensiveSR
        The report (a pydicom Dataset).

    Raises
    ------
    ExportError
        If highdicom refuses the content.
    """
    frames = [frame + 1] if int(source.get("NumberOfFrames", 1) or 1) > 1 else None
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    items = [
        hd.sr.TextContentItem(ALGORITHM_NAME, str(result.model.get("name") or "unnamed"),
                              relationship_type=contains),
        hd.sr.TextContentItem(ALGORITHM_VERSION, f"Lucida {app_version()}",
                              relationship_type=contains),
        hd.sr.TextContentItem(MODEL_SHA256, str(result.model.get("sha256") or "unknown"),
                              relationship_type=contains),
        hd.sr.ImageContentItem(SOURCE, source.SOPClassUID, source.SOPInstanceUID,
                               referenced_frame_numbers=frames, relationship_type=contains),
    ]
    prediction = hd.sr.ContainerContentItem(PREDICTION, relationship_type=contains)
    prediction.ContentSequence = hd.sr.ContentSequence([
        _probability(name, score) for name, score in zip(result.classes, result.scores,
                                                         strict=True)
    ])
    items.append(prediction)
    items.append(hd.sr.TextContentItem(TARGET, str(result.target_name),
                                       relationship_type=contains))
    for item, pm in zip(result.maps.values(), maps, strict=True):
        block = hd.sr.ContainerContentItem(EXPLANATION, relationship_type=contains)
        block.ContentSequence = hd.sr.ContentSequence([
            hd.sr.TextContentItem(METHOD, item.method, relationship_type=contains),
            hd.sr.TextContentItem(LAYER, item.layer, relationship_type=contains),
            hd.sr.ImageContentItem(MAP, pm.SOPClassUID, pm.SOPInstanceUID,
                                   relationship_type=contains),
        ])
        items.append(block)
    if metrics:
        trust = hd.sr.ContainerContentItem(TRUST, relationship_type=contains)
        children = [hd.sr.TextContentItem(concept, str(metrics[key]), relationship_type=contains)
                    for key, concept in (("method", METHOD), ("layer", LAYER)) if key in metrics]
        for name, value in metrics.items():
            if name in _NOT_METRICS or isinstance(value, bool) \
                    or not isinstance(value, int | float):
                continue
            if math.isfinite(float(value)):
                children.append(hd.sr.NumContentItem(_metric_concept(name), float(value),
                                                     _NO_UNITS, relationship_type=contains))
        trust.ContentSequence = hd.sr.ContentSequence(children)
        items.append(trust)
    items.append(_validation(result, metrics))
    if verdict is not None:
        items.append(_verdict(verdict))
    root = hd.sr.ContainerContentItem(REPORT)
    root.ContentSequence = hd.sr.ContentSequence(items)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sr = hd.sr.ComprehensiveSR(
                evidence=[source, *maps],
                content=root,
                series_instance_uid=series_uid,
                series_number=series_number,
                sop_instance_uid=generate_uid(),
                instance_number=instance_number,
                manufacturer="Lucida",
                is_complete=True,
                series_description=SR_SERIES_DESCRIPTION,
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot build the explanation report ({exc})",
                          fix="report this with the source image") from exc
    return sr


def _validation(result, metrics: dict | None) -> hd.sr.ContainerContentItem:
    """The report's "Method and its validation" section (CLAIM 2024 item 31), one text item
    per row."""
    methods = list(dict.fromkeys(m for m, _ in result.maps))
    section = validation_section(
        method=",".join(methods), layer=",".join(dict.fromkeys(lay for _, lay in result.maps)),
        target=str(result.target_name), versus=getattr(result, "versus", None),
        params={m: (result.params or {}).get(m, {}) for m in methods}, metrics=metrics,
        intended_use=intended_use_of(result))
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    block = hd.sr.ContainerContentItem(VALIDATION, relationship_type=contains)
    block.ContentSequence = hd.sr.ContentSequence([
        hd.sr.TextContentItem(_C(f"LUCV-{label.replace(' ', '')}"[:16], SCHEME, label), text,
                              relationship_type=contains)
        for label, text in section["rows"]])
    return block


def _verdict(verdict: Verdict) -> hd.sr.ContainerContentItem:
    """The reviewer's verdict as a container: coded answer, comment, time it was given."""
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    children = [hd.sr.CodeContentItem(VERDICT, VERDICT_CODES[verdict.value],
                                      relationship_type=contains)]
    if verdict.comment:
        children.append(hd.sr.TextContentItem(VERDICT_COMMENT, verdict.comment,
                                              relationship_type=contains))
    if verdict.recorded:
        try:
            when = datetime.datetime.fromisoformat(verdict.recorded)
        except ValueError:
            when = None  # a time Lucida did not write is left out rather than guessed
        if when is not None:
            children.append(hd.sr.DateTimeContentItem(VERDICT_RECORDED, when,
                                                      relationship_type=contains))
    block = hd.sr.ContainerContentItem(REVIEW, relationship_type=contains)
    block.ContentSequence = hd.sr.ContentSequence(children)
    return block


def _probability(name: str, score: float) -> hd.sr.NumContentItem:
    item = hd.sr.NumContentItem(CLASS_PROBABILITY, float(score), _NO_UNITS,
                                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    item.ContentSequence = hd.sr.ContentSequence([
        hd.sr.TextContentItem(CLASS_NAME, str(name),
                              relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES)
    ])
    return item
