"""``python main.py explain``: heatmaps, overlays and ``result.json`` for images and volumes.

A thin caller: it parses the arguments into one :class:`engine.jobs.explain_files.ExplainSettings`
and hands it to :func:`engine.jobs.explain_files.explain_files`, which decides the rest.

A folder (one CT/MR series), a ``.nii``/``.nii.gz`` file, or with a 3-D model an enhanced
multi-frame file, is explained as a volume: a 3-D model reads it whole, a 2-D model slice by
slice (``--slices``). Maps are then (slices, rows, columns) on the volume's own grid.
"""

from __future__ import annotations

import sys

from engine.core.errors import UsageError


def register(subparsers) -> None:
    """Add the ``explain`` sub-command."""
    p = subparsers.add_parser(
        "explain", help="explain a model's decision on image files",
        description="Writes OUT/<case>/image.png, overlay_<method>_<layer>.png, "
        "heatmap_<method>_<layer>.npy and result.json for each file. For a series folder or "
        "NIfTI file: heatmap_<method>_<layer>.npy shaped (slices, rows, columns) on the "
        "volume's grid, overlay_<plane>_<method>_<layer>.png through the map's peak, "
        "volume_geometry.json and result.json. Exit codes: 0 success, 2 bad input or usage, "
        "1 some of several files failed. <case> is case-001, case-002... in input order, or "
        "each file's stem with --keep-identifiers.",
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
                   help="keep patient identifiers in reports, name each output folder after "
                   "its file and store the full path in result.json (by default each input "
                   "is a pseudonym, case-001, case-002...)")
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


def run(args) -> int:
    """Explain every input; see the module and parser help for the contract."""
    from engine.jobs.explain_files import ExplainSettings, explain_files, parse_reports

    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    settings = ExplainSettings(
        model=args.model, methods=methods, layers=args.layer, target=args.target,
        versus=args.versus, params=parse_params(args.param, list(methods)), frame=args.frame,
        device=args.device, trust_model=args.trust_model, colormap=args.colormap,
        metrics=args.metrics, roi=args.roi, slices=args.slices, batch_size=args.batch_size,
        reports=parse_reports(args.report), send=args.send,
        keep_identifiers=args.keep_identifiers)
    if args.report is not None and not settings.reports:
        raise UsageError("--report names no format", fix="use --report pdf,html,dicom")
    summary = explain_files(
        settings, args.files, args.out, on_line=lambda line: print(line, flush=True),
        on_error=lambda line: print(f"error: {line}", file=sys.stderr),
        on_warning=lambda line: print(f"warning: {line}", file=sys.stderr))
    if summary.failures:
        print(f"error: {len(summary.failures)} of {summary.total} files failed",
              file=sys.stderr)
    return summary.exit_code
