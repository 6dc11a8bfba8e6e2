"""``python main.py audit``: where a model looks, per class and group, over a whole dataset."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from engine.core.cancel import Cancelled
from engine.core.errors import UsageError

HELP = "bias audit of a model and an explainer over a manifest CSV or a DICOM folder"


def register(subparsers) -> None:
    """Add the ``audit`` sub-command."""
    p = subparsers.add_parser(
        "audit",
        help=HELP,
        description=(
            "Explain every image of a dataset and measure, per class and per group, how much "
            "saliency falls on each ROI role (columns <role>_box / <role>_mask) and on the "
            "outer 8% border band. Writes audit.json, audit.csv, mean_heatmaps/ and "
            "report.pdf under --out. With --demo: generate the demo phantoms and audit both "
            "demo models side by side."
        ),
    )
    p.add_argument("dataset", nargs="?", help="manifest .csv or a folder of DICOM files")
    p.add_argument("--model", help="model card, demo or demo-biased")
    p.add_argument("--method", default=None, help="explainer name (default gradcam)")
    p.add_argument("--layer", default="auto", help="layer name, or auto (default)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="explainer parameter (repeatable)")
    p.add_argument("--target", choices=("top", "label"), default="top",
                   help="explain the predicted class (top) or the labelled class")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out; finished images are not redone")
    p.add_argument("--batch-size", "--batch", type=int, default=16,
                   help="images per batch (default 16)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="run here (default) or on a Ray cluster (pip install 'lucida[ray]')")
    p.add_argument("--address", default=None,
                   help="--engine ray: auto or HOST:PORT of a running cluster; default: start "
                   "a local Ray instance")
    p.add_argument("--workers", type=int, default=2,
                   help="--engine ray: actors, each loading the model once (default 2)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="--engine ray: GPUs per actor (default 0: CPU)")
    p.add_argument("--no-pdf", action="store_true", help="skip report.pdf")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that can run code when loaded")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    p.add_argument("--demo", action="store_true",
                   help="audit both demo models on generated correlated and counterfactual sets")
    p.add_argument("--n", type=int, default=200, help="--demo: images per set (default 200)")
    p.add_argument("--seed", type=int, default=5000,
                   help="--demo: seed of the generated sets (default 5000)")
    p.set_defaults(func=run)


def _params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param {pair!r} is not NAME=VALUE", fix="write e.g. --param k=3")
        out[name.strip()] = value.strip()
    return out


def _progress_printer():
    """Return a progress callback that prints at most one line a second to stderr."""
    last = [0.0]

    def report(fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or fraction >= 1.0:
            last[0] = now
            print(f"  {fraction:6.1%}  {message}", file=sys.stderr, flush=True)

    return report


def audit_one(dataset_path, model_spec, args, out: Path):
    """Audit one model over one dataset and write its outputs; return (audit, store, header)."""
    from engine.audit.manifest import load_dataset
    from engine.audit.outputs import write_outputs
    from engine.audit.runner import AuditSettings, run_audit
    from engine.explain.session import resolve_device
    from engine.models.loaded import load_model

    dataset = load_dataset(dataset_path)
    model = load_model(model_spec, trust=args.trust_model,
                       device=str(resolve_device(getattr(args, "device", "auto"))))
    settings = AuditSettings(
        method=args.method or "gradcam",
        layer=args.layer,
        params=_params(args.param),
        target=args.target,
        batch_size=max(1, args.batch_size),
    )
    for problem in dataset.problems:
        print(f"skipped {problem.one_line()}", file=sys.stderr)
    if getattr(args, "engine", "local") == "ray":
        store, engine = _run_ray(dataset, model, model_spec, settings, args, out)
    else:
        store = run_audit(dataset, model, settings, out, resume=args.resume,
                          progress=_progress_printer())
        engine = {"name": "local", "workers": 1}
    header = json.loads((out / "run.json").read_text())
    audit = write_outputs(store, dataset, model, header, out, pdf=not args.no_pdf, engine=engine)
    return audit, store, model


def _ray_engine():
    """The Ray engine module, once it is known that Ray is installed."""
    from engine.audit import ray_engine

    ray_engine.require_ray()
    return ray_engine


def _run_ray(dataset, model, model_spec, settings, args, out: Path):
    ray_engine = _ray_engine()
    store = ray_engine.run_audit_ray(
        dataset, model, model_spec, settings, out, trust=args.trust_model, resume=args.resume,
        progress=_progress_printer(), address=args.address, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
    )
    return store, ray_engine.engine_info(args.workers, args.address)


def _summary(audit: dict, out: Path) -> None:
    acc = audit["accuracy"]["overall"]
    print(f"{audit['model']['name']}: {audit['n']} images audited"
          + (f", accuracy {acc:.1%}" if acc is not None else "")
          + f", {len(audit['flagged'])} flagged, {len(audit['errors'])} skipped")
    for line in audit["verdicts"]:
        print(f"  {line}")
    print(f"  results in {out}")


def run(args) -> int:
    """Run the audit (or the demo audit); 1 when some images could not be audited."""
    out = Path(args.out)
    try:
        if args.demo:
            return _run_demo(args, out)
        if not args.dataset or not args.model:
            raise UsageError("audit needs a dataset and --model",
                             fix="python main.py audit MANIFEST.csv --model demo --method "
                             "gradcam --out DIR, or audit --demo --out DIR")
        audit, _, _ = audit_one(args.dataset, args.model, args, out)
    except Cancelled:
        print("error: cancelled; rerun with --resume to continue", file=sys.stderr)
        return 130
    _summary(audit, out)
    if audit["errors"]:
        print(f"{len(audit['errors'])} image(s) could not be audited; see audit.csv",
              file=sys.stderr)
        return 1
    return 0


def _engine_session(args):
    """One Ray session for every model a command audits (a start costs tens of seconds)."""
    if getattr(args, "engine", "local") != "ray":
        return contextlib.nullcontext()
    return _ray_engine().ray_session(args.address, args.workers)


def _run_demo(args, out: Path) -> int:
    from engine.audit.aggregate import mean_heatmaps
    from engine.demo.audit import (
        DEMO_MODELS,
        build_demo_dataset,
        compare,
        comparison_grid,
        comparison_markdown,
    )

    data = out / "data"
    manifest = data / "manifest.csv"
    if not (args.resume and manifest.is_file()):
        print(f"generating {args.n} correlated + {args.n} counterfactual phantoms in {data}",
              file=sys.stderr)
        manifest = build_demo_dataset(data, args.n, args.seed)
    audits, cells = {}, {}
    with _engine_session(args):
        for name in DEMO_MODELS:
            print(f"auditing {name}", file=sys.stderr)
            audit, store, model = audit_one(manifest, name, args, out / name)
            audits[name] = audit
            cells[name] = mean_heatmaps(store.heatmaps(), model.classes,
                                        (audit_heat_size(out / name),) * 2)
            _summary(audit, out / name)
    comp = compare(audits)
    (out / "comparison.json").write_text(json.dumps(comp, indent=2))
    (out / "comparison.md").write_text(comparison_markdown(comp))
    comparison_grid(cells, out / "comparison_mean_heatmaps.png",
                    title=f"Mean {audits[DEMO_MODELS[0]]['method']} heatmap per class × group")
    print(comparison_markdown(comp))
    return 0


def audit_heat_size(folder: Path) -> int:
    """Return the stored heatmap side of the run in ``folder``."""
    return int(json.loads((folder / "run.json").read_text())["heat_size"])
