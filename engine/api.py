"""Lucida for notebooks and scripts: open, load, explain, measure, audit, draw.

A small, stable facade over the engine; everything it returns is plain Python and numpy::

    from engine import api

    image = api.open_image("scan.dcm")
    model = api.load_model("demo")
    result = api.explain(image, model, methods=["gradcam", "occlusion"], target="nodule")
    result.maps["gradcam", "features"]        # numpy heatmap in image geometry, 0..1
    result.prediction                         # {"normal": 0.03, "nodule": 0.97}
    api.metrics(result)["deletion_auc"]
    api.figure(result)                        # a PIL image; Jupyter displays it

Stability: the names in ``__all__`` and the documented fields of :class:`Explanation` keep their
meaning across releases; anything else in ``engine`` may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Explanation", "audit", "explain", "figure", "load_model", "metrics", "open_image",
           "open_volume"]


def open_image(path: str | Path):
    """Open a DICOM or raster image (PNG, JPEG, TIFF, BMP).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    engine.studies.image.Image
        With ``render()`` (what the viewer shows) and ``model_input()``.

    Raises
    ------
    engine.core.errors.StudyError
        One line naming the file and the fix.
    """
    from engine.studies.image import open_image as _open

    return _open(path)


def open_volume(path: str | Path):
    """Open a CT/MR series folder or a NIfTI file as a volume in patient space.

    Raises
    ------
    engine.core.errors.StudyError
        For bad geometry (missing slices, uneven spacing, ...), naming the series.
    """
    from engine.studies import volume

    return volume.open_volume(path)


def load_model(spec: str | Path, *, trust: bool = False, device: str = "auto"):
    """Load a model: ``demo``, ``demo-biased``, ``demo-seg``, a card, or a model file.

    Parameters
    ----------
    spec : str or Path
        What ``--model`` takes on the command line.
    trust : bool
        Allow files that run code when loaded (pickles, archives, ``python:`` cards).
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu`` or ``cuda``.

    Returns
    -------
    engine.models.loaded.LoadedModel
    """
    from engine.explain.session import resolve_device
    from engine.models.loaded import load_model as _load

    return _load(spec, trust=trust, device=str(resolve_device(device)))


@dataclass
class Explanation:
    """What :func:`explain` returns.

    Attributes
    ----------
    maps : dict
        ``(method, layer) -> numpy`` heatmap in image geometry: 0..1, or -1..1 for signed
        methods.
    raw : dict
        ``(method, layer) -> numpy`` map in the explainer's own geometry and units.
    prediction : dict
        Class name -> probability (pixel share for segmentation models).
    target : str
        The class explained.
    provenance : dict
        Model name and SHA-256, methods, parameters, timings, intended-use check, warnings,
        and ``case``: what was explained, by content (never by path; see
        :class:`engine.core.case.Case`).
    """

    maps: dict[tuple[str, str], np.ndarray]
    raw: dict[tuple[str, str], np.ndarray]
    prediction: dict[str, float]
    target: str
    provenance: dict
    result: Any = field(repr=False, default=None)
    image: Any = field(repr=False, default=None)
    model: Any = field(repr=False, default=None)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{c}</td><td>{p:.3f}</td></tr>"
                       for c, p in self.prediction.items())
        return (f"<b>{self.provenance['model']['name']}</b> explains <b>{self.target}</b> with "
                f"{', '.join(f'{m}/{lay}' for m, lay in self.maps)}"
                f"<table>{rows}</table>")


def explain(image, model, methods: list[str] | str = "gradcam", layers: str | list = "auto",
            target: str | int = "top", params: dict | None = None, versus: str | None = None,
            frame: int = 0) -> Explanation:
    """Explain one image with one or more methods, through the same core the app uses.

    Parameters
    ----------
    image : Image
        From :func:`open_image`.
    model : LoadedModel
        From :func:`load_model`.
    methods : list of str or str
        Registry keys (``python main.py methods`` lists them).
    layers : str or list
        ``auto``, ``all`` or layer names.
    target : str or int
        ``top``, a class name or index.
    params : dict, optional
        Parameters per method, e.g. ``{"rise": {"n_masks": 500}}``.
    versus : str, optional
        A second class for a contrastive target.
    frame : int
        Frame of a multi-frame image.
    """
    from engine.explain.session import ExplainRequest, Session

    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else methods
    result = Session(device=str(getattr(model, "device", "cpu"))).explain(ExplainRequest(
        image=image, model=model, methods=list(names), layers=layers, target=target,
        frame=frame, params=params or {}, versus=versus))
    return Explanation(
        maps={k: m.heatmap for k, m in result.maps.items()},
        raw={k: m.raw for k, m in result.maps.items()},
        prediction=dict(zip(result.classes, result.scores, strict=True)),
        target=result.target_name,
        provenance={"model": result.model, "params": result.params,
                    "timings_ms": result.timings_ms, "intended_use": result.intended_use,
                    "warnings": list(result.warnings), "versus": result.versus,
                    "case": result.case.as_dict()},
        result=result, image=image, model=model,
    )


def metrics(explanation: Explanation, method: str | None = None, layer: str | None = None,
            roi: tuple[int, int, int, int] | None = None, sanity: bool = True) -> dict:
    """The trust metrics of one map of an explanation (its first map by default).

    Returns the dict of :func:`engine.metrics.case_metrics`: ``deletion_auc``,
    ``insertion_auc``, ``average_drop``, ``sanity_spearman``, with ``roi`` ``pointing_hit``
    and ``energy_in_roi``, a plain-language ``summary``, and ``uncertainty`` (test-time
    augmentation and MC dropout, see :func:`engine.metrics.battery.trust_battery`).
    """
    from engine.metrics.battery import trust_battery

    m, lay = (method, layer) if method else next(iter(explanation.maps))
    return trust_battery(None, explanation.result, explanation.image, explanation.model, m,
                        lay or next(k[1] for k in explanation.maps if k[0] == m), roi=roi,
                        sanity=sanity)


def audit(dataset: str | Path, model, method: str = "gradcam",
          out: str | Path = "audit", *, engine: str = "local", keep_identifiers: bool = False,
          pdf: bool = True, **settings) -> dict:
    """Run the bias audit over a manifest CSV or a DICOM folder; return ``audit.json``'s content.

    The same audit as ``python main.py audit`` (:func:`engine.audit.job.run_audit_job`), with
    the same defaults.

    Parameters
    ----------
    dataset : str or Path
        A manifest CSV or a folder of DICOM files.
    model : LoadedModel or str or Path
        From :func:`load_model`, or what it takes (``demo``, a card, a model file). The Ray
        engine loads the model on each worker, so it needs the latter.
    method : str
        Registry key of the explainer.
    out : str or Path
        Where the results stream and the outputs are written.
    engine : str
        ``local`` or ``ray``.
    keep_identifiers : bool
        Keep image paths in the outputs (by default images are ``case-001``... and digests).
    pdf : bool
        Write report.pdf, as the command line does unless told ``--no-pdf``.
    **settings
        Other :class:`engine.audit.settings.AuditSettings` fields (``layer``, ``params``,
        ``target``, ``batch_size``...) and :class:`engine.audit.settings.AuditRequest` fields
        (``address``, ``workers``, ``trust``, ``device``, ``resume``...).
    """
    from dataclasses import fields

    from engine.audit.job import run_audit_job
    from engine.audit.settings import AuditRequest, AuditSettings
    from engine.core.errors import UsageError

    loaded = None if isinstance(model, str | Path) else model
    if loaded is not None and engine != "local":
        raise UsageError("the Ray engine loads the model on each worker",
                         fix="pass the model's spec (demo, a card or a model file), not the "
                         "loaded model")
    audit_fields = {f.name for f in fields(AuditSettings)}
    request = AuditRequest(
        dataset=str(dataset), model=str(model) if loaded is None else loaded.name, out=str(out),
        engine=engine, pdf=pdf,
        settings=AuditSettings(method=method, keep_identifiers=keep_identifiers,
                               **{k: v for k, v in settings.items() if k in audit_fields}),
        **{k: v for k, v in settings.items() if k not in audit_fields},
    )
    return run_audit_job(request, model=loaded).audit


def figure(explanation: Explanation, **options):
    """An annotated figure of an explanation as a PIL image (Jupyter displays it).

    ``options`` are :class:`engine.export.figure.FigureOptions` fields (``kind``,
    ``colormap``, ``opacity``, ``threshold``, ``dpi``, ``method``, ``layer``...).
    """
    from PIL import Image as PILImage

    from engine.export.figure import FigureOptions, render_figure

    drawn = render_figure(explanation.result, explanation.image, FigureOptions(**options))
    return PILImage.fromarray(drawn.rgb)
