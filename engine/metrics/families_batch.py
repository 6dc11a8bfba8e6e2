"""The metric battery of :func:`engine.metrics.families.metric_families` over a batch of images
at once, for dataset-level tables and benches.

Looping the one-image battery costs a scorer capture, an explainer capture and a handful of
small forward passes per image; here the work of all images is pooled instead. The images'
perturbed copies (the same seeded draws as the one-image battery) are explained through the
explain core in one batched call, chunked to bound memory; Faithfulness Correlation's subsets and
ROAD's imputed copies of all images are scored in a few large forward passes; the Random Logit
maps are one more batched explanation. The figures of each image equal the one-image battery's
with the same seed (up to float rounding of the batched passes).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from engine.core.cancel import CancelToken, ProgressFn, no_progress
from engine.core.case import Target
from engine.core.errors import UsageError
from engine.metrics.correlation import RUNS, SUBSET, pearson, random_subsets
from engine.metrics.faithfulness import _as_map, baseline_image, tracked
from engine.metrics.families import (
    FAMILIES,
    add_faithfulness,
    add_randomisation,
    complexity_figures,
    localisation_figures,
    robustness_figures,
)
from engine.metrics.randomisation import map_ssim, random_logit_class
from engine.metrics.road import PERCENTAGES, road_inputs, road_result
from engine.metrics.robustness import NOISE_STD, RADIUS, SAMPLES, input_perturbations
from engine.metrics.sanity import spearman

#: Inputs per forward pass. The scorer's default (32) leaves small models' passes dominated
#: by per-call overhead; the pooled subsets and copies run to thousands of inputs.
FORWARD_BATCH = 256


def metric_families_batch(
    model: Any,
    x: torch.Tensor,
    method: str,
    layer: str,
    target: Target | int,
    *,
    params: dict | None = None,
    saliency: np.ndarray | None = None,
    heatmaps: np.ndarray | None = None,
    roi_regions: np.ndarray | None = None,
    samples: int = SAMPLES,
    radius: float = RADIUS,
    noise_std: float = NOISE_STD,
    runs: int = RUNS,
    road_percentages: tuple[float, ...] | None = PERCENTAGES,
    random_logit: bool = True,
    seed: int = 0,
    explain_batch_size: int = 64,
    forward_batch_size: int = FORWARD_BATCH,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[dict]:
    """Run the battery of one method on every image of a batch, pooling the work.

    Parameters
    ----------
    model : LoadedModel
        A 2-D classifier.
    x : torch.Tensor
        ``(N, C, H, W)`` preprocessed inputs.
    method, layer : str
        Which map.
    target : Target or int
        The class explained on every image (and its contrasted class, if any).
    params : dict, optional
        The explainer's parameters.
    saliency : np.ndarray, optional
        ``(N, h, w)`` raw maps of the images; explained here (one batched call) when omitted.
    heatmaps : np.ndarray, optional
        ``(N, H', W')`` maps in the geometry of ``roi_regions`` (default the raw maps).
    roi_regions : np.ndarray, optional
        ``(N, H', W')`` boolean ROI masks; without them the localisation family is empty.
    samples, radius, noise_std, runs, road_percentages, seed
        As :func:`engine.metrics.families.metric_families`.
    random_logit : bool
        Run Random Logit (one more batched explanation).
    explain_batch_size, forward_batch_size : int
        Inputs per explainer capture and per forward pass: they bound the memory.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    list of dict
        One :func:`engine.metrics.families.metric_families` dict per image; ``timings_ms`` holds
        each family's batch time divided by the number of images.
    """
    from engine.explain import core
    from engine.metrics.robustness import batch_explainer

    report = progress or no_progress
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() != 4:
        raise UsageError(f"expected a batch shaped (N, C, H, W), got {tuple(x.shape)}",
                         fix="stack the preprocessed 2-D images")
    n = len(x)
    target = target if isinstance(target, Target) else Target(int(target))
    label, versus = int(target.label), target.versus

    def check() -> None:
        if cancel is not None:
            cancel.check()

    cap = core.capture(model, x[:1], target, core.Plan([], {}, [], False))
    pixels = cap.to_pixels(x).cpu()

    def forward(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return cap.forward_scores(cap.from_pixels(batch.to(x.device)),
                                      batch_size=forward_batch_size).float().cpu()
    explain = batch_explainer(model, method, layer, x[:1], target, params, cancel,
                              batch_size=explain_batch_size)
    raws = explain(pixels) if saliency is None else np.asarray(saliency, dtype=np.float32)
    raws = np.nan_to_num(raws.astype(np.float32), nan=0.0)
    outs: list[dict[str, Any]] = [{f: [] for f in FAMILIES} for _ in range(n)]
    timings: dict[str, float] = {}

    start = time.perf_counter()
    perturbed = [(input_perturbations(p[None], "uniform", radius, samples, seed),
                  input_perturbations(p[None], "gaussian", noise_std, samples, seed + 1))
                 for p in pixels]
    maps = explain(torch.cat([torch.cat(pair) for pair in perturbed]))
    maps = maps.reshape(n, 2 * samples, *maps.shape[1:])
    for i in range(n):
        outs[i]["robustness"] = robustness_figures(pixels[i:i + 1], raws[i], perturbed[i][1],
                                                   maps[i], samples, radius, noise_std)
    timings["robustness"] = time.perf_counter() - start
    report(0.5, "robustness done")
    check()

    start = time.perf_counter()
    fcs = _faithfulness_correlations(forward, pixels, raws, label, versus, runs, seed,
                                     4 * forward_batch_size)
    roads = None if road_percentages is None else _roads(
        forward, pixels, raws, label, versus, road_percentages, seed)
    for i in range(n):
        add_faithfulness(outs[i], fcs[i], None if roads is None else roads[i])
    timings["faithfulness"] = time.perf_counter() - start
    report(0.7, "faithfulness done")
    check()

    for i in range(n):
        if roi_regions is not None:
            heat = raws[i] if heatmaps is None else heatmaps[i]
            outs[i]["localisation"] = localisation_figures(heat, roi_regions[i])
        outs[i]["complexity"] = complexity_figures(raws[i])

    start = time.perf_counter()
    if random_logit and len(model.classes) - (versus is not None) >= 2:
        other = random_logit_class(label, len(model.classes),
                                   exclude=() if versus is None else (int(versus),))
        others = batch_explainer(model, method, layer, x[:1],
                                 Target(other, versus, target.roi), params, cancel,
                                 batch_size=explain_batch_size)(pixels)
        for i in range(n):
            add_randomisation(outs[i], {"random_logit_class": other,
                                        "random_logit_ssim": map_ssim(raws[i], others[i]),
                                        "random_logit_spearman": spearman(raws[i], others[i])})
    timings["randomisation"] = time.perf_counter() - start
    for out in outs:
        out["timings_ms"] = {k: v * 1000.0 / n for k, v in timings.items()}
        out["parameters"] = {"samples": samples, "radius": radius, "noise_std": noise_std,
                             "runs": runs, "road_percentages": road_percentages, "seed": seed}
    report(1.0, "metric families done")
    return outs


def _scores(forward, batch: torch.Tensor, label: int, versus: int | None) -> torch.Tensor:
    return tracked(forward(batch), label, versus).double()


def _faithfulness_correlations(forward, pixels: torch.Tensor, raws: np.ndarray, label: int,
                               versus: int | None, runs: int, seed: int,
                               most: int) -> list[dict]:
    """Faithfulness Correlation of every image (the subsets and fill of
    :func:`engine.metrics.correlation.faithfulness_correlation`), scored in large batches."""
    h, w = pixels.shape[-2:]
    size = int(round(SUBSET * h * w))
    subsets = random_subsets(h * w, size, runs, seed)
    removed = torch.zeros(runs, 1, h * w, dtype=torch.bool)
    removed[torch.arange(runs)[:, None], 0, torch.as_tensor(subsets)] = True
    p0 = _scores(forward, pixels, label, versus)
    # Whole images per group, so that about ``most`` masked copies are held at once.
    group = max(1, most // runs)
    drops = []
    for start in range(0, len(pixels), group):
        part = pixels[start:start + group]
        fills = torch.cat([baseline_image(p[None], "mean") for p in part]).flatten(2)
        batch = torch.where(removed[None], fills[:, None], part.flatten(2)[:, None])
        scores = _scores(forward, batch.view(-1, *pixels.shape[1:]), label, versus)
        drops.append(p0[start:start + len(part), None] - scores.view(len(part), runs))
    drops = torch.cat(drops).numpy()
    out = []
    for raw, drop in zip(raws, drops, strict=True):
        sal = _as_map(raw, (h, w)).double().flatten().numpy()
        out.append({"faithfulness_correlation": pearson(sal[subsets].sum(axis=1), drop),
                    "runs": runs, "subset_size": size})
    return out


def _roads(forward, pixels: torch.Tensor, raws: np.ndarray, label: int, versus: int | None,
           percentages, seed: int) -> list[dict]:
    """ROAD of every image: each image's imputed copies (seeded as :func:`road` seeds them),
    all scored together."""
    copies = [road_inputs(p[None], raw, percentages, seed=seed) for p, raw in zip(pixels, raws,
                                                                                 strict=True)]
    qs = copies[0][0]
    scores = _scores(forward, torch.cat([torch.cat([p[None], b]) for p, (_, b)
                                         in zip(pixels, copies, strict=True)]), label, versus)
    per = 1 + 2 * len(qs)
    return [road_result(scores[i * per:(i + 1) * per].numpy(), qs) for i in range(len(pixels))]
