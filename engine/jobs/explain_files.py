"""Explain files end to end: load the model once, explain each image or volume, measure, write.

:func:`prepare` checks every setting before any work (methods, parameters, layers, reports, the
PACS node, the device, the model, the classes); :func:`explain_path` then explains one input and
writes its outputs; :func:`explain_files` runs a list of inputs, each failure one line.

The choice of what an input is (an image, a volume a 3-D model reads whole, a volume a 2-D model
reads slice by slice), which metrics fit it and which outputs it gets is made here, once: the
command line only parses arguments and prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.case import Target
from engine.core.errors import LucidaError, UsageError
from engine.core.pseudonym import Pseudonyms

#: What ``--report`` can write for a volume a 3-D model explained: the multi-frame Parametric
#: Map, and the reports and files of :func:`engine.export.volume_report.write_volume_exports`.
VOLUME_REPORTS = ("pm", "pdf", "html", "png", "nifti")
#: Of those, the ones a 2-D image has no use for.
VOLUME_ONLY = ("nifti",)


def parse_reports(text: str | None) -> tuple[str, ...]:
    """The formats a ``--report`` list names, lower case, blanks dropped."""
    return tuple(f.strip().lower() for f in (text or "").split(",") if f.strip())


@dataclass(frozen=True)
class ExplainSettings:
    """Everything one ``explain`` run is asked for (what the command line's flags hold).

    Attributes
    ----------
    model : str
        ``demo``, a card, a model file (what ``--model`` takes).
    methods : tuple of str
        Registry keys.
    layers : str
        ``auto``, ``all`` or comma-separated names.
    target, versus : str or int or None
        The class explained and the contrasted class.
    params : Mapping
        Parameter values per method.
    frame : int
        Frame of multi-frame images.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``mps``.
    trust_model : bool
        Allow model files that run code when loaded.
    colormap : str
        Overlay colormap.
    metrics : bool
        Add the trust metrics.
    roi : str or None
        ``X0,Y0,X1,Y1`` image pixels, or ``X0,Y0,Z0,X1,Y1,Z1`` voxels for a volume.
    slices : str or None
        ``all``, ``N`` or ``A:B``: run a 2-D model over a volume slice by slice.
    batch_size : int
        Slices per pass with ``slices``.
    reports : tuple of str
        Report formats (``pdf``, ``html``, ``dicom``; ``pm``, ``png``, ``nifti`` for volumes).
    send : str or None
        PACS node to file the results into.
    keep_identifiers : bool
        Keep file names, paths and patient identifiers in the outputs.
    """

    model: str
    methods: tuple[str, ...]
    layers: str = "auto"
    target: str | int = "top"
    versus: str | int | None = None
    params: Mapping[str, Mapping] = field(default_factory=dict)
    frame: int = 0
    device: str = "auto"
    trust_model: bool = False
    colormap: str = "jet"
    metrics: bool = False
    roi: str | None = None
    slices: str | None = None
    batch_size: int = 16
    reports: tuple[str, ...] = ()
    send: str | None = None
    keep_identifiers: bool = False


@dataclass
class Prepared:
    """A checked run: the loaded model, the session, and what each input needs."""

    settings: ExplainSettings
    model: Any
    session: Any
    load_ms: float
    node: Any = None
    pseudonyms: Pseudonyms = field(default_factory=Pseudonyms)


def prepare(settings: ExplainSettings, files: list[str] | None = None) -> Prepared:
    """Check every setting, load the model, and return the run ready to explain inputs.

    A bad setting is a usage error before any image is read or anything is written.

    Raises
    ------
    UsageError
        Unknown method, colormap, report format, parameter, layer or class; a report for
        volumes with no volume among ``files``; ``send`` without ``keep_identifiers``.
    ModelError
        The model cannot be loaded.
    """
    from engine.explain import core
    from engine.explain.colour import COLORMAPS
    from engine.explain.registry import registry
    from engine.explain.session import Session, resolve_device
    from engine.models.loaded import load_model

    if settings.colormap not in COLORMAPS:
        raise UsageError(f"unknown colormap {settings.colormap!r}",
                         fix=f"use {', '.join(COLORMAPS)}")
    reg = registry()
    if not settings.methods:
        raise UsageError("--method is empty", fix=f"use one of {', '.join(reg.names())}")
    for name in settings.methods:
        reg.get(name)  # an unknown method is a usage error before the model loads
    two_d = [f for f in settings.reports if f not in VOLUME_ONLY]
    if two_d:
        from engine.export import parse_formats

        parse_formats(two_d)  # a bad --report fails before anything is written
    node = None
    if settings.send:
        from engine.pacs.filing import check_send

        node = check_send(settings.send, keep_identifiers=settings.keep_identifiers)
    device = resolve_device(settings.device)
    start = time.perf_counter()
    model = load_model(settings.model, trust=settings.trust_model, device=str(device))
    load_ms = (time.perf_counter() - start) * 1000.0
    # Unknown layers and parameters, or methods that cannot run on this model, are usage
    # errors before any image is read.
    core.plan(model, list(settings.methods), settings.layers, dict(settings.params))
    if settings.versus is not None:
        model.resolve_target(settings.versus)  # an unknown class is a usage error up front
    only = [f for f in settings.reports if f in VOLUME_ONLY]
    if only and files is not None and not any(is_volume_input(Path(f), model) for f in files):
        raise UsageError(f"--report {','.join(only)} is written for volumes only, and no input "
                         "is a volume", fix=f"drop {','.join(only)} from --report")
    return Prepared(settings=settings, model=model, session=Session(device=str(device)),
                    load_ms=load_ms, node=node)


def is_volume_input(path: Path, model: Any) -> bool:
    """Whether ``path`` is explained as a volume: a folder, a NIfTI file, or any file a 3-D
    model reads (an enhanced multi-frame object)."""
    from engine.studies.volume import is_nifti

    return path.is_dir() or is_nifti(path) or bool(model.is_volumetric and path.is_file())


def _request(run: Prepared, image: Any, frame: int = 0):
    from engine.explain.session import ExplainRequest

    s = run.settings
    return ExplainRequest(image=image, model=run.model, methods=s.methods, layers=s.layers,
                          target=Target(s.target, s.versus), frame=frame, params=s.params)


def _folder(run: Prepared, image: Any, out: Path, used: set[str]) -> Path:
    from engine.export.results import output_name

    base = output_name(image, run.pseudonyms, run.settings.keep_identifiers)
    stem, n = base, 1
    while stem in used:  # two files with one stem must not overwrite each other
        n += 1
        stem = f"{base}-{n}"
    used.add(stem)
    return out / stem


def explain_path(run: Prepared, path: Path, out: Path, used: set[str],
                 load_ms: float = 0.0) -> str:
    """Explain one input and write its outputs under ``out``; return the line to print.

    Parameters
    ----------
    run : Prepared
        From :func:`prepare`.
    path : Path
        An image file, a series folder, a NIfTI file or a multi-frame file.
    out : Path
        The run's output folder; the input's own folder is named by
        :func:`engine.export.results.output_name` (a pseudonym unless identifiers are kept).
    used : set of str
        Folder names already taken in this run.
    load_ms : float
        Model load time to charge to this input (the first one's timings include it).
    """
    if is_volume_input(path, run.model):
        return _explain_volume(run, path, out, used, load_ms)
    if run.settings.slices is not None:
        raise UsageError("--slices is for volumes (series folders, NIfTI files)", path=path,
                         fix="drop --slices for 2-D images")
    return _explain_image(run, path, out, used, load_ms)


def _explain_image(run: Prepared, path: Path, out: Path, used: set[str], load_ms: float) -> str:
    from engine.export.results import write_explain_outputs
    from engine.metrics.localisation import parse_roi
    from engine.studies.image import open_image

    s = run.settings
    roi = None if s.roi is None else parse_roi(s.roi)
    start = time.perf_counter()
    image = open_image(path)
    open_ms = (time.perf_counter() - start) * 1000.0
    folder = _folder(run, image, out, used)
    result = run.session.explain(_request(run, image, s.frame))
    metrics = None
    if s.metrics or roi is not None:
        from engine.metrics.battery import trust_battery

        method, layer = next(iter(result.maps))
        metrics = trust_battery(run.session, result, image, run.model, method, layer, roi=roi)
    timings = dict(result.timings_ms, load=load_ms + open_ms)
    write_explain_outputs(result, image, folder, timings, metrics, cmap=s.colormap,
                          keep_identifiers=s.keep_identifiers, pseudonyms=run.pseudonyms)
    reports = [f for f in s.reports if f not in VOLUME_ONLY]
    if reports:
        from engine.export import write_reports

        # No screen here: the report holds every map the run asked for.
        write_reports(result, image, folder, reports, keep_identifiers=s.keep_identifiers,
                      metrics=metrics, figure_options={"colormap": s.colormap}, all_maps=True,
                      pseudonyms=run.pseudonyms)
    filed = ""
    if run.node is not None:
        from engine.pacs.filing import file_into_study

        filed = "\n" + file_into_study(result, image, folder, run.node, metrics=metrics,
                                       colormap=s.colormap)
    else:
        from engine.export.export_kind import record_research

        record_research(folder, keep_identifiers=s.keep_identifiers)
    top = result.scores[result.target]
    return (f"{path}: {result.target_name} ({top:.3f}), {len(result.maps)} map(s) -> {folder}"
            + "".join(f"\n  warning: {w}" for w in result.warnings) + filed)


def _check_volume_reports(run: Prepared, path: Path) -> list[str]:
    reports = list(run.settings.reports)
    model = run.model
    allowed = VOLUME_REPORTS if model.is_volumetric else ("pm",)
    unknown = [f for f in reports if f not in allowed]
    if unknown:
        what = ("a 3-D model's volume reports are " + ", ".join(VOLUME_REPORTS)
                if model.is_volumetric else
                "a 2-D model run over the slices writes pm (a multi-frame Parametric Map) only")
        raise UsageError(f"--report {','.join(unknown)}: {what}", path=path,
                         fix=f"use --report {','.join(allowed)} or a subset, or drop --report")
    return reports


def _explain_volume(run: Prepared, path: Path, out: Path, used: set[str],
                    load_ms: float) -> str:
    from engine.export.volume import volume_result_json, write_volume_outputs
    from engine.studies.volume import open_volume

    s, model = run.settings, run.model
    reports = _check_volume_reports(run, path)
    start = time.perf_counter()
    volume = open_volume(path)
    open_ms = (time.perf_counter() - start) * 1000.0
    if run.node is not None and not volume.images:
        raise UsageError("is not a DICOM series, so it has no study to file into", path=path,
                         fix="explain the series folder, or drop --send")
    roi = None
    if s.roi is not None:
        from engine.metrics.volume import parse_box3d

        roi = parse_box3d(s.roi)
    folder = _folder(run, volume, out, used)
    slices = None
    result = None
    if model.is_volumetric:
        if s.slices is not None:
            raise UsageError("--slices runs a 2-D model over a volume; this model reads "
                             "volumes whole", fix="drop --slices")
        result = run.session.explain(_request(run, volume))
        maps, classes, scores = result.maps, result.classes, result.scores
        target, params, warnings = result.target, result.params, result.warnings
        timings, use, versus = result.timings_ms, result.intended_use, result.versus
    else:
        from engine.explain.slices import explain_slices

        stack = explain_slices(model, volume, list(s.methods), s.layers, s.target,
                               {m: dict(p) for m, p in s.params.items()},
                               s.slices or "all", s.batch_size, s.versus)
        maps, classes, params = stack.maps, stack.classes, stack.params
        scores = [float(v) for v in stack.scores.max(axis=0)]
        target = int(np.bincount(stack.targets).argmax())
        warnings, timings, use = stack.warnings, stack.timings_ms, stack.intended_use
        versus = s.versus
        slices = {"explained": stack.slices, "prediction_is": "per-class maximum over slices",
                  "per_slice": [{"slice": k, "target": classes[t],
                                 "prediction": dict(zip(classes, map(float, row),
                                                        strict=True))}
                                for k, t, row in zip(stack.slices, stack.targets,
                                                     stack.scores, strict=True)]}
    metrics = None
    if s.metrics or roi is not None:
        method, layer = next(iter(maps))
        if result is not None:
            from engine.metrics.battery import trust_battery

            metrics = trust_battery(run.session, result, volume, model, method, layer, roi=roi)
        elif roi is not None:
            from engine.metrics.volume import roi_metrics_3d

            metrics = {"method": method, "layer": layer,
                       **roi_metrics_3d(maps[(method, layer)].heatmap, roi)}
        else:
            warnings = [*warnings, "--metrics over a 2-D model's slices: only --roi measures "
                        "(pointing, energy) are computed"]
    content = volume_result_json(
        volume, maps, model=model.describe(), classes=classes, scores=scores, target=target,
        params=params, timings_ms=dict(timings, load=load_ms + open_ms), warnings=warnings,
        intended_use=use, versus=versus, metrics=metrics, slices=slices,
        keep_identifiers=s.keep_identifiers, pseudonyms=run.pseudonyms)
    pm_files = []
    if "pm" in reports:
        from engine.export.dicom_objects import research_volume_files

        pm_files = research_volume_files(maps, volume, keep_identifiers=s.keep_identifiers)
    write_volume_outputs(volume, maps, folder, content, cmap=s.colormap)
    figures = [f for f in reports if f != "pm"]
    if figures:
        from engine.export.volume_report import write_volume_exports

        # No screen here: the report holds every map the run asked for, through its peak.
        write_volume_exports(result, volume, folder, figures,
                             keep_identifiers=s.keep_identifiers,
                             figure_options={"colormap": s.colormap}, all_maps=True)
    if pm_files:
        from engine.export.export_kind import publish_research

        publish_research(folder, pm_files, keep_identifiers=s.keep_identifiers)
    filed = ""
    if run.node is not None:
        from engine.pacs.filing import file_volume_into_study

        filed = "\n" + file_volume_into_study(maps, volume, folder, run.node)
    n_s, n_r, n_c = volume.shape
    return (f"{path}: {classes[target]} ({scores[target]:.3f}), {len(maps)} map(s) of "
            f"{n_s}x{n_r}x{n_c} -> {folder}" + "".join(f"\n  warning: {w}" for w in warnings)
            + filed)


@dataclass
class RunSummary:
    """How a run of several inputs ended: one line per failure."""

    total: int
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some failed, 2 all failed (the command line's contract)."""
        if not self.failures:
            return 0
        return 2 if len(self.failures) == self.total else 1


def explain_files(settings: ExplainSettings, files: list[str], out: str | Path, *,
                  on_line: Callable[[str], None] = print,
                  on_error: Callable[[str], None] = print,
                  on_warning: Callable[[str], None] = print) -> RunSummary:
    """Explain every input into ``out``; each one's line goes to ``on_line``.

    With one input its error is raised (one line, exit 2); with several, each failure goes to
    ``on_error`` and the others go on. Each of the model's load notes (a bundle transform that
    could not be mapped, say) goes to ``on_warning`` once, before the first input.

    Raises
    ------
    LucidaError
        A bad setting (see :func:`prepare`), or the single input's error.
    """
    run = prepare(settings, files)
    for note in run.model.notes:
        on_warning(note)
    out = Path(out)
    summary = RunSummary(total=len(files))
    used: set[str] = set()
    for i, name in enumerate(files):
        try:
            # The model load is charged to the first input, whose timings include it.
            on_line(explain_path(run, Path(name), out, used, run.load_ms if i == 0 else 0.0))
        except LucidaError as exc:
            if len(files) == 1:
                raise
            summary.failures.append(exc.one_line())
            on_error(exc.one_line())
    return summary
