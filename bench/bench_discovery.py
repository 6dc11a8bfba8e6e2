"""Heatmap discovery at scale: clustering time and peak memory at 2,000 and 20,000 maps.

Synthetic audit results with planted clusters (:mod:`engine.demo.heatmaps`, 64 × 64 float16
maps as an audit stores them) are written once per size; each size is then discovered in a
fresh process (:func:`engine.audit.discovery.discover`, the eigengap choosing the number of
clusters), which reports its time and its peak resident memory. The ratios between the two
sizes are the result; time is judged on the process's CPU time, which other work on a shared
machine does not inflate as it does the wall-clock time (both are printed).

Goals: peak memory at 20,000 maps at most 1.5 × that at 2,000 (the maps stream from the store;
what is kept per map is a short vector and a sparse row), and time growing no faster than
n log n (a ratio of at most 13.0 for 10 × the maps). The planted clusters are checked too
(adjusted Rand index at least 0.9), so a fast wrong answer does not pass. Exits 1 when a goal
is missed (never in smoke mode). Usage: ``python bench/bench_discovery.py``.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smoke import SMOKE, sized  # noqa: E402

SIZES = sized((2_000, 20_000), (200, 600))
PLANTED = 4
MEMORY_GOAL = 1.5
CLASSES = ("normal", "nodule")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def child(folder: str) -> None:
    """Discover the store in ``folder`` and print time, memory and agreement as JSON."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from engine.audit.discovery import discover
    from engine.audit.store import ResultStore

    # Warm up on a small store first: the libraries discovery imports are not its memory.
    with tempfile.TemporaryDirectory() as tmp:
        from engine.demo.heatmaps import planted_store

        small, _, _ = planted_store(tmp, 60, 2, seed=1)
        discover(small, CLASSES)
    baseline = _peak_mb()
    store = ResultStore(folder, json.loads((Path(folder) / "run.json").read_text()), resume=True)
    start, cpu = time.perf_counter(), time.process_time()
    result = discover(store, CLASSES).clusters
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    (entry,) = result["classes"]
    truth = np.load(Path(folder) / "planted.npy")
    by_case = {case: cl["id"] for cl in entry["clusters"] for case in cl["members"]}
    found = [by_case[f"{i}:synthetic{i:06d}"] for i in range(len(truth))]
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(),
                      "baseline_mb": baseline, "k": entry["k"],
                      "ari": adjusted_rand_score(truth, found)}))


def measure(n: int, tmp: Path) -> dict:
    """Write ``n`` planted maps and discover them in a fresh process."""
    import numpy as np

    from engine.demo.heatmaps import planted_store

    folder = tmp / f"n{n}"
    _, labels, _ = planted_store(folder, n, PLANTED, seed=n)
    np.save(folder / "planted.npy", labels)
    run = subprocess.run([sys.executable, __file__, "--child", str(folder)], check=True,
                         capture_output=True, text=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> int:
    """Print time and memory per size and their ratios; 1 when a goal is missed."""
    with tempfile.TemporaryDirectory() as tmp:
        got = {n: measure(n, Path(tmp)) for n in SIZES}
    for n, m in got.items():
        print(f"{n:>6} maps: {m['seconds']:6.2f} s ({m['cpu']:.2f} s of CPU), "
              f"peak memory {m['peak_mb']:6.0f} MB "
              f"({m['peak_mb'] - m['baseline_mb']:+.0f} MB over the warmed-up process), "
              f"k = {m['k']} (planted {PLANTED}), adjusted Rand index {m['ari']:.3f}")
    small, large = SIZES
    a, b = got[small], got[large]
    time_ratio = b["cpu"] / a["cpu"]
    nlogn = (large * math.log(large)) / (small * math.log(small))
    memory_ratio = b["peak_mb"] / a["peak_mb"]
    print(f"CPU time ratio {time_ratio:.1f} for {large / small:.0f} × the maps "
          f"(n log n would be {nlogn:.1f}; goal: at most that)")
    print(f"peak memory ratio {memory_ratio:.2f} (goal: at most {MEMORY_GOAL})")
    if SMOKE:
        return 0
    ok = time_ratio <= nlogn and memory_ratio <= MEMORY_GOAL and \
        min(a["ari"], b["ari"]) >= 0.9
    if not ok:
        print("goal missed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
