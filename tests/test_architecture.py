"""The engine must stay free of Qt so the CLI, tests and GUI share it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_and_plugins_import_no_qt():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for pkg in ("engine", "plugins")
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "qt = ('PySide6', 'shiboken6', 'superqt')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in qt)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"engine imports Qt: {out.stdout.strip()}"
    assert modules


def test_engine_sources_do_not_mention_qt_imports():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "engine").rglob("*.py")
        if any(
            line.lstrip().startswith(("import PySide6", "from PySide6", "from superqt"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []
