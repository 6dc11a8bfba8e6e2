"""Shared test set-up: headless Qt, deterministic torch, small thread pools."""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LUCIDA_USER_PLUGINS", "")
# Logs of internal errors go to a scratch data folder, never the user's.
os.environ.setdefault("LUCIDA_DATA_DIR", tempfile.mkdtemp(prefix="lucida-data-"))

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


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One demo review window per test module (a module may define its own instead)."""
    from gui_fixtures import demo_window

    win = demo_window(qapp, tmp_path_factory.mktemp("settings"))
    yield win
    win.close()
