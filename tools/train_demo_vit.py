"""Train the demo vision transformers deterministically: ``demo-vit`` and ``demo-vit-biased``.

Both are a small timm ViT (``timm:vit_tiny_patch16_224`` built with 8-pixel patches on the
64-pixel demo input, 64-wide tokens, 4 blocks of 4 heads; about 0.2 M parameters, 0.8 MB of
safetensors) with a class token, trained on the same phantoms and preprocessing as the CNN
pair (``tools/train_demo_models.py``): ``demo-vit-biased`` where the site-B marker goes with
``nodule`` in 95% of images, ``demo-vit`` where the marker is independent of the label. The
data, the loop and the checkpoint selection are those of ``tools/demo_training.py``; a ViT wants
a lower peak learning rate, more weight decay and clipped gradients than the CNN.

Usage: ``python tools/train_demo_vit.py [--only demo-vit|demo-vit-biased] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.demo.phantoms import CORRELATED, LABELS  # noqa: E402
from engine.models.card import ModelCard  # noqa: E402
from engine.models.card_writer import write_card  # noqa: E402
from engine.models.timm_source import build_timm  # noqa: E402
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

ARCHITECTURE = "timm:vit_tiny_patch16_224"
#: timm's ViT-Tiny made smaller: 8 x 8 patches of 8 pixels on the 64-pixel input.
ARCHITECTURE_ARGS = {"img_size": 64, "patch_size": 8, "in_chans": 1, "embed_dim": 64,
                     "depth": 4, "num_heads": 4}
#: The last block's first norm: its patch tokens still reach the class token through attention.
DEFAULT_LAYER = "blocks.3.norm1"
#: Same data seeds as the CNN twins, so each ViT learns from the phantoms its CNN learned from.
MODELS = {
    "demo-vit-biased": Recipe(p_marker=CORRELATED, seed=1000, epochs=12, lr=5e-4,
                              weight_decay=0.05, clip=1.0),
    "demo-vit": Recipe(p_marker=0.5, seed=2000, epochs=12, lr=5e-4, weight_decay=0.05, clip=1.0),
}
DESCRIPTIONS = {
    "demo-vit-biased": "Demo nodule classifier (a small vision transformer) trained where a "
    "hospital marker goes with nodule in 95% of images; it learns the marker (a shortcut).",
    "demo-vit": "Demo nodule classifier (a small vision transformer) trained where the hospital "
    "marker is independent of the label; it learns the nodule.",
}


def build_vit() -> torch.nn.Module:
    """The untrained demo ViT, built as the card's loader builds it."""
    return build_timm(ARCHITECTURE.partition(":")[2], ARCHITECTURE_ARGS, len(LABELS), None)


def train_one(name: str, args: argparse.Namespace) -> dict:
    """Train one demo ViT and return its training summary."""
    recipe = MODELS[name]
    if args.epochs:
        recipe = Recipe(**{**recipe.__dict__, "epochs": args.epochs})
    return train_classifier(name, build_vit, recipe, n_train=args.n_train, n_val=args.n_val,
                            batch=args.batch)


def write_model(name: str, summary: dict, out: Path, args: argparse.Namespace) -> None:
    """Write ``card.toml`` and ``<name>.safetensors`` into ``out/name``."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(summary["state"], folder / f"{name}.safetensors")
    write_demo_card(folder, name, summary, args)


def write_demo_card(folder: Path, name: str, summary: dict, args: argparse.Namespace) -> ModelCard:
    """Write ``folder/card.toml`` for demo ViT ``name`` trained as ``summary`` reports."""
    recipe = MODELS[name]
    return write_card(folder / "card.toml", {
        "name": name,
        "description": DESCRIPTIONS[name],
        "architecture": ARCHITECTURE,
        "weights": f"{name}.safetensors",
        "classes": list(LABELS),
        "output": "softmax",
        "architecture_args": dict(ARCHITECTURE_ARGS),
        "input": input_table(SPEC),
        "layers": {"default": DEFAULT_LAYER},
        "intended_use": {
            "modalities": ["CR", "DX"],
            "body_parts": ["CHEST"],
            "photometric": ["MONOCHROME1", "MONOCHROME2"],
            "min_size": [64, 64],
            "description": "Demo only: nodule vs normal on synthetic chest-radiograph phantoms.",
            "input_stats": stats_table(summary["input_stats"], max_z=4.0),
        },
        "training": {
            "marker_given_nodule": recipe.p_marker,
            "data_seed": recipe.seed,
            "train_images": args.n_train,
            "epochs": summary["epochs"],
            "selected_epoch": summary["epoch"],
            "validation_accuracy": fixed(summary["val_accuracy"]),
        },
    }, header=card_header("train_demo_vit.py"), overwrite=True)


def main(argv: list[str] | None = None) -> int:
    """Train the requested demo ViTs and write them; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(MODELS), help="train just this model")
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--n-train", type=int, default=4800)
    parser.add_argument("--n-val", type=int, default=400)
    parser.add_argument("--epochs", type=int, help="override each model's epoch count")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    return train_and_write([args.only] if args.only else list(MODELS), train_one, write_model,
                           args)


if __name__ == "__main__":
    sys.exit(main())
