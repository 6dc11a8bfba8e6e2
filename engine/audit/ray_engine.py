"""The bias audit on a Ray cluster: the same per-image work, scheduled by Ray Data.

The pipeline reads the rows still to do, decodes and preprocesses them in stateless CPU tasks
(``map_batches`` with a function), and explains them on an actor pool
(``map_batches(..., compute=ActorPoolStrategy(size=workers))``) whose actors each load the
model **once**, from its card or file, and check its SHA-256 against the driver's: actors are
sent paths and names, never a pickled model. The per-batch work is
:func:`engine.audit.runner.explain_batch`, exactly what the local engine runs, and the driver
streams the results into the same :class:`engine.audit.store.ResultStore`, so aggregates, CIs
and ``--resume`` are shared by both engines.

Faults: an actor that dies is restarted and its batch retried by Ray; the store keeps one
record per image (a retried batch that had already been stored is read back once), so nothing
is lost or duplicated. Cancelling stops the pipeline between batches and leaves a resumable
store.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.audit.loading import InputRecipe, LoadedBatch, load_batch
from engine.audit.manifest import AuditRow, Manifest
from engine.audit.runner import (
    Throughput,
    explain_batch,
    plan,
    run_header,
    todo_rows,
)
from engine.audit.settings import AuditSettings
from engine.audit.store import ResultStore
from engine.core.cancel import Cancelled, CancelToken, ProgressFn
from engine.core.errors import UsageError

#: Logical CPUs kept free of actors so that the read/decode tasks can always run: an actor
#: pool that takes every CPU starves its own input and the pipeline hangs.
READ_RESERVE = 0.5
#: Logical CPUs one decode task asks for.
READ_CPUS = 0.25


def row_to_json(row: AuditRow) -> str:
    """Serialise a manifest row for a worker (paths as strings)."""
    data = dataclasses.asdict(row)
    data["path"] = str(row.path)
    data["masks"] = {k: str(v) for k, v in row.masks.items()}
    data["boxes"] = {k: list(v) for k, v in row.boxes.items()}
    return json.dumps(data)


def row_from_json(text: str) -> AuditRow:
    """The inverse of :func:`row_to_json`."""
    data = json.loads(text)
    return AuditRow(
        index=int(data["index"]), key=data["key"], path=Path(data["path"]), label=data["label"],
        groups=dict(data["groups"]), boxes={k: tuple(v) for k, v in data["boxes"].items()},
        masks={k: Path(v) for k, v in data["masks"].items()},
    )


def decode_rows(batch: dict[str, np.ndarray], recipe: InputRecipe) -> dict[str, np.ndarray]:
    """Ray task: read and preprocess a batch of rows (stateless; no model needed).

    Returns columns ``row`` (JSON), ``x`` (float32 model inputs; zeros for failed rows),
    ``shape`` (image rows and columns), ``label`` (-1 when unlabelled), ``error`` (a failed
    row's record as JSON, or empty), ``use`` (the intended-use check as JSON) and ``digest``
    (the image's content digest, or empty), ``body`` (the body mask, packed; empty when none)
    and ``attributes`` (the image's DICOM acquisition attributes as JSON).
    """
    rows = [row_from_json(str(t)) for t in batch["row"]]
    loaded = load_batch(rows, recipe)
    n = len(rows)
    c = recipe.spec.channels
    x = np.zeros((n, c, *recipe.spec.size), np.float32)
    shape = np.zeros((n, 2), np.int64)
    label = np.full(n, -1, np.int64)
    for k, (pos, image_shape, lab) in enumerate(loaded.ready):
        x[pos] = loaded.x[k].numpy()
        shape[pos] = image_shape[:2]
        label[pos] = -1 if lab is None else lab
    error = np.array([json.dumps(loaded.errors[i]) if i in loaded.errors else ""
                      for i in range(n)], object)
    use = np.array([json.dumps(loaded.intended_use.get(i, {})) for i in range(n)], object)
    digest = np.array([loaded.digests.get(i, "") for i in range(n)], object)
    body = np.array([_pack_mask(loaded.bodies.get(i)) for i in range(n)], object)
    attributes = np.array([json.dumps(loaded.attributes.get(i, {})) for i in range(n)], object)
    return {"row": batch["row"], "x": x, "shape": shape, "label": label, "error": error,
            "use": use, "digest": digest, "body": body, "attributes": attributes}


def _pack_mask(mask: np.ndarray | None) -> bytes:
    """A boolean mask as bytes: rows and columns (two uint32), then its bits; b"" for None."""
    if mask is None:
        return b""
    return np.asarray(mask.shape, np.uint32).tobytes() + np.packbits(mask).tobytes()


def _unpack_mask(data: bytes) -> np.ndarray | None:
    """The inverse of :func:`_pack_mask`."""
    if not data:
        return None
    rows, cols = (int(v) for v in np.frombuffer(data[:8], np.uint32))
    bits = np.unpackbits(np.frombuffer(data[8:], np.uint8), count=rows * cols)
    return bits.reshape(rows, cols).astype(bool)


def _loaded(batch: dict[str, np.ndarray], keep_identifiers: bool) -> LoadedBatch:
    """Rebuild the local engine's batch from the decode task's columns."""
    import torch

    rows = [row_from_json(str(t)) for t in batch["row"]]
    errors, ready, keep, uses, digests, bodies, attributes = {}, [], [], {}, {}, {}, {}
    for pos in range(len(rows)):
        if batch["error"][pos]:
            errors[pos] = json.loads(str(batch["error"][pos]))
            continue
        lab = int(batch["label"][pos])
        ready.append((pos, tuple(int(v) for v in batch["shape"][pos]), None if lab < 0 else lab))
        keep.append(pos)
        uses[pos] = json.loads(str(batch["use"][pos]))
        digests[pos] = str(batch["digest"][pos])
        bodies[pos] = _unpack_mask(bytes(batch["body"][pos]))
        attributes[pos] = json.loads(str(batch["attributes"][pos]))
    x = torch.from_numpy(np.ascontiguousarray(batch["x"][keep])) if keep else None
    return LoadedBatch(rows, errors, ready, x, uses, digests, keep_identifiers, bodies,
                       attributes)


class AuditWorker:
    """Ray actor: loads the model once, then explains batch after batch.

    Parameters
    ----------
    model_spec : str
        What ``load_model`` takes: ``demo``, a card path or a model file.
    sha256 : str
        The model file's hash as the driver loaded it; a worker that reads another file stops.
    trust : bool
        The user's explicit trust for code-bearing model files.
    settings : dict
        :class:`AuditSettings` fields.
    roles : list of str
        ROI roles of the dataset.
    device : str
        ``cpu`` or a CUDA device for this worker.
    fault_marker : str, optional
        Fault injection for tests: the first worker to see a batch while this file does not
        exist creates it and kills its own process, as a lost node would.
    """

    def __init__(self, model_spec: str, sha256: str, trust: bool, settings: dict,
                 roles: list[str], device: str = "cpu", fault_marker: str | None = None):
        import torch

        from engine.models.loaded import load_model

        if device == "cpu":
            torch.set_num_threads(1)
        self.model = load_model(model_spec, trust=trust, device=device)
        if self.model.sha256 != sha256:
            raise UsageError(
                f"model {model_spec} on this worker has SHA-256 {self.model.sha256[:12]}..., "
                f"not {sha256[:12]}... as on the driver",
                fix="give every node the same model files",
            )
        self.settings = AuditSettings(**settings)
        self.plan = plan(self.model, self.settings)
        self.roles = list(roles)
        self.fault_marker = fault_marker

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.fault_marker and not os.path.exists(self.fault_marker):
            Path(self.fault_marker).touch()
            os._exit(1)
        loaded = _loaded(batch, self.settings.keep_identifiers)
        records, heatmaps = explain_batch(loaded, self.model, self.plan, self.roles,
                                          None, self.settings.target, self.settings.heat_size)
        # One map row per record (zeros for failed rows), so that the driver's re-batching
        # keeps records and maps aligned.
        size = self.settings.heat_size
        heat = np.zeros((len(records), size, size), np.float16)
        for i, rec in enumerate(records):
            if "heat_index" in rec:
                heat[i] = heatmaps[rec.pop("heat_index")]
                rec["has_heat"] = True
        return {"record": np.array([json.dumps(r) for r in records], object), "heat": heat}


def _start_ray(address: str | None, workers: int) -> bool:
    """Connect to a cluster, or start a local Ray; return whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    # Lucida prints its own progress line; Ray Data's bars and INFO logs would bury it, and
    # the core worker's notes (a restartable actor's arguments live in the object store) are
    # not the user's concern. Users who want them set these variables themselves.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logging.getLogger("ray").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    common = {"include_dashboard": False, "log_to_driver": False,
              "ignore_reinit_error": True}
    if address:
        ray.init(address=address, **common)
        return True
    # A local instance gets one logical CPU per worker plus the reading reserve, whatever
    # the machine has: the pipeline is then schedulable even on two cores.
    ray.init(num_cpus=workers + 1, object_store_memory=256 * 1024**2, **common)
    return True


def require_ray() -> None:
    """Raise a one-line error naming the extra to install when Ray is missing.

    This module imports Ray only when it runs, so callers ask here before they start.
    """
    if importlib.util.find_spec("ray") is None:
        raise UsageError("the Ray engine needs Ray",
                         fix="pip install 'lucida[ray]' (or pip install 'ray[data]')")


def _connect(address: str | None, workers: int) -> bool:
    try:
        return _start_ray(address, max(1, int(workers)))
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address} ({exc})",
                         fix="start it with `ray start --head` and pass --address") from None


