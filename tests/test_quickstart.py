"""The README's quick starts run exactly as written, each in a throwaway folder.

Every ``bash`` block under a ``## Quick start`` heading is run with ``bash -e``; ``python`` is
this interpreter, ``main.py`` and ``resources/`` are the checkout's. A line ``ls DIR  # a, b``
promises that DIR holds a and b: each plain name listed is checked to exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_starts(text: str) -> dict[str, str]:
    """The bash blocks of each ``## Quick start`` section of a Markdown text, by section title."""
    found = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        if title.startswith("Quick start"):
            blocks = re.findall(r"^```bash\n(.*?)^```", body, flags=re.M | re.S)
            found[title.removeprefix("Quick start: ")] = "\n".join(blocks)
    return found


def _as_run_here(script: str) -> str:
    script = re.sub(r"\bpython main\.py\b", f'"{sys.executable}" "{ROOT / "main.py"}"', script)
    script = re.sub(r"^python ", f'"{sys.executable}" ', script, flags=re.M)
    return re.sub(r"(?<![\w/])resources/", f"{ROOT / 'resources'}/", script)


def _promised(script: str) -> list[Path]:
    """The files the ``ls DIR  # a, b, ...`` lines promise."""
    promised = []
    for folder, names in re.findall(r"^ls (\S+)\s+#\s*(.+)$", script, flags=re.M):
        for name in (n.strip().rstrip("/") for n in names.split(",")):
            if re.fullmatch(r"[\w.-]+", name) and name != "...":
                promised.append(Path(folder) / name)
    return promised


STARTS = quick_starts((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_three_quick_starts():
    assert set(STARTS) == {"review a case", "audit a dataset", "bring your model"}
    assert all(script.strip() for script in STARTS.values())


@pytest.mark.parametrize("title", sorted(STARTS))
def test_quick_start_runs_as_written(title, tmp_path):
    script = STARTS[title]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "LUCIDA_PACS_CONFIG": str(tmp_path / "no-pacs.toml")}
    done = subprocess.run(["bash", "-e", "-c", _as_run_here(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{title} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    missing = [str(path) for path in _promised(script) if not (tmp_path / path).exists()]
    assert not missing, f"{title}: the quick start promises {missing}"
    assert _promised(script), f"{title}: no `ls DIR  # files` line says what it makes"
