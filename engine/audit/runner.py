"""Run a model and an explainer over a dataset, batched, streaming results to disk.

The per-image work, :func:`audit_batch`, is a pure function of (rows, model, method, layer,
parameters): it returns records and heatmaps and touches no shared state. :func:`run_audit`
feeds it batches, stores each batch as it finishes (so a cancelled or killed run keeps what it
did and ``resume`` continues it), and merges the stored records at the end. Another backend
can shard the rows across processes or machines and merge with :mod:`engine.audit.aggregate`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from engine.audit import batchmaps, decode_pool
from engine.audit.body_mask import outside_shares
from engine.audit.identifiers import record_key
from engine.audit.loading import (
    InputRecipe,
    LoadedBatch,
    content_digest,
    error_record,
    load_batch,
    record_base,
)
from engine.audit.manifest import BORDER_ROLE, AuditRow, Manifest
from engine.audit.settings import TARGETS, AuditSettings
from engine.audit.store import ResultStore
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.case import bytes_digest
from engine.core.errors import UsageError
from engine.explain import core


def plan(model, settings: AuditSettings) -> core.Plan:
    """Resolve the method, layer and parameters for ``model`` through the explain core.

    Raises
    ------
    UsageError
        Unknown method, layer, parameter or target mode.
    ExplainerUnavailable
        The method cannot run on this model.
    """
    if settings.target not in TARGETS:
        raise UsageError(f"unknown target {settings.target!r}", fix="use top or label")
    if "," in settings.method:
        raise UsageError("an audit runs one method", fix="name one method with --method")
    layer = settings.layer if settings.layer not in ("", None) else "auto"
    return core.plan(model, [settings.method], layer, {settings.method: settings.params})


def _masks(row: AuditRow, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Return the row's mask-file roles as boolean masks in image geometry."""
    from PIL import Image as PILImage

    masks = {}
    for role, path in row.masks.items():
        if role in row.boxes:
            continue
        try:
            with PILImage.open(path) as im:
                grey = im.convert("L")
                if grey.size != (shape[1], shape[0]):
                    grey = grey.resize((shape[1], shape[0]), PILImage.NEAREST)
                masks[role] = np.asarray(grey) > 0
        except OSError as exc:
            raise UsageError(f"mask {path} cannot be read ({exc})") from None
    return masks