#: The address of the session :func:`stay_connected` opened ("local" for a local instance).
_KEPT: list[str] = []


def stay_connected(address: str | None = None, workers: int = 2) -> None:
    """Connect to Ray and stay connected, for an application that audits now and then.

    A local instance or a cluster connection is started once and reused by later audits (and
    by an audit that was paused and resumes); Ray closes it when the process exits. Asked for
    another address, the kept session is closed and a new one opened. A session this module
    did not open (a test's instance) is used as it is.

    Raises
    ------
    UsageError
        Ray is missing, or the cluster at ``address`` cannot be reached.
    """
    require_ray()
    import ray

    key = address or "local"
    if ray.is_initialized():
        if not _KEPT or _KEPT[0] == key:
            return
        ray.shutdown()
    _KEPT[:] = []
    _connect(address, workers)
    _KEPT.append(key)


@contextmanager
def ray_session(address: str | None = None, workers: int = 2) -> Iterator[None]:
    """Be connected to Ray inside the block: to ``address``, or to a local instance.

    A session opened here is closed at the end; inside one that is already open (a caller
    that audits several models, or a test's instance) nothing is started or stopped.

    Raises
    ------
    UsageError
        When the cluster at ``address`` cannot be reached.
    """
    require_ray()
    import ray

    started = _connect(address, workers)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _actor_cpus(workers: int) -> float:
    """Logical CPUs per actor such that the actors leave :data:`READ_RESERVE` free."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    if total < READ_RESERVE + 0.1 * workers:
        raise UsageError(
            f"the Ray cluster has {total:g} CPUs, too few for {workers} workers",
            fix="start more nodes or pass a smaller --workers",
        )
    return min(1.0, (total - READ_RESERVE) / workers)


def engine_info(workers: int, address: str | None) -> dict:
    """What ``audit.json`` records about a Ray run."""
    import ray

    return {"name": "ray", "ray_version": ray.__version__, "workers": int(workers),
            "address": address or "local"}


def run_audit_ray(
    dataset: Manifest,
    model: Any,
    model_spec: str,
    settings: AuditSettings,
    out_dir: str | Path,
    *,
    trust: bool = False,
    resume: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    address: str | None = None,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
    fault_marker: str | None = None,
) -> ResultStore:
    """Audit every row not yet done on Ray, streaming each finished batch into the store.

    Parameters
    ----------
    dataset : Manifest
        Rows to audit.
    model : LoadedModel
        The model as the driver loaded it (its name, hash and input recipe are used; it is
        never sent to workers).
    model_spec : str
        How workers load the same model (``demo``, a card path or a model file).
    settings : AuditSettings
        Method, layer, parameters, batch size, target, heat size.
    out_dir : str or Path
        The store's folder (shared with the local engine, so ``--resume`` works across both).
    trust : bool
        Explicit trust for code-bearing model files, passed to every worker.
    resume : bool
        Continue the run in ``out_dir``.
    progress, cancel
        Progress callback (images/s and ETA) and cancel token, checked between batches.
    address : str, optional
        ``auto`` or ``HOST:PORT`` of a running cluster; None starts a local instance.
    workers : int
        Actors in the pool, each holding one copy of the model.
    gpus_per_worker : float
        GPUs each actor asks for (0 runs on CPUs).
    fault_marker : str, optional
        Test-only fault injection (see :class:`AuditWorker`).

    Raises
    ------
    engine.core.cancel.Cancelled
        When cancelled (or interrupted); the finished batches stay in the store.
    UsageError
        For a cluster without enough CPUs, or an unreachable address.
    """
    require_ray()
    import ray

    progress = progress or (lambda f, m="": None)
    cancel = cancel or CancelToken()
    workers = max(1, int(workers))
    the_plan = plan(model, settings)
    store = ResultStore(out_dir, run_header(dataset, model, the_plan, settings), resume=resume)
    todo = todo_rows(dataset, store)
    meter = Throughput(len(dataset.rows), len(dataset.rows) - len(todo))
    progress(meter.fraction, f"{meter.finished}/{meter.total} images")
    if not todo:
        return store
    try:
        with ray_session(address, workers):
            step = max(1, int(settings.batch_size))
            device = "cuda" if gpus_per_worker > 0 else "cpu"
            ds = ray.data.from_items([{"row": row_to_json(r)} for r in todo],
                                     override_num_blocks=max(1, -(-len(todo) // step)))
            ds = ds.map_batches(decode_rows, batch_size=step, batch_format="numpy",
                                num_cpus=READ_CPUS,
                                fn_kwargs={"recipe": InputRecipe.from_model(
                                    model, settings.keep_identifiers)})
            ds = ds.map_batches(
                AuditWorker,
                compute=ray.data.ActorPoolStrategy(size=workers),
                batch_size=step,
                batch_format="numpy",
                num_cpus=_actor_cpus(workers),
                num_gpus=gpus_per_worker or None,
                fn_constructor_kwargs={
                    "model_spec": str(model_spec), "sha256": model.sha256, "trust": trust,
                    "settings": dataclasses.asdict(settings), "roles": list(dataset.roles),
                    "device": device, "fault_marker": fault_marker,
                },
            )
            # Ray Data restarts a lost actor and retries its batch (infinite restarts and task
            # retries are its defaults for actor pools); the store reads a record once even when
            # a retried batch was written twice.
            with warnings.catch_warnings():
                # Fewer blocks than actors (a small resumed tail) is fine, not worth a warning.
                warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors")
                for out in ds.iter_batches(batch_size=step, batch_format="numpy"):
                    cancel.check()
                    records = [json.loads(str(t)) for t in out["record"]]
                    for i, rec in enumerate(records):
                        if rec.pop("has_heat", False):
                            rec["heat_index"] = i
                    store.append_batch(records, out["heat"])
                    message = meter.add(len(records))
                    progress(meter.fraction, message)
    except KeyboardInterrupt:
        raise Cancelled() from None
    return store
