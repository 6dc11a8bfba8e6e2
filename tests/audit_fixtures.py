"""Small datasets and a small random-weight model for the audit tests and benchmark."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from engine.demo.arch import build_demo_cnn
from engine.demo.phantoms import make_phantom
from engine.models.loaded import InputSpec, LoadedModel


def write_phantom_dataset(folder: Path, n: int, size: int = 48, seed: int = 0) -> Path:
    """Write ``n`` phantom PNGs and a manifest (path,label,site,marker_box); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        nodule, marker = bool(i % 2), bool((i // 2) % 2)
        ph = make_phantom(rng, nodule=nodule, marker=marker, size=size)
        name = f"img{i:05d}.png"
        PILImage.fromarray((ph.pixels * 255).round().astype(np.uint8)).save(folder / name)
        box = " ".join(map(str, ph.marker_box)) if ph.marker_box else ""
        rows.append({"path": name, "label": ph.label, "site": ph.site, "marker_box": box})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "site", "marker_box"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def start_local_ray() -> None:
    """Start a local Ray with two logical CPUs, as many as the tests' actors.

    The decode tasks must still be scheduled next to the actors (the engine keeps CPUs free
    for them), so a pool that took every CPU would hang the tests, not pass them.
    """
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 1024**2)


def small_model(size: int = 48, seed: int = 0) -> LoadedModel:
    """Return the demo architecture, narrow and randomly initialised, as a LoadedModel."""
    torch.manual_seed(seed)
    module = build_demo_cnn(1, 2, widths=(8, 8, 16, 16)).eval()
    spec = InputSpec(size=(size, size), channels=1, mean=(0.5,), std=(0.25,), window="minmax")
    return LoadedModel.from_module(module, classes=["normal", "nodule"], input=spec,
                                   name="tiny")