def explain_batch(batch: LoadedBatch, model, the_plan: core.Plan, roles: Sequence[str],
                  cancel: CancelToken | None = None, target: str = "top",
                  heat_size: int = 64) -> tuple[list[dict], np.ndarray]:
    """Run the batched pass and the explainer over a loaded batch; see :func:`audit_batch`."""
    cancel = cancel or CancelToken()
    records: dict[int, dict] = dict(batch.errors)
    heatmaps = np.zeros((0, heat_size, heat_size), np.float16)
    if not batch.ready:
        return [records[i] for i in sorted(records)], heatmaps
    explainer = the_plan.explainers[0]
    key = (explainer.name, the_plan.map_layers(explainer)[0])
    targets = [label if target == "label" else None for _, _, label in batch.ready]
    cap = core.capture(model, batch.x.to(model.device), targets, the_plan)
    got = core.explain(cap, the_plan, cancel=cancel)
    all_scores = cap.scores.detach().float().cpu()
    preds = cap.logits.detach().float().argmax(1).tolist()
    all_scores = all_scores.tolist()
    made = [k for k in range(len(batch.ready)) if key in got.maps[k]]
    shares: dict[int, dict] = {}
    warnings: dict[int, str | None] = {}
    outside_body: dict[int, float | None] = {}
    small = torch.zeros((len(batch.ready), heat_size, heat_size))
    # Maps and images of one shape go back to image geometry and through the share maths
    # together: one tensor operation per batch, not one per image.
    by_shape: dict[tuple, list[int]] = {}
    for k in made:
        raw, image_shape = got.maps[k][key], batch.ready[k][1]
        by_shape.setdefault((tuple(raw.shape), image_shape), []).append(k)
    for (_, image_shape), members in by_shape.items():
        stack = torch.stack([got.maps[k][key] for k in members])
        heat, notes, _ = core.finish_stack(stack, model, image_shape,
                                           bool(getattr(explainer, "signed", False)))
        # Negative evidence carries no mass in the shares, signed maps included.
        heat = heat.clamp(min=0.0)
        rows = [batch.rows[batch.ready[k][0]] for k in members]
        found = batchmaps.batch_shares(
            heat, [r.boxes for r in rows], [_masks(r, image_shape) for r in rows],
            roles, BORDER_ROLE,
        )
        small[members] = batchmaps.small_maps(heat, heat_size)
        outside = outside_shares(heat, [batch.bodies.get(batch.ready[k][0]) for k in members])
        for k, value, note, off_body in zip(members, found, notes, outside, strict=True):
            shares[k], warnings[k], outside_body[k] = value, note, off_body
    keep = batch.keep_identifiers
    for k, (pos, _, label) in enumerate(batch.ready):
        row, digest = batch.rows[pos], batch.digests[pos]
        if not all(math.isfinite(v) for v in all_scores[k]):
            records[pos] = error_record(
                row, f"{row.path}: the model's scores are NaN or infinite. "
                "Fix: check the model's weights and its output", digest, keep)
            continue
        if k not in shares:
            reason = got.errors[k].get(explainer.name, f"{explainer.name}: no map")
            records[pos] = error_record(row, f"{row.path}: {reason}", digest, keep)
            continue
        records[pos] = {
            **record_base(row, digest, keep),
            "label": row.label,
            "label_index": label,
            "groups": row.groups,
            "pred": preds[k],
            "pred_name": model.classes[preds[k]],
            "target": int(cap.targets[k]),
            "scores": [round(v, 6) for v in all_scores[k]],
            "shares": shares[k],
            # ROI-free: the share of saliency outside the body the image itself shows.
            "outside_body": outside_body[k],
            "attributes": batch.attributes.get(pos, {}),
            "heat_index": k,
            "intended_use": batch.intended_use.get(pos, {}),
        }
        if warnings.get(k):
            records[pos]["warning"] = warnings[k]
    heatmaps = small.half().numpy()
    return [records[i] for i in sorted(records)], heatmaps


def audit_batch(rows: Sequence[AuditRow], model, the_plan: core.Plan, roles: Sequence[str],
                cancel: CancelToken | None = None, target: str = "top",
                heat_size: int = 64, keep_identifiers: bool = False,
                ) -> tuple[list[dict], np.ndarray]:
    """Explain a batch of rows: a pure function of the rows, the model and the plan.

    Parameters
    ----------
    rows : sequence of AuditRow
        The images to audit.
    model : LoadedModel
        The model.
    the_plan : engine.explain.core.Plan
        Method, layer and parameters from :func:`plan`.
    roles : sequence of str
        ROI roles of the dataset (the border band is always added).
    cancel : CancelToken, optional
        Passed to explainers that loop over many forward passes.
    target : {"top", "label"}
        Explain the predicted class (the argmax of the logits) or the labelled one.
    heat_size : int
        Side of the stored maps.
    keep_identifiers : bool
        Records carry the image's path; otherwise its content digest only.

    Returns
    -------
    records : list of dict
        One per row, in order, keyed on the row and the content digest; unreadable rows get
        an error record.
    heatmaps : ndarray
        (n, S, S) float16 maps (peak 1) of the rows that succeeded; records point to them by
        ``heat_index``.
    """
    return explain_batch(load_batch(rows, InputRecipe.from_model(model, keep_identifiers)),
                         model, the_plan, roles, cancel, target, heat_size)


