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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.audit import batchmaps
from engine.audit.manifest import BORDER_ROLE, AuditRow, Manifest
from engine.audit.store import ResultStore
from engine.cancel import CancelToken, ProgressFn
from engine.capture import Capture, final_linear, hooked_forward
from engine.errors import ExplainerUnavailable, LucidaError, ModelError, UsageError

#: Target modes: explain the predicted class, or the labelled class.
TARGETS = ("top", "label")


@dataclass
class AuditSettings:
    """How to explain each image.

    Attributes
    ----------
    method : str
        Registered explainer name (``gradcam``).
    layer : str
        Layer name, or ``"auto"`` for the model's default layer.
    params : dict
        Explainer parameters (strings are parsed against its schema).
    target : str
        ``"top"`` (the predicted class) or ``"label"`` (the labelled class, when known).
    batch_size : int
        Images per batched forward/backward pass.
    heat_size : int
        Side of the stored, downsampled heatmaps.
    """

    method: str
    layer: str = "auto"
    params: dict = field(default_factory=dict)
    target: str = "top"
    batch_size: int = 16
    heat_size: int = 64


@dataclass
class Plan:
    """An explainer resolved against a model: what :func:`audit_batch` needs."""

    explainer: object
    method: str
    layers: list[str]
    params: dict
    gradients: bool
    target: str
    heat_size: int


def plan(model, settings: AuditSettings) -> Plan:
    """Resolve the method, layer and parameters for ``model``.

    Raises
    ------
    UsageError
        Unknown method, layer, parameter or target mode.
    ExplainerUnavailable
        The method cannot run on this model.
    """
    from engine.registry import registry
    from plugins.api import is_layer_based, resolve_params

    reg = registry()
    if settings.method not in reg.names():
        raise UsageError(
            f"unknown method {settings.method!r}",
            fix=f"use one of: {', '.join(reg.names())}",
        )
    explainer = reg.get(settings.method)
    reason = explainer.unavailable_reason(model)
    if reason:
        raise ExplainerUnavailable(f"{settings.method}: {reason}")
    if settings.target not in TARGETS:
        raise UsageError(f"unknown target {settings.target!r}", fix="use top or label")
    layers: list[str] = []
    if is_layer_based(explainer):
        names = [info.name for info in model.layers()]
        layer = model.default_layer if settings.layer in ("", "auto", None) else settings.layer
        if layer not in names:
            raise UsageError(
                f"model {model.name} has no layer {layer!r}",
                fix=f"use one of: {', '.join(names)}",
            )
        layers = [layer]
    needs = set(getattr(explainer, "needs", ()))
    return Plan(
        explainer=explainer,
        method=settings.method,
        layers=layers,
        params=resolve_params(explainer, settings.params),
        gradients="gradients" in needs,
        target=settings.target,
        heat_size=settings.heat_size,
    )


class BatchMemberCapture(Capture):
    """One image's slice of a batched pass.

    It sets what :class:`Capture` holds without its constructor, which would look the final
    linear layer up again for every image; the batch looks it up once and shares it.
    """

    def __init__(self, fc: tuple, *, model, input, logits, scores, target, activations,
                 gradients, timings_ms) -> None:
        self.model, self.input, self.logits, self.scores = model, input, logits, scores
        self.target, self.activations, self.gradients = target, activations, gradients
        self.timings_ms = timings_ms
        self.fc_weights, self.fc_bias = fc
        self.scored_images = 0


