"""Where the shipped resources live, in a source checkout and in an installed package alike."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The ``resources`` package folder: demo studies and demo models with their cards.
RESOURCES = Path(str(files("resources")))
#: Demo and built-in models, one folder each with its ``card.toml``.
MODELS = RESOURCES / "models"
#: The demo study opened by ``--demo``.
DEMO_STUDY = RESOURCES / "studies" / "demo"
