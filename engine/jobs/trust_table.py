"""The dataset-level trust table: the trust battery over every image of a manifest, per method,
as a mean with a bootstrap confidence interval per metric.

It reads the audit's manifest (:func:`engine.audit.manifest.load_dataset`), stores one record
per image and method in the audit's resumable store (:class:`engine.audit.store.ResultStore`),
and runs here or on Ray (:func:`engine.audit.ray_engine.ray_session`), a task per batch of
images that loads the model once. Each record is the battery of
:func:`engine.metrics.battery.trust_battery` for the image's predicted class, reduced to its
numbers. Outputs: ``trust_table.csv``, ``trust_table.json`` and ``trust_table.html``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path

import numpy as np

from engine.core.atomic import write_atomic
from engine.core.cancel import CancelToken, ProgressFn, no_progress
from engine.core.jsonsafe import json_bytes

#: Metrics the table reports, with their labels, in order; ``better`` says which way is good.
METRICS = (
    ("deletion_auc", "Deletion AUC", "lower"),
    ("insertion_auc", "Insertion AUC", "higher"),
    ("lerf_auc", "Deletion AUC, least salient first", "higher"),
    ("average_drop", "Average Drop (%)", "lower"),
    ("increase_in_confidence", "Increase in Confidence (%)", "higher"),
    ("sanity_similarity", "Similarity, top layers randomised", "lower"),
    ("map_spearman_mean", "Map rank-correlation under augmentation", "higher"),
    ("map_top_overlap_mean", "Top-10% overlap under augmentation", "higher"),
    ("probability_std", "Probability SD under augmentation", "lower"),
    ("decision_flip_share", "Share of augmentations that flip", "lower"),
)
#: Bootstrap resamples and confidence level.
RESAMPLES = 2000
CONFIDENCE = 0.95
OUTPUTS = ("trust_table.csv", "trust_table.json", "trust_table.html")


@dataclass
class TrustSettings:
    """What the table measures: methods, layer, battery options, batching and seeds."""

    methods: list[str] = field(default_factory=lambda: ["gradcam"])
    layer: str = "auto"
    sanity: bool = False
    augmentations: int = 10
    batch_size: int = 8
    seed: int = 0


def bootstrap_ci(values, seed: int = 0, resamples: int = RESAMPLES,
                 confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap), seeded.

    Returns ``(None, None)`` for fewer than two values and ``(v, v)`` when all are equal.
    """
    from scipy.stats import bootstrap

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size < 2:
        return None, None
    if np.ptp(v) == 0:
        return float(v[0]), float(v[0])
    res = bootstrap((v,), np.mean, n_resamples=resamples, confidence_level=confidence,
                    method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _numbers(metrics: dict) -> dict:
    u = metrics.get("uncertainty") or {}
    out = {}
    for key, _label, _better in METRICS:
        value = metrics.get(key, u.get(key))
        if isinstance(value, bool):
            value = 100.0 * value  # one case: 100 % or 0 %; the mean is the share
        if isinstance(value, int | float) and np.isfinite(value):
            out[key] = float(value)
    return out


def measure_rows(rows, model, settings: TrustSettings, cancel: CancelToken | None = None,
                 progress: ProgressFn | None = None) -> list[dict]:
    """The records of a batch of manifest rows: one per image and method (or an error line).

    Parameters
    ----------
    rows : sequence of AuditRow
        The images.
    model : LoadedModel
        The model.
    settings : TrustSettings
        Methods and battery options.
    cancel, progress
        Cancel token and progress callback over the batch.
    """
    from engine.audit.identifiers import record_key
    from engine.core.case import Target
    from engine.core.errors import LucidaError
    from engine.explain.session import ExplainRequest, Session
    from engine.metrics.battery import trust_battery
    from engine.studies.image import open_image

    report = progress or no_progress
    session = Session()
    out = []
    for i, row in enumerate(rows):
        try:
            image = open_image(row.path)
            digest = image.content_id().digest
        except LucidaError as exc:
            out += [{"key": f"{record_key(row.index, None)}|{m}", "row": row.index,
                     "method": m, "error": exc.one_line()} for m in settings.methods]
            continue
        for method in settings.methods:
            if cancel is not None:
                cancel.check()
            key = f"{record_key(row.index, digest)}|{method}"
            try:
                result = session.explain(ExplainRequest(
                    image=image, model=model, methods=[method], layers=settings.layer,
                    target=Target("top")))
                shown_method, layer = next(iter(result.maps))
                metrics = trust_battery(
                    session, result, image, model, shown_method, layer, cancel=cancel,
                    sanity=settings.sanity, seed=settings.seed,
                    augmentations=settings.augmentations)
                out.append({"key": key, "row": row.index, "method": method, "layer": layer,
                            "label": row.label, "target": result.target_name,
                            **_numbers(metrics)})
            except LucidaError as exc:
                out.append({"key": key, "row": row.index, "method": method,
                            "error": exc.one_line()})
        report((i + 1) / max(1, len(rows)), f"{i + 1}/{len(rows)} images")
    return out


def summarise(records: list[dict], settings: TrustSettings) -> list[dict]:
    """Per method and metric: n, mean and the bootstrap interval of the mean."""
    table = []
    for method in settings.methods:
        mine = [r for r in records if r.get("method") == method and "error" not in r]
        for key, label, better in METRICS:
            values = [r[key] for r in mine if key in r]
            if not values:
                continue
            low, high = bootstrap_ci(values, settings.seed)
            table.append({"method": method, "metric": key, "label": label, "better": better,
                          "n": len(values), "mean": float(np.mean(values)), "ci_low": low,
                          "ci_high": high})
    return table


def _csv(table: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["method", "metric", "n", "mean", "ci_low", "ci_high"],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue().encode("utf-8")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _html(doc: dict) -> bytes:
    from engine.export.provenance import method_title

    methods = doc["settings"]["methods"]
    cells = {(r["method"], r["metric"]): r for r in doc["table"]}
    head = "".join(f"<th>{escape(method_title(m))}</th>" for m in methods)
    body = []
    for key, label, better in METRICS:
        if not any((m, key) in cells for m in methods):
            continue
        row = "".join(
            f"<td>{_fmt(cells[m, key]['mean'])} [{_fmt(cells[m, key]['ci_low'])}, "
            f"{_fmt(cells[m, key]['ci_high'])}]</td>" if (m, key) in cells else "<td>—</td>"
            for m in methods)
        body.append(f"<tr><td>{escape(label)} ({better} is better)</td>{row}</tr>")
    errors = len(doc["errors"])
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Lucida trust table</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ccc;text-align:left}</style></head><body>"
        "<h1>Trust table</h1>"
        f"<p>Model {escape(str(doc['model']['name']))}, {doc['images']} images, layer "
        f"{escape(doc['settings']['layer'])}; mean and {CONFIDENCE:.0%} percentile bootstrap "
        f"interval ({RESAMPLES} resamples, seed {doc['settings']['seed']}). "
        f"{errors} record(s) could not be measured.</p>"
        f"<table><tr><th>Metric</th>{head}</tr>{''.join(body)}</table>"
        "<p>Research use only. The figures describe the explanations of this model on this "
        "dataset, not the patients.</p></body></html>\n").encode()


