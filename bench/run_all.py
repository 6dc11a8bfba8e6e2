"""Run every ``bench/bench_*.py``, each in its own process; each prints ratios against peers.

A process per benchmark: one benchmark's imports, patches, threads or leftover servers never
reach the next. ``--smoke`` runs them at tiny sizes (see :mod:`smoke`).

Run: ``python bench/run_all.py [--smoke] [NAME ...]`` (or ``make bench``); a NAME is
``bench_volumes`` or ``volumes``. Exits 1 when a benchmark failed, naming it.

A full run (not ``--smoke``) also writes each benchmark's output to ``bench/results/NAME.txt``,
which the documentation's benchmarks page includes as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from smoke import smoke_env

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def scripts(wanted: set[str] | None = None) -> list[Path]:
    """The benchmark scripts, sorted; only those named in ``wanted`` when given.

    Parameters
    ----------
    wanted : set of str, optional
        Names such as ``bench_volumes`` or ``volumes``.

    Returns
    -------
    list of Path
    """
    return [script for script in sorted(HERE.glob("bench_*.py"))
            if not wanted or {script.stem, script.stem.removeprefix("bench_")} & wanted]


def main(argv: list[str]) -> int:
    """Run the benchmarks named in ``argv``, or all of them; 1 if any failed."""
    env = smoke_env(os.environ) if "--smoke" in argv else dict(os.environ)
    wanted = {arg for arg in argv if not arg.startswith("--")}
    chosen = scripts(wanted)
    if wanted and not chosen:
        print(f"no benchmark named {' '.join(sorted(wanted))}: see {HERE}", file=sys.stderr)
        return 2
    failed = []
    for script in chosen:
        print(f"== {script.stem} ==", flush=True)
        code = _run(script, env, None if "--smoke" in argv else RESULTS / f"{script.stem}.txt")
        if code:
            print(f"   {script.stem} failed (exit code {code})", flush=True)
            failed.append(script.stem)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


def _run(script: Path, env: dict, record: Path | None) -> int:
    """Run one benchmark; its output goes to ours as it comes, and to ``record`` when given."""
    if record is None:
        return subprocess.run([sys.executable, str(script)], env=env, check=False).returncode
    lines = []
    with subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if proc.returncode == 0:
        # A failed run keeps the last good record.
        record.parent.mkdir(exist_ok=True)
        record.write_text("".join(lines), encoding="utf-8")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
