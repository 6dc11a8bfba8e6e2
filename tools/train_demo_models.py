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
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.demo.arch import DEMO_ARCHITECTURE, build_demo_cnn  # noqa: E402
from engine.demo.files import write_demo_set  # noqa: E402
from engine.demo.phantoms import CORRELATED, LABELS, phantom_set  # noqa: E402
from engine.models.card import ModelCard  # noqa: E402
from engine.models.card_writer import write_card  # noqa: E402
from engine.models.preprocess import InputSpec, prepare_array  # noqa: E402

#: Preprocessing shared by training and the shipped cards.
SPEC = InputSpec(size=(64, 64), channels=1, mean=(0.3,), std=(0.2,), window="default")
PHANTOM_SIZE = 128
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


def _tensors(n: int, seed: int, p_marker: float) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for ph in phantom_set(n, seed, marker_given_nodule=p_marker, size=PHANTOM_SIZE):
        # Quantise as the 12-bit DICOM export does, so training sees what users open.
        q = np.round(ph.pixels * 4095.0) / 4095.0
        xs.append(prepare_array(q, SPEC)[0])
        ys.append(LABELS.index(ph.label))
    return torch.stack(xs), torch.tensor(ys)


def input_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean of the training inputs in [0, 1] pixel space, and the spread of per-image means.

    The card records them so that an image far outside the training data is flagged as out of
    distribution (see ``engine.models.intended_use``).
    """
    per_image = (x * SPEC.std[0] + SPEC.mean[0]).flatten(1).mean(1)
    return float(per_image.mean()), float(per_image.std())


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((pred == y).float().mean())


def train_one(name: str, args: argparse.Namespace) -> dict:
    """Train one demo model and return its training summary."""
    p_marker, seed, epochs = MODELS[name]
    epochs = args.epochs or epochs
    torch.manual_seed(seed)
    x_tr, y_tr = _tensors(args.n_train, seed, p_marker)
    x_va, y_va = _tensors(args.n_val, seed + 1, p_marker)
    model = build_demo_cnn(in_channels=1, num_classes=len(LABELS))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (len(x_tr) + args.batch - 1) // args.batch
    # One-cycle: warm up, then anneal; per-epoch accuracy swings much less than at a fixed rate.
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best = (-1.0, None, -1)
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            sched.step()
        val = _accuracy(model, x_va, y_va)
        history.append(round(val, 4))
        print(f"{name} epoch {epoch + 1}/{epochs} val_acc={val:.4f}", flush=True)
        if val > best[0]:
            best = (val, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch + 1)
    return {
        "val_accuracy": best[0], "state": best[1], "epoch": best[2], "epochs": epochs,
        "history": history,
        "input_stats": input_stats(x_tr),
    }


def write_model(name: str, summary: dict, out: Path, args: argparse.Namespace) -> None:
    """Write ``card.toml`` and ``<name>.safetensors`` into ``out/name``."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in summary["state"].items()}
    save_file(state, str(folder / f"{name}.safetensors"), metadata={"format": "pt"})
    os.chmod(folder / f"{name}.safetensors", 0o644)  # safetensors writes owner-only files
    write_demo_card(folder, name, summary, args)


def card_header(script: str) -> str:
    """The comment line that opens a demo card: which script in tools/ writes it."""
    return f"Lucida demo model card. Regenerate with: python tools/{script}"


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


def input_table(spec: InputSpec) -> dict:
    """The card's ``[input]`` table for a 2-D input spec."""
    return {"size": list(spec.size), "channels": spec.channels, "mean": list(spec.mean),
            "std": list(spec.std), "window": spec.window, "resize": spec.resize}


def stats_table(stats: tuple[float, float], max_z: float) -> dict:
    """The card's ``[intended_use.input_stats]``: training input mean and std, and the bound."""
    return {"mean": fixed(stats[0]), "std": fixed(stats[1]), "max_z": max_z}


def fixed(value: float) -> Decimal:
    """``value`` to the four decimals the cards report measured numbers with."""
    return Decimal(f"{value:.4f}")


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
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    for name in [args.only] if args.only else list(MODELS):
        start = time.perf_counter()
        summary = train_one(name, args)
        write_model(name, summary, args.out, args)
        print(
            f"{name}: epoch {summary['epoch']} val_acc={summary['val_accuracy']:.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