def batch_captures(model, x: torch.Tensor, targets: list[int | None], layers: Sequence[str],
                   gradients: bool) -> list[Capture]:
    """Run one forward (and one backward) pass for a batch and split it into per-image captures.

    The backward pass differentiates the sum of each image's target logit. In evaluation mode
    images do not interact, so each image's gradient equals the one a single-image pass gives.

    Parameters
    ----------
    model : LoadedModel
        The model.
    x : torch.Tensor
        (N, C, H, W) preprocessed inputs on the model's device.
    targets : list of int or None
        Class to explain per image; None explains the top class.
    layers : sequence of str
        Layers to record.
    gradients : bool
        Whether to take gradients with respect to the layers.
    """
    want_grad = gradients and bool(layers)
    logits, recorded, forward_ms = hooked_forward(model, x.detach(), layers, want_grad)
    forward_ms /= len(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ModelError(f"model output has shape {tuple(logits.shape)}, expected (N, K)")
    scores = model.scores(logits.detach())
    top = scores.argmax(1).tolist()
    index = [top[i] if t is None else int(t) for i, t in enumerate(targets)]
    grads: dict[str, torch.Tensor] = {}
    start = time.perf_counter()
    if want_grad:
        picked = logits[torch.arange(len(index)), torch.tensor(index)].sum()
        found = torch.autograd.grad(picked, [recorded[n] for n in layers], allow_unused=True)
        for name, grad in zip(layers, found, strict=True):
            grad = torch.zeros_like(recorded[name]) if grad is None else grad
            grads[name] = model.to_activation_map(name, grad.detach())
    backward_ms = (time.perf_counter() - start) * 1000.0 / len(x)
    acts = {n: model.to_activation_map(n, recorded[n].detach()) for n in layers}
    logits = logits.detach()
    timings = {"forward": forward_ms, "backward": backward_ms}
    fc = final_linear(model, logits.shape[1])
    return [
        BatchMemberCapture(
            fc,
            model=model,
            input=x[i : i + 1].detach().requires_grad_(False),
            logits=logits[i],
            scores=scores[i],
            target=index[i],
            activations={n: a[i] for n, a in acts.items()},
            gradients={n: g[i] for n, g in grads.items()},
            timings_ms=dict(timings),
        )
        for i in range(len(index))
    ]


def _label_index(label: str | None, classes: Sequence[str]) -> int | None:
    """Return the class index of a manifest label (name or digits); None when unlabelled."""
    if label is None:
        return None
    if label in classes:
        return list(classes).index(label)
    if label.isdigit() and int(label) < len(classes):
        return int(label)
    raise UsageError(
        f"label {label!r} is not one of the model's classes ({', '.join(classes)})"
    )


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


def error_record(row: AuditRow, reason: str) -> dict:
    """Return the record stored for an image that could not be audited."""
    return {"key": row.key, "row": row.index, "path": str(row.path), "error": reason}


@dataclass
class LoadedBatch:
    """Rows of a batch read and preprocessed: what the model pass needs, and the failures."""

    rows: list[AuditRow]
    errors: dict[int, dict]
    ready: list[tuple[int, object, int | None]]  # (position, image, label index)
    x: torch.Tensor | None


def load_batch(rows: Sequence[AuditRow], model) -> LoadedBatch:
    """Open and preprocess rows; an unreadable row becomes an error record, not an exception."""
    from engine.images import open_image

    errors, ready, tensors = {}, [], []
    for pos, row in enumerate(rows):
        try:
            image = open_image(row.path, decode=True)
            label = _label_index(row.label, model.classes)
            tensors.append(model.preprocess(image))
            ready.append((pos, image, label))
        except LucidaError as exc:
            errors[pos] = error_record(row, exc.one_line())
        except Exception as exc:  # noqa: BLE001 - one broken file must not stop the audit
            errors[pos] = error_record(row, f"cannot read the image ({type(exc).__name__}: {exc})")
    x = torch.cat(tensors, 0) if tensors else None
    return LoadedBatch(list(rows), errors, ready, x)


def explain_batch(batch: LoadedBatch, model, plan: Plan, roles: Sequence[str],
                  cancel: CancelToken | None = None) -> tuple[list[dict], np.ndarray]:
    """Run the batched pass and the explainer over a loaded batch; see :func:`audit_batch`."""
    cancel = cancel or CancelToken()
    records: dict[int, dict] = dict(batch.errors)
    heatmaps = np.zeros((0, plan.heat_size, plan.heat_size), np.float16)
    if batch.ready:
        targets = [label if plan.target == "label" else None for _, _, label in batch.ready]
        captures = batch_captures(model, batch.x, targets, plan.layers, plan.gradients)
        raws = []
        for capture in captures:
            maps = plan.explainer.explain(
                capture, capture.target, plan.layers, plan.params, lambda f, m="": None, cancel
            )
            raw = next(iter(maps.values()))
            raws.append(torch.as_tensor(raw).detach().float().cpu())
        all_scores = torch.stack([c.scores for c in captures]).detach().float().cpu()
        preds = all_scores.argmax(1).tolist()
        all_scores = all_scores.tolist()
        shares: list = [None] * len(captures)
        small = torch.zeros((len(captures), plan.heat_size, plan.heat_size))
        # Maps and images of one shape go back to image geometry and through the share maths
        # together: one tensor operation per batch, not one per image.
        by_shape: dict[tuple, list[int]] = {}
        for k, ((_, image, _), raw) in enumerate(zip(batch.ready, raws, strict=True)):
            by_shape.setdefault((tuple(raw.shape), tuple(image.shape)), []).append(k)
        for (_, image_shape), members in by_shape.items():
            # Negative evidence carries no mass; NaN is dropped by the share maths.
            stack = torch.stack([raws[k] for k in members]).clamp(min=0.0)
            heat = batchmaps.maps_to_image(stack, model.input, image_shape)
            rows = [batch.rows[batch.ready[k][0]] for k in members]
            got = batchmaps.batch_shares(
                heat, [r.boxes for r in rows], [_masks(r, image_shape) for r in rows],
                roles, BORDER_ROLE,
            )
            small[members] = batchmaps.small_maps(heat, plan.heat_size)
            for k, value in zip(members, got, strict=True):
                shares[k] = value
        for k, ((pos, _, label), capture) in enumerate(zip(batch.ready, captures, strict=True)):
            row = batch.rows[pos]
            if not all(math.isfinite(v) for v in all_scores[k]):
                records[pos] = error_record(
                    row, f"{row.path}: the model's scores are NaN or infinite. "
                    "Fix: check the model's weights and its output")
                continue
            records[pos] = {
                "key": row.key,
                "row": row.index,
                "path": str(row.path),
                "label": row.label,
                "label_index": label,
                "groups": row.groups,
                "pred": preds[k],
                "pred_name": model.classes[preds[k]],
                "target": capture.target,
                "scores": [round(v, 6) for v in all_scores[k]],
                "shares": shares[k],
                "heat_index": k,
            }
        heatmaps = small.half().numpy()
    return [records[i] for i in sorted(records)], heatmaps


def audit_batch(rows: Sequence[AuditRow], model, plan: Plan, roles: Sequence[str],
                cancel: CancelToken | None = None) -> tuple[list[dict], np.ndarray]:
    """Explain a batch of rows: a pure function of the rows, the model and the plan.

    Parameters
    ----------
    rows : sequence of AuditRow
        The images to audit.
    model : LoadedModel
        The model.
    plan : Plan
        Method, layer and parameters from :func:`plan`.
    roles : sequence of str
        ROI roles of the dataset (the border band is always added).
    cancel : CancelToken, optional
        Passed to explainers that loop over many forward passes.

    Returns
    -------
    records : list of dict
        One per row, in order; unreadable rows get an error record.
    heatmaps : ndarray
        (n, S, S) float16 maps (peak 1) of the rows that succeeded; records point to them by
        ``heat_index``.
    """
    return explain_batch(load_batch(rows, model), model, plan, roles, cancel)


def run_header(dataset: Manifest, model, plan: Plan) -> dict:
    """Return the description of a run that ``--resume`` must match."""
    return {
        "dataset": str(Path(dataset.source).resolve()),
        "rows": len(dataset.rows),
        "model": {"name": model.name, "sha256": model.sha256},
        "method": plan.method,
        "layer": plan.layers[0] if plan.layers else "input",
        "params": plan.params,
        "target": plan.target,
        "heat_size": plan.heat_size,
    }


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
    engine.cancel.Cancelled
        When cancelled; the finished batches stay on disk.
    """
    progress = progress or (lambda f, m="": None)
    cancel = cancel or CancelToken()
    the_plan = plan(model, settings)
    store = ResultStore(out_dir, run_header(dataset, model, the_plan), resume=resume)
    done = store.done_keys()
    todo = [row for row in dataset.rows if row.key not in done]
    total = len(dataset.rows)
    finished = total - len(todo)
    start = time.perf_counter()
    done_now = 0
    progress(finished / max(total, 1), f"{finished}/{total} images")
    step = max(1, int(settings.batch_size))
    batches = [todo[i : i + step] for i in range(0, len(todo), step)]
    # Reading and decoding the next batch overlaps the model pass of this one.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-load") as pool:
        pending = pool.submit(load_batch, batches[0], model) if batches else None
        for i, rows in enumerate(batches):
            cancel.check()
            loaded = pending.result()
            pending = pool.submit(load_batch, batches[i + 1], model) if i + 1 < len(batches) \
                else None
            records, heatmaps = explain_batch(loaded, model, the_plan, dataset.roles, cancel)
            store.append_batch(records, heatmaps)
            finished += len(rows)
            done_now += len(rows)
            elapsed = time.perf_counter() - start
            rate = done_now / elapsed if elapsed > 0 else 0.0
            eta = (total - finished) / rate if rate > 0 else 0.0
            progress(
                finished / max(total, 1),
                f"{finished}/{total} images, {rate:.1f} images/s, ETA {_eta(eta)}",
            )
    return store
