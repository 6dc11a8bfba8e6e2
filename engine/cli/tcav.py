"""``python main.py tcav DATASET --model M --layer L --concept FOLDER --random FOLDER...``:
concept tests (TCAV, Kim et al. 2018) of a model at one layer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.audit.tcav_settings import MIN_RANDOM, TcavSettings

NAME = "tcav"


def register(subparsers) -> None:
    """Add the ``tcav`` sub-command."""
    p = subparsers.add_parser(
        NAME,
        help="test whether a concept (a folder of example images) drives a model's classes",
        description="Learn the concept activation vector of --concept against each --random "
        "folder at --layer, score each class of DATASET (the share of its images whose class "
        "logit grows along the vector) and test the scores against random concepts' with a "
        f"two-sided t-test (at least {MIN_RANDOM} random folders). Prints a line per class, "
        "or JSON with --json; --out DIR also writes DIR/tcav.json.",
    )
    p.add_argument("dataset", help="manifest .csv (path, label, ...) or a folder of DICOM files; "
                   "unlabelled images count under the model's prediction")
    p.add_argument("--model", required=True, help="demo | demo-biased | card.toml | model file")
    p.add_argument("--layer", default="auto", help="layer name, or auto (the model's default)")
    p.add_argument("--concept", required=True, type=Path, help="folder of the concept's images")
    p.add_argument("--random", required=True, nargs="+", type=Path, metavar="FOLDER",
                   help=f"folders of random images (at least {MIN_RANDOM}), or one folder "
                   "holding them")
    p.add_argument("--alpha", type=float, default=TcavSettings.alpha,
                   help=f"significance level (default {TcavSettings.alpha})")
    p.add_argument("--out", type=Path, help="folder to write tcav.json into")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that run Python code when loaded")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the test; print the result; return 0."""
    from engine.audit.tcav import tcav_report
    from engine.core.atomic import write_atomic
    from engine.core.errors import UsageError
    from engine.core.jsonsafe import json_bytes
    from engine.explain.core import resolve_layers
    from engine.models.loaded import load_model

    if not 0.0 < args.alpha < 1.0:
        raise UsageError(f"--alpha {args.alpha} is not a probability",
                         fix="use a value between 0 and 1, e.g. 0.05")
    model = load_model(args.model, trust=args.trust_model)
    layer = resolve_layers(model, args.layer)[0]
    report = tcav_report(model, layer, args.concept, args.random, args.dataset,
                         TcavSettings(alpha=args.alpha))
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            write_atomic(args.out / "tcav.json", json_bytes(report))
        except OSError as exc:
            raise UsageError(f"cannot write tcav.json ({exc.strerror or exc})", path=args.out,
                             fix="choose a writable --out folder") from None
    if args.json:
        print(json.dumps(json.loads(json_bytes(report)), indent=2))
        return 0
    print(f"concept {report['concept']['name']} at layer {layer} of {model.name}: "
          f"{report['concept']['examples']} examples, {report['random_concepts']} random "
          f"concepts, CAV accuracy {report['cav_accuracy']['mean']:.2f}", file=sys.stdout)
    for name, entry in report["classes"].items():
        print(f"  {name}: TCAV {entry['score']:.2f} (random {entry['random_score']:.2f}), "
              f"p = {entry['p_value']:.3g}: {entry['verdict']}")
    return 0
