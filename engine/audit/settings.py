"""What an audit is asked to do, as frozen values shared by the CLI, the GUI and ``engine.api``.

:class:`AuditSettings` says how each image is explained (what the Ray workers need too);
:class:`AuditRequest` adds the dataset, the model, the output folder and the engine. Every
caller builds one :class:`AuditRequest` and hands it to :func:`engine.audit.job.run_audit_job`,
so a default (the target, the batch size) is written once, here. This module imports neither
torch nor the rest of the audit, so argument parsers and widgets can read the defaults cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Target modes: explain the predicted class, or the labelled class.
TARGETS = ("top", "label")
#: Where the batches run: in this process, or on a Ray cluster.
ENGINES = ("local", "ray")


@dataclass(frozen=True)
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
    decode_processes : int or None
        Processes that read and preprocess the next batches while the model runs (see
        :mod:`engine.audit.decode_pool`); None picks one per spare CPU, 0 reads in this
        process. Results are the same either way.
    keep_identifiers : bool
        Keep image paths in the records and outputs. By default they hold the image's
        content digest and, in the outputs, a per-export pseudonym (``case-001``) instead.
    """

    method: str = "gradcam"
    layer: str = "auto"
    params: dict = field(default_factory=dict)
    target: str = "top"
    batch_size: int = 16
    heat_size: int = 64
    decode_processes: int | None = None
    keep_identifiers: bool = False


@dataclass(frozen=True)
class AuditRequest:
    """One audit: the dataset, the model, the settings, the engine and what to write.

    Attributes
    ----------
    dataset : str
        A manifest CSV or a folder of DICOM files.
    model : str
        What ``load_model`` takes: ``demo``, ``demo-biased``, a card or a model file.
    out : str
        The output folder.
    settings : AuditSettings
        Method, layer, parameters, target, batch size, identifiers.
    engine : str
        ``"local"`` or ``"ray"``.
    address : str or None
        ``--engine ray``: ``auto`` or ``HOST:PORT`` of a running cluster; None starts a local
        Ray instance.
    workers : int
        ``--engine ray``: actors, each loading the model once.
    gpus_per_worker : float
        ``--engine ray``: GPUs per actor (0 runs on CPUs).
    keep_ray_session : bool
        Stay connected to Ray after the run, for an application that audits now and then
        (a start costs seconds); otherwise a session the run opened is closed with it.
    trust : bool
        Allow model files that can run code when loaded.
    device : str
        ``auto`` (CUDA, MPS, CPU), ``cpu``, ``cuda`` or ``mps``.
    resume : bool
        Continue the run in ``out``; finished images are not redone.
    pdf : bool
        Write report.pdf.
    clusters : int or None
        Clusters per class of the heatmap discovery (:mod:`engine.audit.discovery`); None
        lets the eigengap decide.
    """

    dataset: str
    model: str
    out: str
    settings: AuditSettings = field(default_factory=AuditSettings)
    engine: str = "local"
    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0
    keep_ray_session: bool = False
    trust: bool = False
    device: str = "auto"
    resume: bool = False
    pdf: bool = True
    clusters: int | None = None
