"""Print the 3-D demo's localisation table: Grad-CAM's peak inside the nodule's box.

    python tools/localisation_3d.py [--seed 4711] [--n 40] [--method gradcam]

The chests come from a held-out seed (the model trained on seed 4000 and validated on 4001).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.demo.volume_check import nodule_localisation  # noqa: E402
from engine.models.loaded import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Explain the held-out nodule volumes and print one row each, then the hit rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4711)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--layer", default="auto")
    args = parser.parse_args(argv)
    model = load_model("demo-3d")
    rows = nodule_localisation(model, args.seed, args.n, args.method, args.layer)
    print("| chest | nodule radius (mm) | nodule box x0 y0 z0 x1 y1 z1 | peak (z, y, x) | "
          "p(nodule) | peak in box |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.index} | {r.radius_mm:.1f} | {' '.join(map(str, r.box))} | "
              f"{', '.join(map(str, r.peak))} | {r.p_nodule:.3f} | {'yes' if r.hit else 'no'} |")
    hits = sum(r.hit for r in rows)
    print(f"\n{args.method}: peak inside the nodule box in {hits} of {len(rows)} nodule volumes "
          f"({100 * hits / max(1, len(rows)):.0f}%), seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
