"""``python main.py evaluate MANIFEST --model M``: accuracy of a model on a labelled manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "evaluate"


def register(subparsers) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser(
        NAME,
        help="print a model's accuracy on a manifest (overall, per group, confusion) as JSON",
    )
    p.add_argument("manifest", type=Path, help="CSV with path,label[,site,...] columns")
    p.add_argument("--model", required=True, help="demo | demo-biased | card.toml | model file")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that run Python code when loaded")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the evaluation JSON; exit 1 when some images could not be read."""
    from engine.audit.evaluate import evaluate_manifest
    from engine.models.loaded import load_model

    model = load_model(args.model, trust=args.trust_model, device=args.device)
    result = evaluate_manifest(args.manifest, model)
    print(json.dumps(result, indent=2))
    if result["failed"]:
        print(f"error: {len(result['failed'])} of {result['n'] + len(result['failed'])} images "
              "could not be read or scored (listed under 'failed')", file=sys.stderr)
        return 1
    return 0
