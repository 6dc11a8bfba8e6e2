"""Lucida's own small benchmark: how well does each built-in method localise and explain?

On deterministic phantoms with known lesion boxes (marker independent of the label), for both
demo models, this prints Markdown tables of:

1. pointing-game accuracy and energy share in the lesion box, per built-in method, explaining
   ``nodule`` on the nodule phantoms (and, for the biased model, the share in the marker box);
2. deletion / insertion AUC per method on the same cases;
3. Average Drop and Increase in Confidence for Score-CAM and Grad-CAM, explaining the predicted
   class on every phantom, as in Table 1 of the Score-CAM paper (Wang et al. 2020);
4. mask-shape leakage (Rong et al. 2022): deletion AUC most-relevant-first and
   least-relevant-first under the mean, the noisy-linear and the background fills;
5. whether each fill erases the lesion: the nodule probability once the lesion box's pixels are
   removed.

Usage: ``python tools/trust_table.py [--n 48] [--seed 31337]``. Same arguments, same numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.core.case import Target  # noqa: E402
from engine.demo.phantoms import phantom_set  # noqa: E402
from engine.metrics.case import case_scorer  # noqa: E402
from engine.metrics.faithfulness import (  # noqa: E402
    average_drop_increase,
    impute,
    perturbation_curve,
)
from engine.metrics.localisation import energy_in_roi, pointing_hit, roi_mask  # noqa: E402

MODELS = ("demo", "demo-biased")
#: Score-CAM paper, Table 1 (VGG16, ImageNet validation): Average Drop / Increase in Confidence.
PAPER = {"scorecam": (31.5, 30.6), "gradcam": (47.8, 19.6)}
CURVE_STEPS = 10
#: Fills compared for leakage and lesion erasure; the first is the default.
FILLS = ("background", "linear", "mean")


def _write(phantoms, folder: Path) -> list[Path]:
    from PIL import Image as PILImage

    paths = []
    for i, ph in enumerate(phantoms):
        path = folder / f"phantom_{i:03d}.png"
        PILImage.fromarray(np.round(ph.pixels * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _methods(model) -> list[str]:
    from engine.explain.registry import BUILTIN_MODULES, registry

    reg = registry()
    builtin = [n for n in reg.names() if reg.origin(n) in BUILTIN_MODULES]
    return [n for n in builtin if reg.get(n).unavailable_reason(model) is None]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def evaluate(model_name: str, phantoms, paths, log) -> dict:
    """Run every measurement for one demo model and return the per-method averages."""
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model
    from engine.studies.image import open_image

    model = load_model(model_name)
    session = Session(device="cpu", cache_size=2)
    methods = _methods(model)
    loc: dict[str, dict[str, list]] = {m: {"hit": [], "energy": [], "marker": [], "del": [],
                                           "ins": []} for m in methods}
    adic: dict[str, dict[str, list]] = {m: {"drop": [], "inc": []} for m in ("scorecam", "gradcam")}
    road: dict[str, list] = {}
    for ph, path in zip(phantoms, paths, strict=True):
        image = open_image(path)
        x = model.preprocess(image)
        cap, forward = case_scorer(model, x, Target("top"), tuple(image.shape))
        pixels = cap.to_pixels(x).cpu()
        if ph.lesion_box is not None:
            start = time.perf_counter()
            result = session.explain(ExplainRequest(image=image, model=model, methods=methods,
                                                    target="nodule"))
            mask = roi_mask(image.shape, ph.lesion_box)
            marker = None if ph.marker_box is None else roi_mask(image.shape, ph.marker_box)
            for (method, _layer), mres in result.maps.items():
                acc = loc[method]
                acc["hit"].append(pointing_hit(mres.heatmap, mask))
                acc["energy"].append(energy_in_roi(mres.heatmap, mask))
                if marker is not None:
                    acc["marker"].append(energy_in_roi(mres.heatmap, marker))
                for kind in ("del", "ins"):
                    curve = perturbation_curve(
                        forward, pixels, mres.raw, result.target,
                        "deletion" if kind == "del" else "insertion", steps=CURVE_STEPS,
                    )
                    acc[kind].append(curve.auc)
                if method == "gradcam":
                    _road(road, forward, pixels, mres.raw, result.target)
            _lesion_erased(road, forward, pixels, mask, result.target)
            log(f"  {model_name} {path.name}: {len(result.maps)} maps "
                f"in {time.perf_counter() - start:.1f} s")
        result = session.explain(ExplainRequest(image=image, model=model,
                                                methods=["scorecam", "gradcam"], target="top"))
        for (method, _layer), mres in result.maps.items():
            drop, inc, _, _ = average_drop_increase(forward, pixels, mres.raw, result.target)
            adic[method]["drop"].append(drop)
            adic[method]["inc"].append(inc)
    return {"loc": loc, "adic": adic, "road": road, "methods": methods}


def _lesion_erased(road: dict, forward, pixels, box_mask: np.ndarray, target: int) -> None:
    # Every model-input pixel that the lesion box touches is removed.
    box = torch.from_numpy(box_mask.astype(np.float32))[None, None]
    removed = torch.nn.functional.adaptive_max_pool2d(box, tuple(pixels.shape[-2:])) > 0
    road.setdefault("p0", []).append(float(forward(pixels)[0, target]))
    for baseline in FILLS:
        filled = impute(pixels, removed, baseline, generator=torch.Generator().manual_seed(0))
        road.setdefault(f"lesion/{baseline}", []).append(float(forward(filled)[0, target]))


def _road(road: dict, forward, pixels, raw, target: int) -> None:
    rng = np.random.default_rng(0)
    noise = rng.random(np.asarray(raw).shape).astype(np.float32)
    for baseline in FILLS:
        for name, sal in (("gradcam", raw), ("random", noise)):
            for order in ("morf", "lerf"):
                curve = perturbation_curve(forward, pixels, sal, target, "deletion",
                                           baseline=baseline, order=order, steps=CURVE_STEPS)
                road.setdefault(f"{baseline}/{name}/{order}", []).append(curve.auc)


def _compare(scorecam: float, gradcam: float, lower_is_better: bool) -> str:
    """How Score-CAM compares with Grad-CAM at the printed precision (one decimal)."""
    a, b = round(scorecam, 1), round(gradcam, 1)
    if a == b:
        return "tied"
    return "better" if (a < b) == lower_is_better else "worse"


def report(results: dict[str, dict], n_nodule: int, n_all: int) -> str:
    """Format the Markdown tables."""
    out = [f"Pointing game and energy share on {n_nodule} nodule phantoms (target `nodule`); "
           "deletion/insertion AUC with the default background fill.\n"]
    for name, res in results.items():
        rows = []
        for m in res["methods"]:
            a = res["loc"][m]
            marker = f"{np.mean(a['marker']):.2f}" if a["marker"] else "-"
            rows.append([f"`{m}`", f"{100 * np.mean(a['hit']):.0f}%", f"{np.mean(a['energy']):.2f}",
                         marker, f"{np.mean(a['del']):.3f}", f"{np.mean(a['ins']):.3f}"])
        out.append(f"**{name}**\n")
        out.append(_table(["method", "pointing game", "energy in lesion box",
                           "energy in marker box", "deletion AUC", "insertion AUC"], rows))
        out.append("")
    out.append(f"Average Drop (lower is better) and Increase in Confidence (higher is better), "
               f"predicted class, {n_all} phantoms; the paper's VGG16/ImageNet numbers for "
               "comparison.\n")
    rows = []
    holds = []
    for name, res in results.items():
        ad = {m: np.mean(res["adic"][m]["drop"]) for m in PAPER}
        ic = {m: 100 * np.mean(res["adic"][m]["inc"]) for m in PAPER}
        for m in PAPER:
            rows.append([name, f"`{m}`", f"{ad[m]:.1f}", f"{ic[m]:.1f}"])
        # Compared as printed: a difference hidden by rounding is a tie.
        holds.append((name, _compare(ad["scorecam"], ad["gradcam"], lower_is_better=True),
                      _compare(ic["scorecam"], ic["gradcam"], lower_is_better=False)))
    for m, (ad, ic) in PAPER.items():
        rows.append(["VGG16 (Score-CAM paper)", f"`{m}`", f"{ad:.1f}", f"{ic:.1f}"])
    out.append(_table(["model", "method", "Average Drop %", "Increase in Confidence %"], rows))
    out.append("")
    for name, ad_cmp, ic_cmp in holds:
        wins = [ad_cmp, ic_cmp].count("better")
        verdict = "holds" if wins == 2 else "holds partly" if wins == 1 else "does not hold"
        out.append(f"- {name}: the paper's ranking (Score-CAM better than Grad-CAM) {verdict}: "
                   f"Score-CAM is {ad_cmp} on Average Drop and {ic_cmp} on Increase in "
                   "Confidence.")
    out.append("")
    out.append("Mask-shape leakage (Rong et al. 2022): mean deletion AUC, Grad-CAM map vs a "
               "random map, most relevant first (MoRF) and least relevant first (LeRF).\n")
    rows = []
    for name, res in results.items():
        for baseline in FILLS:
            r = {k: np.mean(v) for k, v in res["road"].items() if k.startswith(baseline + "/")}
            rows.append([name, baseline] + [
                f"{r[f'{baseline}/{s}/{o}']:.3f}"
                for s in ("gradcam", "random") for o in ("morf", "lerf")
            ])
    out.append(_table(["model", "baseline", "Grad-CAM MoRF", "Grad-CAM LeRF", "random MoRF",
                       "random LeRF"], rows))
    out.append("")
    out.append("Does the fill erase the lesion? Mean nodule probability on the nodule phantoms, "
               "and once the lesion box's pixels are removed (share of cases where it falls "
               "below half).\n")
    rows = []
    for name, res in results.items():
        road = res["road"]
        p0 = np.asarray(road["p0"])
        cells = []
        for baseline in FILLS:
            after = np.asarray(road[f"lesion/{baseline}"])
            cells.append(f"{after.mean():.2f} ({100 * np.mean(after < 0.5 * p0):.0f}%)")
        rows.append([name, f"{p0.mean():.2f}"] + cells)
    out.append(_table(["model", "image"] + [f"{b} fill" for b in FILLS], rows))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Compute the tables and print them as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="number of phantoms (about half nodule)")
    parser.add_argument("--seed", type=int, default=31337, help="phantom seed")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    phantoms = list(phantom_set(args.n, args.seed, marker_given_nodule=0.5, size=128))
    n_nodule = sum(p.lesion_box is not None for p in phantoms)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write(phantoms, Path(tmp))
        results = {name: evaluate(name, phantoms, paths, lambda s: print(s, file=sys.stderr))
                   for name in MODELS}
    print(report(results, n_nodule, len(phantoms)))
    print(f"\n_{args.n} phantoms (seed {args.seed}), {time.perf_counter() - start:.0f} s on "
          f"{torch.get_num_threads()} threads._")
    return 0


if __name__ == "__main__":
    sys.exit(main())