def _header(dataset, model, settings: TrustSettings) -> dict:
    return {"kind": "trust table", "model": {"name": model.name, "sha256": model.sha256},
            "rows": [r.key for r in dataset.rows], "settings": asdict(settings)}


def run_trust_table(dataset, model, settings: TrustSettings, out_dir: str | Path, *,
                    resume: bool = False, engine: str = "local", model_spec: str | None = None,
                    trust: bool = False, address: str | None = None, workers: int = 2,
                    progress: ProgressFn | None = None,
                    cancel: CancelToken | None = None) -> dict:
    """Measure every image of ``dataset`` with every method and write the table.

    Parameters
    ----------
    dataset : Manifest
        From :func:`engine.audit.manifest.load_dataset`.
    model : LoadedModel
        The model.
    settings : TrustSettings
        Methods and battery options.
    out_dir : path
        Output folder; ``resume`` continues the run there (finished records are kept).
    engine : {"local", "ray"}
        Where the batches run; on Ray each task loads ``model_spec`` (with ``trust``).
    address, workers
        Ray cluster address (None: a local instance) and how many tasks run at once.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    dict
        ``trust_table.json``'s content: ``model``, ``settings``, ``images``, ``table`` (per
        method and metric ``n``, ``mean``, ``ci_low``, ``ci_high``), ``errors``, ``engine``.
    """
    from engine.audit.store import ResultStore

    report = progress or no_progress
    cancel = cancel or CancelToken()
    out = Path(out_dir)
    store = ResultStore(out, _header(dataset, model, settings), resume=resume)
    done_rows = {}
    for rec in store.records():
        done_rows.setdefault(rec["row"], set()).add(rec["method"])
    todo = [r for r in dataset.rows if done_rows.get(r.index, set()) != set(settings.methods)]
    batches = [todo[i:i + settings.batch_size]
               for i in range(0, len(todo), settings.batch_size)]
    total = max(1, len(batches))
    if engine == "ray":
        _run_ray(batches, model_spec or model.name, trust, settings, store, address, workers,
                 report, cancel)
    else:
        for b, batch in enumerate(batches):
            cancel.check()
            store.append_batch(measure_rows(batch, model, settings, cancel,
                                            lambda f, m="", b=b: report(
                                                (b + f) / total, f"batch {b + 1}/{total}: {m}")),
                               None)
    records = list(store.records())
    doc = {"model": {"name": model.name, "sha256": model.sha256}, "engine": engine,
           "settings": asdict(settings), "images": len(dataset.rows),
           "table": summarise(records, settings),
           "errors": [{"row": r["row"], "method": r["method"], "error": r["error"]}
                      for r in records if "error" in r]}
    write_atomic(out / "trust_table.json", json_bytes(doc))
    write_atomic(out / "trust_table.csv", _csv(doc["table"]))
    write_atomic(out / "trust_table.html", _html(doc))
    report(1.0, "trust table written")
    return doc


