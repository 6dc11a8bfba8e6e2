"""``python main.py methods``: the registered explainers and their parameters."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    """Add the ``methods`` sub-command."""
    p = subparsers.add_parser(
        "methods", help="list the explainers, their parameters and citations",
        description="List every registered explainer (built-in, installed and user plugins) "
        "with the parameters `explain --param NAME=VALUE` accepts.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def describe_methods() -> list[dict]:
    """Return every registered explainer as plain data (name, title, needs, params, ...)."""
    from engine.explain.registry import registry

    reg = registry()
    out = []
    for name in reg.names():
        e = reg.get(name)
        out.append({
            "name": name,
            "title": getattr(e, "title", name),
            "description": getattr(e, "description", ""),
            "citation": getattr(e, "citation", ""),
            "needs": sorted(e.needs),
            "params": [p.as_dict() for p in e.params],
            "origin": reg.origin(name),
        })
    return out


def run(args) -> int:
    """Print the explainers; skipped plugins are reported on stderr."""
    from engine.explain.registry import registry

    methods = describe_methods()
    if args.json:
        print(json.dumps({"methods": methods, "errors": registry().errors}, indent=2))
    else:
        reg = registry()
        for m in methods:
            print(f"{m['name']:<10} {m['title']}: {m['description']}")
            print(f"{'':<10} needs: {', '.join(m['needs'])}")
            for p in reg.get(m["name"]).params:
                print(f"{'':<10} --param {p.describe()}")
            print(f"{'':<10} cite: {m['citation']}")
    for line in registry().errors:
        print(f"warning: skipped {line}", file=sys.stderr)
    return 0
