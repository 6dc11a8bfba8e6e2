"""``python main.py trust``: the trust battery over a dataset, per method, with bootstrap CIs."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.core.cancel import Cancelled
from engine.core.errors import UsageError

HELP = "trust table: the metric battery over a manifest, per method, mean and bootstrap CI"


def register(subparsers) -> None:
    """Add the ``trust`` sub-command."""
    from engine.jobs.trust_table import TrustSettings

    p = subparsers.add_parser(
        "trust", help=HELP,
        description=("Explain every image of a manifest CSV (or DICOM folder) with each method "
                     "and measure the trust battery (faithfulness curves, Average Drop and "
                     "Increase, uncertainty and map stability under test-time augmentation, "
                     "optionally the sanity cascade) for the predicted class. Writes "
                     "trust_table.csv, trust_table.json and trust_table.html under --out: per "
                     "method and metric the mean and a 95% percentile bootstrap interval."))
    p.add_argument("dataset", help="manifest .csv or a folder of DICOM files")
    p.add_argument("--model", required=True, help="model card, demo or demo-biased")
    p.add_argument("--methods", default="gradcam", help="comma-separated explainer names")
    p.add_argument("--layer", default="auto", help="layer name, or auto (default)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sanity", action="store_true",
                   help="also run the model-randomisation cascade (slower)")
    p.add_argument("--augmentations", type=int, default=TrustSettings.augmentations,
                   help=f"test-time augmentations per image (default "
                   f"{TrustSettings.augmentations})")
    p.add_argument("--seed", type=int, default=TrustSettings.seed,
                   help="seed of the augmentations and the bootstrap (default 0)")
    p.add_argument("--batch-size", type=int, default=TrustSettings.batch_size,
                   help=f"images per batch (default {TrustSettings.batch_size})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out; finished images are not redone")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="run here (default) or on Ray")
    p.add_argument("--address", default=None,
                   help="--engine ray: HOST:PORT of a running cluster; default: a local Ray")
    p.add_argument("--workers", type=int, default=2, help="--engine ray: tasks at once")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that can run code when loaded")
    p.set_defaults(func=run)


def run(args) -> int:
    """Measure the dataset and print the table; 1 when some records could not be measured."""
    from engine.audit.manifest import load_dataset
    from engine.cli.audit import _progress_printer
    from engine.jobs.trust_table import TrustSettings, run_trust_table, table_markdown
    from engine.models.loaded import load_model

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError("--methods names no explainer", fix="pass e.g. --methods gradcam,rise")
    settings = TrustSettings(methods=methods, layer=args.layer, sanity=args.sanity,
                             augmentations=max(2, args.augmentations),
                             batch_size=max(1, args.batch_size), seed=args.seed)
    if args.engine == "ray":
        from engine.audit.ray_engine import require_ray

        require_ray()
    dataset = load_dataset(args.dataset)
    for problem in dataset.problems:
        print(f"skipped {problem.one_line()}", file=sys.stderr)
    model = load_model(args.model, trust=args.trust_model)
    try:
        doc = run_trust_table(dataset, model, settings, Path(args.out), resume=args.resume,
                              engine=args.engine, model_spec=args.model, trust=args.trust_model,
                              address=args.address, workers=args.workers,
                              progress=_progress_printer())
    except Cancelled:
        print("error: cancelled; rerun with --resume to continue", file=sys.stderr)
        return 130
    print(table_markdown(doc))
    print(f"  results in {args.out}")
    if doc["errors"]:
        print(f"{len(doc['errors'])} record(s) could not be measured; see trust_table.json",
              file=sys.stderr)
        return 1
    return 0
