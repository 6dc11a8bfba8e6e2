"""Scoring a model on a labelled manifest: accuracy overall, per group, and a confusion matrix.

The manifest is read by :func:`engine.audit.manifest.read_manifest`: ``path`` and ``label``
columns, paths relative to the manifest's folder, and group columns (``site``, for example)
that define groups named ``column=value``. Region-of-interest columns (``*_box``, ``*_mask``)
are not groups. A bad row is reported under ``failed`` and the others are scored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.audit.manifest import read_manifest
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import LucidaError, UsageError
from engine.explain import core
from engine.models.loaded import LoadedModel


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
    dataset = read_manifest(manifest, labelled=True)
    rows = dataset.rows
    unknown = sorted({r.label for r in rows} - set(model.classes))
    if unknown:
        raise UsageError(
            f"labels {', '.join(unknown)} are not classes of model {model.name}",
            path=manifest, fix="use labels among: " + ", ".join(model.classes),
        )
    failed = [[p.path, p.one_line()] for p in dataset.problems]
    done, inputs = [], []
    preds: list[int] = []

    def flush():
        if inputs:
            # The explain core's forward-only pass, the one every prediction goes through.
            scores = core.predict(model, torch.cat(inputs))
            # -1 marks an image whose scores are NaN or infinite: no prediction to score.
            finite = torch.isfinite(scores).all(1)
            preds.extend(torch.where(finite, scores.argmax(1), -1).tolist())
            inputs.clear()

    for i, row in enumerate(rows):
        if cancel is not None:
            cancel.check()
        try:
            inputs.append(model.preprocess(open_image(row.path)))
            done.append(row)
        except LucidaError as exc:
            failed.append([str(row.path), exc.one_line()])
        if len(inputs) >= batch:
            flush()
        if progress is not None:
            progress((i + 1) / len(rows), row.path.name)
    flush()
    k = len(model.classes)
    matrix = [[0] * k for _ in range(k)]
    groups: dict[str, list[int]] = {}
    scored = []
    for row, pred in zip(done, preds, strict=True):
        if pred < 0:
            path = row.path
            failed.append([str(path), f"{path}: the model's scores are NaN or infinite. "
                                      "Fix: check the model's weights and its output"])
        else:
            scored.append((row, pred))
    done = [row for row, _ in scored]
    for row, pred in scored:
        truth = model.classes.index(row.label)
        matrix[truth][pred] += 1
        for col, value in row.groups.items():
            hit = groups.setdefault(f"{col}={value}", [0, 0])
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
