"""Trust-panel time for one 512x512 case: deletion, insertion and LeRF curves of a Grad-CAM map.

Goal: at most 3 s on 2 CPU cores. The peer measured in the same run is one forward pass of the
same batch (every curve point scored at once), so the ratio says how much the metrics cost on top
of the model's own work; the sanity check (which re-explains the case) is timed separately.

Exits 1 when the goal is missed (never in smoke mode). Usage: ``python bench/bench_metrics.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smoke import SMOKE, sized  # noqa: E402

from engine.core.case import Target  # noqa: E402
from engine.metrics import case_metrics  # noqa: E402
from engine.metrics.case import case_scorer  # noqa: E402
from engine.metrics.faithfulness import impute  # noqa: E402

SIZE = sized(512, 128)
STEPS = sized(20, 4)
REPEATS = sized(3, 1)
GOAL_S = 3.0


def _best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    """Time the trust metrics of one case and print them against one batched forward pass."""
    from PIL import Image as PILImage

    from engine.demo.phantoms import phantom_set
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model
    from engine.studies.image import open_image

    torch.set_num_threads(sized(2, 1))
    phantom = next(p for p in phantom_set(16, 77, size=SIZE) if p.lesion_box is not None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.png"
        PILImage.fromarray(np.round(phantom.pixels * 255).astype(np.uint8)).save(path)
        image = open_image(path)
        model = load_model("demo")
        session = Session(device="cpu")
        result = session.explain(
            ExplainRequest(image=image, model=model, methods=["gradcam"], target="nodule")
        )
        method, layer = next(iter(result.maps))

        def panel(sanity: bool):
            return case_metrics(session, result, image, model, method, layer,
                                roi=phantom.lesion_box, sanity=sanity, steps=STEPS)

        panel(False)  # warm-up: first-call allocations and lazy imports
        t_panel = _best_of(REPEATS, lambda: panel(False))
        t_sanity = _best_of(1, lambda: panel(True)) - t_panel

        x = model.preprocess(image)
        cap, forward = case_scorer(model, x, Target("nodule"), tuple(image.shape))
        pixels = cap.to_pixels(x).cpu()
        batch = impute(pixels, torch.zeros(STEPS + 1, 1, *pixels.shape[-2:]), "mean")
        t_forward = _best_of(REPEATS, lambda: forward(batch))
    print(f"   case {SIZE}x{SIZE}, model input {tuple(x.shape[-2:])}, {STEPS + 1} points per curve")
    print(f"   trust panel (deletion + insertion + LeRF + drop, Grad-CAM): {t_panel:.3f} s "
          f"(goal <= {GOAL_S:.0f} s: {'met' if t_panel <= GOAL_S else 'MISSED'})")
    print(f"   one forward pass of the same batch ({STEPS + 1} images): {t_forward * 1000:.1f} ms")
    print(f"   ratio trust panel / batched forward: {t_panel / t_forward:.1f}x "
          f"(three curves = 3 such passes plus imputation)")
    print(f"   sanity check on top (4-stage cascade + other class): {t_sanity:.3f} s")
    return 0 if SMOKE or t_panel <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
