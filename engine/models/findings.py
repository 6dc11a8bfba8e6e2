"""How a prediction reads: the table of class scores, and a multi-label model's findings.

A single-label (softmax) model's scores sum to one and the table lists them in class order. A
multi-label (sigmoid) model, such as a chest X-ray model with 14 to 18 pathologies, gives each
class its own probability: the table lists every class, most probable first, and marks as a
*finding* each class whose probability is at or above the threshold (the card's ``threshold``,
0.5 by default). The window, the reports and ``result.json`` read the same rows from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.core.errors import UsageError

#: Probability at or above which a multi-label (sigmoid) class counts as a finding.
DEFAULT_THRESHOLD = 0.5

__all__ = ["PredictionRow", "PredictionTable", "check_threshold", "findings", "is_multilabel",
           "prediction_table"]


def is_multilabel(output: str | None, task: str | None = "classification") -> bool:
    """Whether scores are independent per-class probabilities (a sigmoid classifier)."""
    return output == "sigmoid" and (task or "classification") == "classification"


def check_threshold(value: float) -> float:
    """Return ``value`` as a threshold, a probability strictly between 0 and 1.

    Raises
    ------
    UsageError
        When it is not one.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 < number < 1.0:
        raise UsageError(f"threshold {value!r} is not a probability between 0 and 1",
                         fix="give a number such as 0.5")
    return number


@dataclass(frozen=True)
class PredictionRow:
    """One class of a prediction as the table shows it."""

    index: int
    name: str
    score: float
    #: The class being explained.
    explained: bool
    #: The class with the highest score.
    top: bool
    #: At or above the threshold (multi-label); None for a single-label model.
    positive: bool | None


@dataclass(frozen=True)
class PredictionTable:
    """Every class of a prediction, in the order to show them."""

    rows: tuple[PredictionRow, ...]
    multilabel: bool
    #: The threshold the rows were marked with; None for a single-label model.
    threshold: float | None

    def positives(self) -> list[PredictionRow]:
        """The findings: rows at or above the threshold, most probable first."""
        return [row for row in self.rows if row.positive]

    def summary(self) -> str:
        """One line: how many findings at which threshold, and which ("" if single-label)."""
        if not self.multilabel:
            return ""
        found = self.positives()
        names = ", ".join(row.name for row in found) if found else "none"
        return f"{len(found)} of {len(self.rows)} at ≥ {self.threshold:.2f}: {names}"


def prediction_table(classes: Sequence[str], scores: Sequence[float], target: int | None,
                     output: str | None = "softmax", threshold: float = DEFAULT_THRESHOLD,
                     task: str | None = "classification") -> PredictionTable:
    """Arrange a prediction for display.

    Parameters
    ----------
    classes : sequence of str
        Class names in output order.
    scores : sequence of float
        One score per class: probabilities (softmax or sigmoid), or pixel shares.
    target : int or None
        Index of the explained class.
    output : {"softmax", "sigmoid"}
        The model card's ``output``.
    threshold : float
        Probability at or above which a sigmoid model's class is a finding.
    task : str
        ``classification`` or ``segmentation`` (whose pixel shares are never findings).

    Returns
    -------
    PredictionTable
        Single-label: rows in class order, ``positive`` None. Multi-label: rows sorted by
        probability (highest first; ties keep class order), each marked ``positive`` against
        ``threshold``.
    """
    values = [float(s) for s in scores]
    top = max(range(len(values)), key=values.__getitem__) if values else -1
    multi = is_multilabel(output, task)
    cut = check_threshold(threshold) if multi else None
    rows = [PredictionRow(index=i, name=str(name), score=value, explained=i == target,
                          top=i == top, positive=(value >= cut) if multi else None)
            for i, (name, value) in enumerate(zip(classes, values, strict=False))]
    if multi:
        rows.sort(key=lambda row: (-row.score, row.index))
    return PredictionTable(rows=tuple(rows), multilabel=multi, threshold=cut)


def findings(model: dict, prediction: dict[str, float],
             threshold: float | None = None) -> dict | None:
    """A multi-label result's findings, as reports and ``result.json`` record them.

    Parameters
    ----------
    model : dict
        The model's identity (``LoadedModel.describe()``): ``output``, ``task``, ``threshold``.
    prediction : dict
        Class name -> probability.
    threshold : float, optional
        The threshold the reviewer chose; the model's (or 0.5) otherwise.

    Returns
    -------
    dict or None
        ``{"threshold": t, "positive": [{"class": name, "probability": p}, ...]}``, most
        probable first; None for a single-label model.
    """
    if not is_multilabel(model.get("output"), model.get("task")):
        return None
    cut = threshold if threshold is not None else model.get("threshold", DEFAULT_THRESHOLD)
    table = prediction_table(list(prediction), list(prediction.values()), None, "sigmoid",
                             DEFAULT_THRESHOLD if cut is None else cut)
    return {"threshold": table.threshold,
            "positive": [{"class": row.name, "probability": row.score}
                         for row in table.positives()]}