def run_header(dataset: Manifest, model, the_plan: core.Plan, settings: AuditSettings) -> dict:
    """Return the description of a run that ``--resume`` must match.

    The dataset is named by a digest of its rows as written (its path too, with
    ``keep_identifiers``), so a manifest moved with its images still resumes.
    """
    method = the_plan.methods[0]
    dataset_id = {"digest": bytes_digest(*(row.key for row in dataset.rows))}
    if settings.keep_identifiers:
        dataset_id["source"] = str(Path(dataset.source).resolve())
    return {
        "dataset": dataset_id,
        "identifiers": "kept" if settings.keep_identifiers else "removed",
        "rows": len(dataset.rows),
        "model": {"name": model.name, "sha256": model.sha256},
        "method": method,
        "layer": the_plan.layers[0] if the_plan.layers else "input",
        "params": the_plan.params[method],
        "target": settings.target,
        "heat_size": settings.heat_size,
    }


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Throughput:
    """Images done, images per second and the ETA of a run, for progress lines.

    Parameters
    ----------
    total : int
        Images in the dataset.
    finished : int
        Images already done before this run started (a resumed run).
    """

    def __init__(self, total: int, finished: int) -> None:
        self.total, self.finished, self.done_now = total, finished, 0
        self.start = time.perf_counter()

    @property
    def fraction(self) -> float:
        """Share of the dataset done."""
        return self.finished / max(self.total, 1)

    def add(self, n: int) -> str:
        """Count ``n`` more images done and return the progress line."""
        self.finished += n
        self.done_now += n
        elapsed = time.perf_counter() - self.start
        rate = self.done_now / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.finished) / rate if rate > 0 else 0.0
        return f"{self.finished}/{self.total} images, {rate:.1f} images/s, ETA {_eta(eta)}"


def todo_rows(dataset: Manifest, store: ResultStore) -> list[AuditRow]:
    """The rows of ``dataset`` that ``store`` has no record for yet.

    Records are keyed on content: when some are stored, each row's file is hashed to find
    them. An image changed on disk since is redone, and its stale record dropped.
    """
    done = store.done_keys()
    if not done:
        return list(dataset.rows)
    keys = {row.index: record_key(row.index, content_digest(row.path)) for row in dataset.rows}
    store.keep_only(set(keys.values()))
    return [row for row in dataset.rows if keys[row.index] not in done]


def run_audit(dataset: Manifest, model, settings: AuditSettings, out_dir: str | Path, *,
              resume: bool = False, progress: ProgressFn | None = None,
              cancel: CancelToken | None = None) -> ResultStore:
    """Audit every row not yet done, storing each batch as soon as it finishes.

    Parameters
    ----------
    dataset : Manifest
        Rows to audit.
    model : LoadedModel
        The model.
    settings : AuditSettings
        Method, layer, parameters, batch size.
    out_dir : str or Path
        Where results are streamed.
    resume : bool
        Continue the run already in ``out_dir`` (its finished images are not redone).
    progress : callable, optional
        ``progress(fraction, message)``, the message with images done, rate and ETA.
    cancel : CancelToken, optional
        Checked between batches; a cancelled run keeps every finished batch.

    Returns
    -------
    ResultStore
        The stored results, ready for :func:`engine.audit.outputs.write_outputs`.

    Raises
    ------
    engine.core.cancel.Cancelled
        When cancelled; the finished batches stay on disk.
    """
    progress = progress or (lambda f, m="": None)
    cancel = cancel or CancelToken()
    the_plan = plan(model, settings)
    store = ResultStore(out_dir, run_header(dataset, model, the_plan, settings), resume=resume)
    todo = todo_rows(dataset, store)
    meter = Throughput(len(dataset.rows), len(dataset.rows) - len(todo))
    progress(meter.fraction, f"{meter.finished}/{meter.total} images")
    step = max(1, int(settings.batch_size))
    batches = [todo[i : i + step] for i in range(0, len(todo), step)]
    # Decode processes read the next batches while the model explains this one.
    recipe = InputRecipe.from_model(model, settings.keep_identifiers)
    loads = decode_pool.decoded(batches, recipe, settings.decode_processes)
    try:
        for rows, loaded in zip(batches, loads, strict=True):
            cancel.check()
            records, heatmaps = explain_batch(loaded, model, the_plan, dataset.roles, cancel,
                                              settings.target, settings.heat_size)
            store.append_batch(records, heatmaps)
            message = meter.add(len(rows))
            progress(meter.fraction, message)
    finally:
        loads.close()
    return store
