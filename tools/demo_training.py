"""What the 2-D demo classifiers share: phantom data, the training loop, weights and card pieces.

The CNN pair (``tools/train_demo_models.py``: ``demo``, ``demo-biased``) and the ViT pair
(``tools/train_demo_vit.py``: ``demo-vit``, ``demo-vit-biased``) learn from the same phantoms at
the same preprocessing, with the same loop: AdamW, a one-cycle learning rate, a seeded shuffle,
and the checkpoint selected on a validation split drawn like the training set (never on test
data). Every random choice comes from the model's seed, so a run is reproducible bit for bit on
one machine (with ``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from engine.demo.phantoms import LABELS, phantom_set
from engine.models.preprocess import InputSpec, prepare_array

#: Preprocessing shared by training and the shipped 2-D demo cards.
SPEC = InputSpec(size=(64, 64), channels=1, mean=(0.3,), std=(0.2,), window="default")
#: Phantoms are drawn at this size and resized to :data:`SPEC` as the app resizes an image.
PHANTOM_SIZE = 128


def phantom_tensors(n: int, seed: int, p_marker: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs (N, 1, 64, 64) and labels (N,) of ``n`` phantoms of ``seed``.

    Parameters
    ----------
    n, seed : int
        How many phantoms, and the seed of :func:`engine.demo.phantoms.phantom_set`.
    p_marker : float
        P(marker | nodule) of the set (0.95 correlated, 0.5 independent of the label).
    """
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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` that ``model`` (put in eval mode) classifies as ``y``."""
    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((pred == y).float().mean())


@dataclass(frozen=True)
class Recipe:
    """How one demo classifier is trained.

    Attributes
    ----------
    p_marker : float
        P(marker | nodule) in its training and validation phantoms.
    seed : int
        Seeds the weights, the shuffle and the training phantoms (validation: ``seed + 1``).
    epochs : int
        Passes over the training set.
    lr : float
        Peak learning rate of the one-cycle schedule.
    weight_decay : float
        AdamW's decoupled weight decay.
    clip : float or None
        Largest gradient norm of a step, or None for no clipping.
    """

    p_marker: float
    seed: int
    epochs: int
    lr: float
    weight_decay: float = 1e-4
    clip: float | None = None


def train_classifier(name: str, build: Callable[[], nn.Module], recipe: Recipe, *, n_train: int,
                     n_val: int, batch: int, on_epoch: Callable[[int, float], None] | None = None,
                     ) -> dict:
    """Train one demo classifier on phantoms and return its training summary.

    Parameters
    ----------
    name : str
        For the progress lines.
    build : callable
        Returns the untrained network; called after the seed is set.
    recipe : Recipe
        Data, seed and schedule.
    n_train, n_val, batch : int
        Training and validation set sizes, and the batch size.
    on_epoch : callable, optional
        Called with ``(epoch, mean training loss)`` after each epoch.

    Returns
    -------
    dict
        ``val_accuracy``, ``state`` (the selected checkpoint), ``epoch`` (its 1-based index),
        ``epochs``, ``history`` (validation accuracy per epoch), ``losses`` (mean training loss
        per epoch) and ``input_stats``.
    """
    seed, epochs = recipe.seed, recipe.epochs
    torch.manual_seed(seed)
    x_tr, y_tr = phantom_tensors(n_train, seed, recipe.p_marker)
    x_va, y_va = phantom_tensors(n_val, seed + 1, recipe.p_marker)
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = (len(x_tr) + batch - 1) // batch
    # One-cycle: warm up, then anneal; per-epoch accuracy swings much less than at a fixed rate.
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best = (-1.0, None, -1)
    history, losses = [], []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            if recipe.clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.clip)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x_tr))
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
        val = accuracy(model, x_va, y_va)
        history.append(round(val, 4))
        print(f"{name} epoch {epoch + 1}/{epochs} loss={losses[-1]:.4f} val_acc={val:.4f}",
              flush=True)
        if val > best[0]:
            best = (val, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch + 1)
    return {
        "val_accuracy": best[0], "state": best[1], "epoch": best[2], "epochs": epochs,
        "history": history, "losses": losses,
        "input_stats": input_stats(x_tr),
    }


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``state`` as safetensors at ``path``, readable by everyone as package data."""
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o644)  # safetensors writes owner-only files


def card_header(script: str) -> str:
    """The comment line that opens a demo card: which script in tools/ writes it."""
    return f"Lucida demo model card. Regenerate with: python tools/{script}"


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


def train_and_write(names: Iterable[str], train_one: Callable, write_model: Callable, args) -> int:
    """Train each named demo model deterministically, write it, and print one line for each.

    Parameters
    ----------
    names : iterable of str
        The demo models to train, in order.
    train_one : callable
        ``train_one(name, args) -> summary`` with ``epoch`` and ``val_accuracy``.
    write_model : callable
        ``write_model(name, summary, args.out, args)`` writes its weights and card.
    args : argparse.Namespace
        The script's arguments; ``threads`` sets torch's thread count.

    Returns
    -------
    int
        0, the script's exit code.
    """
    torch.set_num_threads(args.threads)
    # Same seed, same bytes: the shipped weights can be rebuilt and checked.
    torch.use_deterministic_algorithms(True)
    for name in names:
        start = time.perf_counter()
        summary = train_one(name, args)
        write_model(name, summary, args.out, args)
        print(f"{name}: epoch {summary['epoch']} val_acc={summary['val_accuracy']:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return 0
