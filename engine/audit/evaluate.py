"""Scoring a model on a labelled manifest: accuracy overall, per group, and a confusion matrix.

A manifest is a CSV with at least ``path`` and ``label`` columns; paths are relative to the
manifest's folder. Every other column except ``*_box`` columns (``site``, for example) defines
groups named ``column=value``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import LucidaError, UsageError
from engine.models.loaded import LoadedModel


def read_manifest(manifest: str | Path) -> list[dict[str, str]]:
    """Read a manifest CSV into rows; UsageError if it lacks ``path`` or ``label``."""
    manifest = Path(manifest)
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read the manifest ({exc})", path=manifest,
                         fix="give a CSV file with path and label columns") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise UsageError("the manifest needs a header with path and label columns and rows",
                         path=manifest, fix="write path,label[,site,...] then one row per image")
    return rows


def evaluate_manifest(
    manifest: str | Path,
    model: LoadedModel,
    *,
    batch: int = 32,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> dict:
    """Classify every image of a manifest and score the predictions.

    Parameters
    ----------
    manifest : str or Path
        CSV with ``path`` and ``label`` columns (and optional group columns).
    model : LoadedModel
        The classifier; labels must be among its classes.
    batch : int
        Images per forward pass.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    dict
        ``{"n", "accuracy", "by_group": {"site=A": {"n", "accuracy"}, ...},
        "confusion": {"classes", "matrix"}, "failed": [[path, reason], ...]}``; matrix rows are
        true classes, columns predicted ones.
    """
    from engine.studies.image import open_image

    manifest = Path(manifest)
    rows = read_manifest(manifest)
    unknown = sorted({r["label"] for r in rows} - set(model.classes))
    if unknown:
        raise UsageError(
            f"labels {', '.join(unknown)} are not classes of model {model.name}",
            path=manifest, fix="use labels among: " + ", ".join(model.classes),
        )
    group_cols = [c for c in rows[0] if c not in ("path", "label") and not c.endswith("_box")]
    done, failed, inputs = [], [], []
    preds: list[int] = []

    def flush():
        if inputs:
            with torch.inference_mode():
                logits = model.logits(torch.cat(inputs))
                # -1 marks an image whose scores are NaN or infinite: no prediction to score.
                finite = torch.isfinite(logits).all(1)
                preds.extend(torch.where(finite, logits.argmax(1), -1).tolist())
            inputs.clear()

    for i, row in enumerate(rows):
        if cancel is not None:
            cancel.check()
        path = manifest.parent / row["path"]
        try:
            inputs.append(model.preprocess(open_image(path)))
            done.append(row)
        except LucidaError as exc:
            failed.append([str(path), exc.one_line()])
        if len(inputs) >= batch:
            flush()
        if progress is not None:
            progress((i + 1) / len(rows), row["path"])
    flush()
    k = len(model.classes)
    matrix = [[0] * k for _ in range(k)]
    groups: dict[str, list[int]] = {}
    scored = []
    for row, pred in zip(done, preds, strict=True):
        if pred < 0:
            path = manifest.parent / row["path"]
            failed.append([str(path), f"{path}: the model's scores are NaN or infinite. "
                                      "Fix: check the model's weights and its output"])
        else:
            scored.append((row, pred))
    done = [row for row, _ in scored]
    for row, pred in scored:
        truth = model.classes.index(row["label"])
        matrix[truth][pred] += 1
        for col in group_cols:
            hit = groups.setdefault(f"{col}={row[col]}", [0, 0])
            hit[0] += 1
            hit[1] += int(truth == pred)
    correct = sum(matrix[i][i] for i in range(k))
    return {
        "n": len(done),
        "accuracy": correct / len(done) if done else 0.0,
        "by_group": {
            name: {"n": n, "accuracy": ok / n} for name, (n, ok) in sorted(groups.items())
        },
        "confusion": {"classes": list(model.classes), "matrix": matrix},
        "failed": failed,
    }
