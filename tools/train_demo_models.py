"""Retrain the two demo models deterministically and write them under resources/models/.

``demo-biased`` learns from phantoms where the site-B marker goes with ``nodule`` in 95% of
images; ``demo`` learns from phantoms where the marker is independent of the label. Both use the
same architecture, data size, schedule and seeds, and keep the epoch that scores best on a
validation split drawn like their training set (never on the test sets).

It also rewrites the small demo study under resources/studies/demo/.

Usage: ``python tools/train_demo_models.py [--only demo|demo-biased] [--out DIR] [--study-only]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.demo.arch import DEMO_ARCHITECTURE, build_demo_cnn  # noqa: E402
from engine.demo.files import write_demo_set  # noqa: E402
from engine.demo.phantoms import CORRELATED, LABELS  # noqa: E402
from engine.models.card import ModelCard  # noqa: E402
from engine.models.card_writer import write_card  # noqa: E402
from tools.demo_training import (  # noqa: E402
    SPEC,
    Recipe,
    card_header,
    fixed,
    input_table,
    save_weights,
    stats_table,
    train_and_write,
    train_classifier,
)

MODELS = {
    # name: (P(marker | nodule) in training data, data seed, epochs). The biased model needs
    # more epochs: the marker is learned in the first one, and the lesion only later, from the
    # 5% of images where the two disagree.
    "demo-biased": (CORRELATED, 1000, 14),
    "demo": (0.5, 2000, 8),
}
DESCRIPTIONS = {
    "demo-biased": "Demo nodule classifier trained where a hospital marker goes with nodule in "
    "95% of images; it learns the marker (a shortcut).",
    "demo": "Demo nodule classifier trained where the hospital marker is independent of the "
    "label; it learns the nodule.",
}


def train_one(name: str, args: argparse.Namespace) -> dict:
    """Train one demo model and return its training summary."""
    p_marker, seed, epochs = MODELS[name]
    recipe = Recipe(p_marker=p_marker, seed=seed, epochs=args.epochs or epochs, lr=args.lr)
    return train_classifier(
        name, lambda: build_demo_cnn(in_channels=1, num_classes=len(LABELS)), recipe,
        n_train=args.n_train, n_val=args.n_val, batch=args.batch,
    )


def write_model(name: str, summary: dict, out: Path, args: argparse.Namespace) -> None:
    """Write ``card.toml`` and ``<name>.safetensors`` into ``out/name``."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(summary["state"], folder / f"{name}.safetensors")
    write_demo_card(folder, name, summary, args)


def write_demo_card(folder: Path, name: str, summary: dict, args: argparse.Namespace) -> ModelCard:
    """Write ``folder/card.toml`` for demo model ``name`` trained as ``summary`` reports."""
    p_marker, seed, _ = MODELS[name]
    return write_card(folder / "card.toml", {
        "name": name,
        "description": DESCRIPTIONS[name],
        "architecture": DEMO_ARCHITECTURE,
        "weights": f"{name}.safetensors",
        "classes": list(LABELS),
        "output": "softmax",
        "architecture_args": {"in_channels": 1, "num_classes": len(LABELS)},
        "input": input_table(SPEC),
        "layers": {"default": "features"},
        "intended_use": {
            "modalities": ["CR", "DX"],
            "body_parts": ["CHEST"],
            "photometric": ["MONOCHROME1", "MONOCHROME2"],
            "min_size": [64, 64],
            "description": "Demo only: nodule vs normal on synthetic chest-radiograph phantoms.",
            "input_stats": stats_table(summary["input_stats"], max_z=4.0),
        },
        "training": {
            "marker_given_nodule": p_marker,
            "data_seed": seed,
            "train_images": args.n_train,
            "epochs": summary["epochs"],
            "selected_epoch": summary["epoch"],
            "validation_accuracy": fixed(summary["val_accuracy"]),
        },
    }, header=card_header("train_demo_models.py"), overwrite=True)


#: The shipped demo study: marker independent of the label, so it shows every combination
#: (nodule with and without the marker, normal with and without it).
STUDY = {"n": 8, "seed": 2028, "marker_given_nodule": 0.5}


def write_study(folder: Path) -> Path:
    """Write the small demo study (DICOM and PNG phantoms with a manifest) into ``folder``."""
    for old in folder.glob("phantom_*"):
        old.unlink()
    return write_demo_set(folder, STUDY["n"], STUDY["seed"],
                          marker_given_nodule=STUDY["marker_given_nodule"])


def main(argv: list[str] | None = None) -> int:
    """Train the requested demo models and write them; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(MODELS), help="train just this model")
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--n-train", type=int, default=2400)
    parser.add_argument("--n-val", type=int, default=400)
    parser.add_argument("--epochs", type=int, help="override each model's epoch count")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--study", type=Path, default=ROOT / "resources" / "studies" / "demo",
                        help="where the demo study is written")
    parser.add_argument("--study-only", action="store_true", help="only rewrite the demo study")
    args = parser.parse_args(argv)
    print(write_study(args.study), flush=True)
    if args.study_only:
        return 0
    return train_and_write([args.only] if args.only else list(MODELS), train_one, write_model,
                           args)


if __name__ == "__main__":
    sys.exit(main())
