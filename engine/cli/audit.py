"""``python main.py audit``: where a model looks, per class and group, over a whole dataset."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from engine.audit.settings import ENGINES, TARGETS, AuditRequest, AuditSettings
from engine.core.cancel import Cancelled
from engine.core.errors import UsageError

HELP = "bias audit of a model and an explainer over a manifest CSV or a DICOM folder"


def register(subparsers) -> None:
    """Add the ``audit`` sub-command; its defaults are those of the audit's settings."""
    p = subparsers.add_parser(
        "audit",
        help=HELP,
        description=(
            "Explain every image of a dataset and measure, per class and per group, how much "
            "saliency falls on each ROI role (columns <role>_box / <role>_mask) and on the "
            "outer 8% border band. Writes audit.json, audit.csv, mean_heatmaps/ and "
            "report.pdf under --out, de-identified: images are named case-001... and by "
            "their content digest. With --demo: generate the demo phantoms and audit both "
            "demo models side by side."
        ),
    )
    p.add_argument("dataset", nargs="?", help="manifest .csv or a folder of DICOM files")
    p.add_argument("--model", help="model card, demo or demo-biased")
    p.add_argument("--method", default=AuditSettings.method,
                   help=f"explainer name (default {AuditSettings.method})")
    p.add_argument("--layer", default=AuditSettings.layer, help="layer name, or auto (default)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="explainer parameter (repeatable)")
    p.add_argument("--target", choices=TARGETS, default=AuditSettings.target,
                   help="explain the predicted class (top) or the labelled class")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out; finished images are not redone")
    p.add_argument("--batch-size", "--batch", type=int, default=AuditSettings.batch_size,
                   help=f"images per batch (default {AuditSettings.batch_size})")
    p.add_argument("--engine", choices=ENGINES, default=AuditRequest.engine,
                   help="run here (default) or on a Ray cluster (pip install 'lucida[ray]')")
    p.add_argument("--address", default=None,
                   help="--engine ray: auto or HOST:PORT of a running cluster; default: start "
                   "a local Ray instance")
    p.add_argument("--workers", type=int, default=AuditRequest.workers,
                   help="--engine ray: actors, each loading the model once "
                   f"(default {AuditRequest.workers})")
    p.add_argument("--gpus-per-worker", type=float, default=AuditRequest.gpus_per_worker,
                   help="--engine ray: GPUs per actor (default 0: CPU)")
    p.add_argument("--no-pdf", action="store_true", help="skip report.pdf")
    p.add_argument("--clusters", type=int, default=None, metavar="K",
                   help="heatmap clusters per class in clusters.json (default: the eigengap "
                   "decides)")
    p.add_argument("--keep-identifiers", action="store_true",
                   help="keep image paths in the records and outputs (default: case-001... "
                   "and content digests only)")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that can run code when loaded")
    p.add_argument("--device", default=AuditRequest.device,
                   help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
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


def request_fields(args) -> dict:
    """The :class:`AuditRequest` fields the flags set, besides dataset, model and folder."""
    settings = AuditSettings(
        method=args.method, layer=args.layer, params=_params(args.param), target=args.target,
        batch_size=max(1, args.batch_size), keep_identifiers=args.keep_identifiers,
    )
    return {"settings": settings, "engine": args.engine, "address": args.address,
            "workers": args.workers, "gpus_per_worker": args.gpus_per_worker,
            "trust": args.trust_model, "device": args.device, "resume": args.resume,
            "pdf": not args.no_pdf, "clusters": args.clusters}


def _progress_printer():
    """Return a progress callback that prints at most one line a second to stderr."""
    last = [0.0]

    def report(fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or fraction >= 1.0:
            last[0] = now
            print(f"  {fraction:6.1%}  {message}", file=sys.stderr, flush=True)

    return report


def _summary(audit: dict, out: Path) -> None:
    import json

    from engine.audit.discovery import CLUSTERS_JSON, finding_lines

    acc = audit["accuracy"]["overall"]
    print(f"{audit['model']['name']}: {audit['n']} images audited"
          + (f", accuracy {acc:.1%}" if acc is not None else "")
          + f", {len(audit['flagged'])} flagged, {len(audit['errors'])} skipped")
    for line in audit["verdicts"]:
        print(f"  {line}")
    clusters = out / CLUSTERS_JSON
    if clusters.is_file():
        for line in finding_lines(json.loads(clusters.read_text())):
            print(f"  {line}")
    print(f"  results in {out}")


def run(args) -> int:
    """Run the audit (or the demo audit); 1 when some images could not be audited."""
    from engine.audit.job import AuditJob

    out = Path(args.out)
    try:
        if args.demo:
            return _run_demo(args, out)
        if not args.dataset or not args.model:
            raise UsageError("audit needs a dataset and --model",
                             fix="python main.py audit MANIFEST.csv --model demo --method "
                             "gradcam --out DIR, or audit --demo --out DIR")
        job = AuditJob(AuditRequest(dataset=args.dataset, model=args.model, out=str(out),
                                    **request_fields(args)))
        # The user's own terminal may name the files that the de-identified outputs do not.
        for problem in job.load()[0].problems:
            print(f"skipped {problem.one_line()}", file=sys.stderr)
        audit = job.run(_progress_printer()).audit
    except Cancelled:
        print("error: cancelled; rerun with --resume to continue", file=sys.stderr)
        return 130
    _summary(audit, out)
    if audit["errors"]:
        print(f"{len(audit['errors'])} image(s) could not be audited; see audit.csv",
              file=sys.stderr)
        return 1
    return 0


def _run_demo(args, out: Path) -> int:
    from engine.audit.compare import comparison_markdown
    from engine.audit.job import DemoAuditJob, demo_request

    request = demo_request(out, **request_fields(args))
    demo = DemoAuditJob(request, args.n, args.seed).run(_progress_printer())
    for outcome in demo.outcomes.values():
        _summary(outcome.audit, outcome.out)
    print(comparison_markdown(demo.comparison))
    return 0
