"""The bias audit as one job: load, run (here or on Ray), write every output.

The command line, the Audit view and ``engine.api.audit`` all describe an audit with one
:class:`~engine.audit.settings.AuditRequest` and run it here, so they load, run and write the
same way. :class:`AuditJob` keeps the dataset and model it loaded, so a job that was paused
(the GUI's worker preempts background work) runs again and resumes its stored batches.
:class:`DemoAuditJob` generates the demo phantoms, audits them with both demo models and
writes their comparison (:mod:`engine.audit.compare`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from engine.audit.compare import write_comparison
from engine.audit.manifest import Manifest, load_dataset
from engine.audit.outputs import case_names, write_outputs
from engine.audit.runner import run_audit
from engine.audit.settings import ENGINES, AuditRequest
from engine.audit.store import HEADER, ResultStore
from engine.core.cancel import CancelToken, ProgressFn
from engine.core.errors import UsageError

__all__ = ["AuditJob", "AuditOutcome", "DemoAuditJob", "DemoOutcome", "demo_request",
           "run_audit_job"]


@dataclass(frozen=True)
class AuditOutcome:
    """What one audit wrote, and how to find its images again in this process.

    Attributes
    ----------
    audit : dict
        The content of ``audit.json``.
    out : Path
        The folder it was written to.
    engine : dict
        Which engine ran it (as ``audit.json`` records it).
    case_paths : dict
        Each image's name in the outputs (its pseudonym) to its file: held in memory for the
        application that ran the audit, never written.
    """

    audit: dict
    out: Path
    engine: dict
    case_paths: dict[str, Path]


class AuditJob:
    """One audit, run once or, after a pause, again: a rerun resumes its stored batches.

    Parameters
    ----------
    request : AuditRequest
        The dataset, model, settings, engine and outputs.
    model : LoadedModel, optional
        The model ``request.model`` names, already loaded (a notebook's); Ray workers still
        load their own copy from ``request.model``.
    """

    def __init__(self, request: AuditRequest, model=None) -> None:
        if request.engine not in ENGINES:
            raise UsageError(f"unknown engine {request.engine!r}",
                             fix="use " + " or ".join(ENGINES))
        if request.clusters is not None and request.clusters < 1:
            raise UsageError(f"cannot make {request.clusters} clusters",
                             fix="ask for --clusters 1 or more, or leave it to the eigengap")
        self.request = request
        self._model = model
        self._loaded: tuple[Manifest, object] | None = None
        self._started = False

    def load(self) -> tuple[Manifest, object]:
        """Read the dataset and load the model, the first time only.

        Raises
        ------
        UsageError, ModelError
            A dataset or model that cannot be used, in one line.
        """
        if self._loaded is None:
            from engine.explain.session import resolve_device
            from engine.models.loaded import load_model

            req = self.request
            dataset = load_dataset(req.dataset)
            model = self._model or load_model(req.model, trust=req.trust,
                                              device=str(resolve_device(req.device)))
            self._loaded = (dataset, model)
        return self._loaded

    def run(self, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> AuditOutcome:
        """Audit every image not yet done and write audit.json, audit.csv, heatmaps, clusters,
        report.pdf.

        Parameters
        ----------
        progress : callable, optional
            ``progress(fraction, message)`` with images done, rate and ETA.
        cancel : CancelToken, optional
            Checked between batches; a cancelled run keeps its finished batches.

        Raises
        ------
        engine.core.cancel.Cancelled
            When cancelled; run again (or with ``resume``) to continue.
        """
        progress = progress or (lambda f, m="": None)
        cancel = cancel or CancelToken()
        req = self.request
        dataset, model = self.load()
        resume = req.resume or self._started
        self._started = True  # a rerun picks up the batches this one stores
        if req.engine == "ray":
            store, engine = self._run_ray(dataset, model, resume, progress, cancel)
        else:
            store = run_audit(dataset, model, req.settings, req.out, resume=resume,
                              progress=progress, cancel=cancel)
            engine = {"name": "local", "workers": 1}
        cancel.check()
        progress(1.0, "writing audit.json, audit.csv, heatmaps"
                 + (" and report.pdf" if req.pdf else ""))
        header = json.loads((Path(req.out) / HEADER).read_text())
        names = case_names(store, dataset)
        audit = write_outputs(store, dataset, model, header, req.out, pdf=req.pdf,
                              engine=engine, names=names, clusters=req.clusters)
        by_row = {row.index: row.path for row in dataset.rows}
        case_paths = {names[rec["key"]]: by_row[rec["row"]] for rec in store.records()}
        return AuditOutcome(audit, Path(req.out), engine, case_paths)

    def _run_ray(self, dataset, model, resume: bool, progress,
                 cancel) -> tuple[ResultStore, dict]:
        from engine.audit import ray_engine

        req = self.request
        ray_engine.require_ray()
        if req.keep_ray_session:
            progress(0.0, f"connecting to Ray ({req.address or 'a local instance'})…")
            ray_engine.stay_connected(req.address, req.workers)
        store = ray_engine.run_audit_ray(
            dataset, model, req.model, req.settings, req.out, trust=req.trust, resume=resume,
            progress=progress, cancel=cancel, address=req.address, workers=req.workers,
            gpus_per_worker=req.gpus_per_worker,
        )
        return store, ray_engine.engine_info(req.workers, req.address)


def run_audit_job(request: AuditRequest, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None, model=None) -> AuditOutcome:
    """Load the dataset and model of ``request``, audit, and write every output.

    Parameters
    ----------
    request : AuditRequest
        What to audit, how, where, and on which engine.
    progress, cancel
        Progress callback and cancel token (see :meth:`AuditJob.run`).
    model : LoadedModel, optional
        ``request.model`` already loaded (see :class:`AuditJob`).

    Returns
    -------
    AuditOutcome
        ``audit.json``'s content, the folder, the engine, and the pseudonyms' files.
    """
    return AuditJob(request, model).run(progress, cancel)


@dataclass(frozen=True)
class DemoOutcome:
    """The demo audit: one outcome per demo model, and their comparison."""

    outcomes: dict[str, AuditOutcome]
    comparison: dict


def demo_request(out: str | Path, **fields) -> AuditRequest:
    """The request of a demo audit in ``out``: its data goes to ``out/data``.

    ``fields`` are the other :class:`AuditRequest` fields (settings, engine, resume...).
    """
    from engine.demo.audit import DEMO_MODELS

    return AuditRequest(dataset=str(Path(out) / "data" / "manifest.csv"), model=DEMO_MODELS[0],
                        out=str(out), **fields)


class DemoAuditJob:
    """Generate the demo phantoms, audit them with both demo models, compare the two.

    Parameters
    ----------
    request : AuditRequest
        From :func:`demo_request`: the settings, engine and folder; each demo model's audit
        goes to ``out/<model>`` and the comparison to ``out``.
    n : int
        Phantoms per set (correlated and counterfactual).
    seed : int, optional
        Seed of the correlated set (the counterfactual one uses ``seed + 1``).
    """

    def __init__(self, request: AuditRequest, n: int, seed: int | None = None) -> None:
        from engine.demo.audit import DEMO_MODELS, DEMO_SEED

        self.request, self.n = request, int(n)
        self.seed = DEMO_SEED if seed is None else int(seed)
        self._data_ready = False
        self._jobs = {name: AuditJob(replace(request, model=name,
                                             out=str(Path(request.out) / name)))
                      for name in DEMO_MODELS}

    def run(self, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> DemoOutcome:
        """Run (or, after a pause, resume) the demo audit and write its comparison.

        The phantoms are generated once (kept with ``resume`` when already there); the first
        fifth of the progress is theirs, the rest the two audits'.
        """
        from engine.demo.audit import build_demo_dataset

        progress = progress or (lambda f, m="": None)
        cancel = cancel or CancelToken()
        req = self.request
        manifest = Path(req.dataset)
        if not self._data_ready:
            if not (req.resume and manifest.is_file()):
                build_demo_dataset(
                    manifest.parent, self.n, self.seed, cancel=cancel,
                    progress=lambda f, m="": progress(
                        0.2 * f, m or f"generating {self.n} + {self.n} demo phantoms…"))
            self._data_ready = True
        outcomes = {}
        with self._engine_session():
            for k, (name, job) in enumerate(self._jobs.items()):
                def sub(f, m="", k=k, name=name):
                    progress(0.2 + 0.8 * (k + f) / len(self._jobs), f"{name}: {m}")

                outcomes[name] = job.run(sub, cancel)
        comparison = write_comparison({name: o.out for name, o in outcomes.items()}, req.out)
        return DemoOutcome(outcomes, comparison)

    def _engine_session(self):
        """One Ray session for both models (a start costs seconds), unless one is kept."""
        req = self.request
        if req.engine != "ray" or req.keep_ray_session:
            return contextlib.nullcontext()
        from engine.audit import ray_engine

        return ray_engine.ray_session(req.address, req.workers)