def _ray_batch(model_spec: str, trust: bool, settings: dict, rows) -> list[dict]:
    from engine.models.loaded import load_model

    return measure_rows(rows, load_model(model_spec, trust=trust), TrustSettings(**settings))


def _run_ray(batches, model_spec, trust, settings, store, address, workers, report,
             cancel) -> None:
    from engine.audit.ray_engine import ray_session

    with ray_session(address, workers):
        import ray

        task = ray.remote(num_cpus=1)(_ray_batch)
        pending = [task.remote(model_spec, trust, asdict(settings), batch) for batch in batches]
        finished = 0
        while pending:
            if cancel.cancelled:
                for ref in pending:
                    ray.cancel(ref, force=True)
                cancel.check()
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                store.append_batch(ray.get(ref), None)
                finished += 1
                report(finished / max(1, len(batches)), f"{finished}/{len(batches)} batches")


def table_markdown(doc: dict) -> str:
    """The table as Markdown: a row per metric, a column per method, ``mean [low, high]``."""
    from engine.export.provenance import method_title

    methods = doc["settings"]["methods"]
    cells = {(r["method"], r["metric"]): r for r in doc["table"]}
    lines = ["| Metric | " + " | ".join(method_title(m) for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for key, label, better in METRICS:
        if not any((m, key) in cells for m in methods):
            continue
        row = [f"{_fmt(cells[m, key]['mean'])} [{_fmt(cells[m, key]['ci_low'])}, "
               f"{_fmt(cells[m, key]['ci_high'])}]" if (m, key) in cells else "—"
               for m in methods]
        lines.append(f"| {label} ({better} is better) | " + " | ".join(row) + " |")
    return "\n".join(lines)
