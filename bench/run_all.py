"""Run every ``bench/bench_*.py`` in turn; each prints ratios against peers from the same run."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run the benchmarks named on the command line, or all of them."""
    sys.path.insert(0, str(HERE.parent))
    wanted = set(sys.argv[1:])
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if wanted and not {script.stem, script.stem.removeprefix("bench_")} & wanted:
            continue
        print(f"== {script.stem} ==", flush=True)
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            failures += bool(exc.code)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
            print(f"   failed: {type(exc).__name__}: {exc}", flush=True)
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
