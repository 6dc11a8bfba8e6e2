"""``python main.py explain``: heatmaps, overlays and ``result.json`` for images and volumes.

A folder (one CT/MR series), a ``.nii``/``.nii.gz`` file, or with a 3-D model an enhanced
multi-frame file, is explained as a volume: a 3-D model reads it whole, a 2-D model slice by
slice (``--slices``). Maps are then (slices, rows, columns) on the volume's own grid.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from engine.core.errors import LucidaError, UsageError
from engine.metrics.localisation import parse_roi

#: What ``--report`` can write for a volume a 3-D model explained: the multi-frame Parametric
#: Map, and the reports and files of :func:`engine.export.volume_report.write_volume_exports`.
VOLUME_REPORTS = ("pm", "pdf", "html", "png", "nifti")
#: Of those, the ones a 2-D image has no use for.
VOLUME_ONLY = ("nifti",)


def _reports(text: str | None) -> list[str]:
    """The formats ``--report`` names, lower case, blanks dropped."""
    return [f.strip().lower() for f in (text or "").split(",") if f.strip()]


def register(subparsers) -> None:
    """Add the ``explain`` sub-command."""
    p = subparsers.add_parser(
        "explain", help="explain a model's decision on image files",
        description="Writes OUT/<stem>/image.png, overlay_<method>_<layer>.png, "
        "heatmap_<method>_<layer>.npy and result.json for each file. For a series folder or "
        "NIfTI file: heatmap_<method>_<layer>.npy shaped (slices, rows, columns) on the "
        "volume's grid, overlay_<plane>_<method>_<layer>.png through the map's peak, "
        "volume_geometry.json and result.json. Exit codes: 0 success, 2 bad input or usage, "
        "1 some of several files failed.",
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="DICOM or raster images, CT/MR series folders, NIfTI files")
    p.add_argument("--model", required=True, metavar="CARD",
                   help="demo, demo-biased, a model card (.toml) or a model file")
    p.add_argument("--method", default="gradcam", metavar="NAME[,NAME...]",
                   help="explainers (see `python main.py methods`); default gradcam")
    p.add_argument("--layer", default="auto", metavar="auto|all|NAME[,NAME...]",
                   help="layers for layer-based methods (see `python main.py layers`)")
    p.add_argument("--target", default="top", metavar="top|INDEX|CLASSNAME",
                   help="class to explain; default the top-scoring class")
    p.add_argument("--versus", default=None, metavar="INDEX|CLASSNAME",
                   help="contrastive target: explain logit(target) - logit(versus), what makes "
                   "the model say the target rather than this class")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--param", action="append", default=[], metavar="[METHOD.]NAME=VALUE",
                   help="explainer parameter from its schema (see `python main.py methods`); "
                   "repeatable; a bare NAME applies to every chosen method that has it")
    p.add_argument("--frame", type=int, default=0, help="frame of multi-frame images")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that run code when loaded (pickles)")
    p.add_argument("--colormap", default="jet", help="overlay colormap")
    p.add_argument("--metrics", action="store_true", help="add trust metrics to result.json")
    p.add_argument("--roi", metavar="X0,Y0,X1,Y1",
                   help="region of interest in image pixels (pointing game, energy in ROI); "
                   "for volumes X0,Y0,Z0,X1,Y1,Z1 in voxels (columns, rows, slices)")
    p.add_argument("--slices", default=None, metavar="all|N|A:B",
                   help="run a 2-D model over a volume slice by slice: all slices (the "
                   "default), one, or A:B (B excluded)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="slices per model pass with --slices (default 16)")
    p.add_argument("--report", metavar="pdf,html,dicom",
                   help="also write reports in these formats; for volumes pm (a multi-frame "
                   "Parametric Map), and with a 3-D model also pdf, html, png (the planes "
                   "figure) and nifti (the maps as NIfTI)")
    p.add_argument("--send", metavar="NODE",
                   help="file the results into the patient's study on this PACS node "
                   "(needs --keep-identifiers; see `python main.py pacs`)")
    p.add_argument("--keep-identifiers", action="store_true",
                   help="keep patient identifiers in reports and the full image path in "
                   "result.json (by default only the file name is stored)")
    p.set_defaults(func=run)


def parse_params(pairs: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    """Sort ``--param`` values into per-method dicts, using the explainers' schemas.

    ``METHOD.NAME=VALUE`` sets one method's parameter; ``NAME=VALUE`` sets it for every chosen
    method that declares ``NAME``. Values are checked later against the schema.

    Raises
    ------
    UsageError
        For a malformed pair, or a name no chosen method declares.
    """
    from engine.explain.registry import registry

    reg = registry()
    schemas = {m: {p.name for p in reg.get(m).params} for m in methods}
    out: dict[str, dict[str, str]] = {m: {} for m in methods}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {pair!r} is not NAME=VALUE", fix="write e.g. --param k=16")
        name = name.strip()
        method, dot, pname = name.rpartition(".")
        if dot:
            if method not in schemas:
                raise UsageError(f"--param {pair!r} names method {method!r}, which is not chosen",
                                 fix=f"chosen methods: {', '.join(methods)}")
            targets = [method] if pname in schemas[method] else []
        else:
            pname = name
            targets = [m for m in methods if pname in schemas[m]]
        if not targets:
            valid = sorted({f"{m}.{p}" for m, names in schemas.items() for p in names})
            raise UsageError(f"no chosen method has a parameter {pname!r}",
                             fix=f"valid: {', '.join(valid) or 'none'}")
        for m in targets:
            out[m][pname] = value
    return out


def _explain_one(args, path, folder, session, model, request_kw, load_ms, roi) -> str:
    from engine.explain.session import ExplainRequest
    from engine.export.results import write_explain_outputs
    from engine.studies.image import open_image

    start = time.perf_counter()
    image = open_image(path)
    open_ms = (time.perf_counter() - start) * 1000.0
    result = session.explain(ExplainRequest(image=image, model=model, frame=args.frame,
                                            **request_kw))
    metrics = None
    if args.metrics or roi is not None:
        from engine.metrics import case_metrics

        method, layer = next(iter(result.maps))
        metrics = case_metrics(session, result, image, model, method, layer, roi=roi)
        metrics = {"method": method, "layer": layer, **metrics}
    timings = dict(result.timings_ms, load=load_ms + open_ms)
    write_explain_outputs(result, image, folder, timings, metrics, cmap=args.colormap,
                          keep_identifiers=args.keep_identifiers)
    reports = [f for f in _reports(args.report) if f not in VOLUME_ONLY]
    if reports:
        from engine.export import write_reports

        # No screen here: the report holds every map the command asked for.
        write_reports(result, image, folder, reports,
                      keep_identifiers=args.keep_identifiers, metrics=metrics,
                      figure_options={"colormap": args.colormap}, all_maps=True)
    filed = ""
    if args.send:
        from engine.pacs.filing import file_into_study

        filed = "\n" + file_into_study(result, image, folder, args.send_node, metrics=metrics,
                                       colormap=args.colormap)
    else:
        from engine.export.export_kind import record_research

        record_research(folder, keep_identifiers=args.keep_identifiers)
    top = result.scores[result.target]
    return (f"{path}: {result.target_name} ({top:.3f}), {len(result.maps)} map(s) -> {folder}"
            + "".join(f"\n  warning: {w}" for w in result.warnings) + filed)


def _is_volume_input(path: Path, model) -> bool:
    from engine.studies.volume import is_nifti

    return path.is_dir() or is_nifti(path) or bool(model.is_volumetric and path.is_file())


def _volume_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem if path.is_file() else name


def _explain_volume(args, path, folder, session, model, request_kw, load_ms) -> str:
    from engine.explain.session import ExplainRequest
    from engine.export.volume import volume_result_json, write_volume_outputs
    from engine.studies.volume import open_volume

    reports = _reports(args.report)
    allowed = VOLUME_REPORTS if model.is_volumetric else ("pm",)
    unknown = [f for f in reports if f not in allowed]
    if unknown:
        what = ("a 3-D model's volume reports are " + ", ".join(VOLUME_REPORTS)
                if model.is_volumetric else
                "a 2-D model run over the slices writes pm (a multi-frame Parametric Map) only")
        raise UsageError(f"--report {','.join(unknown)}: {what}", path=path,
                         fix=f"use --report {','.join(allowed)} or a subset, or drop --report")
    start = time.perf_counter()
    volume = open_volume(path)
    open_ms = (time.perf_counter() - start) * 1000.0
    if args.send and not volume.images:
        raise UsageError("is not a DICOM series, so it has no study to file into", path=path,
                         fix="explain the series folder, or drop --send")
    roi = None
    if args.roi is not None:
        from engine.metrics.volume import parse_box3d

        roi = parse_box3d(args.roi)
    slices = None
    if model.is_volumetric:
        if args.slices is not None:
            raise UsageError("--slices runs a 2-D model over a volume; this model reads "
                             "volumes whole", fix="drop --slices")
        result = session.explain(ExplainRequest(image=volume, model=model, **request_kw))
        maps, classes, scores = result.maps, result.classes, result.scores
        target, params, warnings = result.target, result.params, result.warnings
        timings, use, versus = result.timings_ms, result.intended_use, result.versus
    else:
        from engine.explain.slices import explain_slices

        stack = explain_slices(model, volume, request_kw["methods"], request_kw["layers"],
                               request_kw["target"], request_kw["params"],
                               args.slices or "all", args.batch_size, request_kw["versus"])
        maps, classes, params = stack.maps, stack.classes, stack.params
        scores = [float(v) for v in stack.scores.max(axis=0)]
        target = int(np.bincount(stack.targets).argmax())
        warnings, timings, use = stack.warnings, stack.timings_ms, stack.intended_use
        versus = request_kw["versus"]
        slices = {"explained": stack.slices, "prediction_is": "per-class maximum over slices",
                  "per_slice": [{"slice": k, "target": classes[t],
                                 "prediction": dict(zip(classes, map(float, row),
                                                        strict=True))}
                                for k, t, row in zip(stack.slices, stack.targets,
                                                     stack.scores, strict=True)]}
    metrics = None
    if args.metrics or roi is not None:
        method, layer = next(iter(maps))
        if model.is_volumetric:
            from engine.metrics import case_metrics

            metrics = case_metrics(session, result, volume, model, method, layer, roi=roi)
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
        keep_identifiers=args.keep_identifiers)
    pm_files = []
    if "pm" in reports:
        from engine.export.dicom_objects import research_volume_files

        pm_files = research_volume_files(maps, volume, keep_identifiers=args.keep_identifiers)
    write_volume_outputs(volume, maps, folder, content, cmap=args.colormap)
    figures = [f for f in reports if f != "pm"]
    if figures:
        from engine.export.volume_report import write_volume_exports

        # No screen here: the report holds every map the command asked for, through its peak.
        write_volume_exports(result, volume, folder, figures,
                             keep_identifiers=args.keep_identifiers,
                             figure_options={"colormap": args.colormap}, all_maps=True)
    if pm_files:
        from engine.export.export_kind import publish_research

        publish_research(folder, pm_files, keep_identifiers=args.keep_identifiers)
    filed = ""
    if args.send:
        from engine.pacs.filing import file_volume_into_study

        filed = "\n" + file_volume_into_study(maps, volume, folder, args.send_node)
    s, r, c = volume.shape
    return (f"{path}: {classes[target]} ({scores[target]:.3f}), {len(maps)} map(s) of "
            f"{s}x{r}x{c} -> {folder}" + "".join(f"\n  warning: {w}" for w in warnings)
            + filed)


def run(args) -> int:
    """Explain every file; see the module and parser help for the contract."""
    from engine.explain import core
    from engine.explain.colour import COLORMAPS
    from engine.explain.registry import registry
    from engine.explain.session import Session, resolve_device
    from engine.models.loaded import load_model

    if args.colormap not in COLORMAPS:
        raise UsageError(f"unknown colormap {args.colormap!r}", fix=f"use {', '.join(COLORMAPS)}")
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    reg = registry()
    for name in methods:
        reg.get(name)  # an unknown method is a usage error before the model loads
    if not methods:
        raise UsageError("--method is empty", fix=f"use one of {', '.join(reg.names())}")
    params = parse_params(args.param, methods)
    volumes = any(Path(name).is_dir() or Path(name).name.lower().endswith((".nii", ".nii.gz"))
                  for name in args.files)
    roi = None if args.roi is None or volumes else parse_roi(args.roi)
    reports = _reports(args.report)
    two_d = [f for f in reports if f not in VOLUME_ONLY]
    if args.report and (two_d or not reports):  # nifti alone is checked once inputs are known
        from engine.export import _parse_formats

        _parse_formats(two_d)  # a bad --report fails before anything is written
    if args.send:
        from engine.pacs.filing import check_send

        args.send_node = check_send(args.send, keep_identifiers=args.keep_identifiers)
    device = resolve_device(args.device)
    start = time.perf_counter()
    model = load_model(args.model, trust=args.trust_model, device=str(device))
    load_ms = (time.perf_counter() - start) * 1000.0
    # Unknown layers and parameters, or methods that cannot run on this model, are usage
    # errors before any image is read.
    core.plan(model, methods, args.layer, params)
    only = [f for f in reports if f in VOLUME_ONLY]
    if only and not any(_is_volume_input(Path(name), model) for name in args.files):
        raise UsageError(f"--report {','.join(only)} is written for volumes only, and no input "
                         "is a volume", fix=f"drop {','.join(only)} from --report")
    session = Session(device=str(device))
    request_kw = {"methods": methods, "layers": args.layer, "target": args.target,
                  "params": params, "versus": args.versus}
    if args.versus is not None:
        model.resolve_target(args.versus)  # an unknown class is a usage error up front
    out = Path(args.out)
    failures: list[str] = []
    used: set[str] = set()
    for i, name in enumerate(args.files):
        path = Path(name)
        volume = _is_volume_input(path, model)
        base = _volume_stem(path) if volume else path.stem
        stem, n = base, 1
        while stem in used:  # two files with one stem must not overwrite each other
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        try:
            # The model load is charged to the first image, whose timings include it.
            if volume:
                line = _explain_volume(args, path, out / stem, session, model, request_kw,
                                       load_ms if i == 0 else 0.0)
            else:
                if args.slices is not None:
                    raise UsageError("--slices is for volumes (series folders, NIfTI files)",
                                     path=path, fix="drop --slices for 2-D images")
                line = _explain_one(args, path, out / stem, session, model, request_kw,
                                    load_ms if i == 0 else 0.0, roi)
            print(line, flush=True)
        except LucidaError as exc:
            if len(args.files) == 1:
                raise
            failures.append(exc.one_line())
            print(f"error: {exc.one_line()}", file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} of {len(args.files)} files failed", file=sys.stderr)
        return 2 if len(failures) == len(args.files) else 1
    return 0
