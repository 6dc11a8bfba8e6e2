"""Shared set-up for the trust-metric tests: a phantom case on disk and the edge control plugin."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import engine.explain.registry
from engine.demo.phantoms import Phantom, phantom_set
from engine.explain.core import finish_map

ROOT = Path(__file__).resolve().parents[1]


def nodule_phantom(size: int = 128, seed: int = 4242, marker: float = 0.05) -> Phantom:
    """The first nodule phantom of a seeded set (no marker, by default, for a clean case)."""
    return next(
        p for p in phantom_set(32, seed, marker_given_nodule=marker, size=size)
        if p.lesion_box is not None and p.marker_box is None
    )


def write_png(pixels: np.ndarray, path: Path) -> Path:
    """Write a [0, 1] grey array as an 8-bit PNG and return its path."""
    from PIL import Image as PILImage

    PILImage.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def edge_registry(monkeypatch):
    """The process registry with the edge-detector control added, restored afterwards."""
    from plugins_edge_control import EdgeControl

    reg = engine.explain.registry.load_registry(user_dirs=[])
    reg.add(EdgeControl, "tests/plugins_edge_control.py")
    monkeypatch.setattr(engine.explain.registry, "_registry", reg)
    return reg


def fake_result(model, image, maps: dict, target: int) -> SimpleNamespace:
    """An ExplainResult-shaped object holding raw maps finished by the core's own step.

    For tests that build raw maps themselves (a known lesion box, a randomised model) instead
    of running a session; the maps go through :func:`engine.explain.core.finish_map`.
    """
    entries = {
        (method, layer): finish_map(method, layer, raw, model, image.shape)
        for (method, layer), raw in maps.items()
    }
    return SimpleNamespace(maps=entries, target=target, target_name=model.classes[target],
                           classes=model.classes, params={}, frame=0)
