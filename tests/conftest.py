"""Shared test set-up: headless Qt, deterministic torch, small thread pools."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LUCIDA_USER_PLUGINS", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    """Make every test independent of the ones before it."""
    np.random.seed(0)
    # Importing torch costs seconds; tests that never touch it need no torch seed.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)
