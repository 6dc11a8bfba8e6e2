"""gui/ stays thin: no gui module grows past about 500 lines.

Engine work (decisions, data shaping, text that needs no Qt) belongs in engine/ modules, and a
gui module that grows past this holds more than one responsibility: split it.
"""

from __future__ import annotations

from pathlib import Path

GUI = Path(__file__).resolve().parents[1] / "gui"
#: Most lines a gui module may have.
MAX_LINES = 500


def too_long(folder: Path, limit: int) -> dict[str, int]:
    """Line counts of the ``*.py`` files of ``folder`` that have more than ``limit`` lines."""
    counts = {path.name: len(path.read_text(encoding="utf-8").splitlines())
              for path in sorted(folder.glob("*.py"))}
    return {name: n for name, n in counts.items() if n > limit}


def test_every_gui_module_is_at_most_500_lines():
    assert list(GUI.glob("*.py")), f"no gui modules under {GUI}"
    assert too_long(GUI, MAX_LINES) == {}


def test_the_check_finds_a_module_over_the_limit(tmp_path):
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_LINES, encoding="utf-8")
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_LINES + 1), encoding="utf-8")
    assert too_long(tmp_path, MAX_LINES) == {"long.py": MAX_LINES + 1}
