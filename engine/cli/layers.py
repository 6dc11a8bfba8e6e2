"""``python main.py layers --model M [--json]``: a model's candidate layers and its default."""

from __future__ import annotations

import json

NAME = "layers"


def register(subparsers) -> None:
    """Add the ``layers`` sub-command."""
    p = subparsers.add_parser(NAME, help="list a model's candidate layers with output shapes")
    p.add_argument("--model", required=True, help="demo | demo-biased | card.toml | model file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--trust-model", action="store_true",
                   help="allow model files that run Python code when loaded")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the layers (text table or JSON); return 0."""
    from engine.models.loaded import load_model

    model = load_model(args.model, trust=args.trust_model)
    layers = model.layers()
    default = model.default_layer
    if args.json:
        payload = {
            "default": default,
            "layers": [
                {"name": info.name, "shape": list(info.shape), "kind": info.kind}
                for info in layers
            ],
        }
        if model.layer_methods_reason:
            payload["unavailable"] = model.layer_methods_reason
        print(json.dumps(payload, indent=2))
        return 0
    if model.layer_methods_reason:
        print(f"no layers: {model.layer_methods_reason}")
        return 0
    width = max((len(info.name) for info in layers), default=4)
    for info in layers:
        mark = "  (default)" if info.name == default else ""
        shape = "x".join(str(s) for s in info.shape)
        print(f"{info.name:<{width}}  {info.kind:<7}  {shape}{mark}")
    return 0
