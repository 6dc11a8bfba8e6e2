"""The metric battery of one map, grouped by the families the field uses (Quantus's vocabulary):
robustness, faithfulness, localisation, complexity and randomisation.

:func:`metric_families` works on plain callables (a scorer, a batch explainer, a per-class
explainer) so that it runs on any model and in tests; :func:`case_families` builds them from a
loaded model through the explain core, for the case's own target, and is what
:func:`engine.metrics.case.case_metrics` calls with ``families=True``.

Every figure comes as ``{"name", "value", "meaning", "judgement", "better", "citation"}``:
``judgement`` is ``"good"``, ``"fair"`` or ``"poor"`` against the thresholds below (Lucida's
reading conventions, stated in the trust-metrics guide), or ``None`` where the figure has no
absolute scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from engine.core.cancel import CancelToken, ProgressFn, no_progress
from engine.metrics.complexity import complexity, sparseness
from engine.metrics.correlation import RUNS, faithfulness_correlation
from engine.metrics.localisation import (
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    roi_mask,
)
from engine.metrics.randomisation import random_logit
from engine.metrics.road import PERCENTAGES, road
from engine.metrics.robustness import (
    NOISE_STD,
    RADIUS,
    SAMPLES,
    ExplainBatch,
    input_perturbations,
    lipschitz_from_maps,
    sensitivity_from_maps,
)

FAMILIES = ("robustness", "faithfulness", "localisation", "complexity", "randomisation")

#: (good at or beyond, poor at or beyond) per figure; ``better`` says which way is good.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "max_sensitivity": (0.2, 0.5),
    "avg_sensitivity": (0.1, 0.3),
    "lipschitz_amplification": (1.0, 5.0),
    "road_gap": (0.25, 0.05),
    "faithfulness_correlation": (0.5, 0.1),
    "relevance_mass_accuracy": (0.5, 0.0),  # poor: at or below the ROI's share of the image
    "relevance_rank_accuracy": (0.5, 0.0),
    "sparseness": (0.5, 0.2),
    "complexity_normalised": (0.85, 0.97),
    "random_logit_ssim": (0.5, 0.9),
}

_LOWER = {"max_sensitivity", "avg_sensitivity", "lipschitz_amplification",
          "complexity_normalised", "random_logit_ssim"}


def judge(name: str, value: float | None, chance: float | None = None) -> str | None:
    """``"good"``, ``"fair"`` or ``"poor"`` for a figure, or None without a threshold.

    ``chance`` raises the poor bound of the localisation figures to the ROI's share of the
    image: a map no better than chance at placing its relevance is poor.
    """
    if value is None or name not in THRESHOLDS or not np.isfinite(value):
        return None
    good, poor = THRESHOLDS[name]
    if chance is not None:
        poor = max(poor, chance)
    if name in _LOWER:
        return "good" if value <= good else "poor" if value >= poor else "fair"
    return "good" if value >= good else "poor" if value <= poor else "fair"


def _figure(name: str, value: Any, meaning: str, citation: str, *,
            chance: float | None = None, better: str | None = None) -> dict:
    if value is not None and not np.isfinite(value):
        value = None
    if name in THRESHOLDS:
        better = "lower" if name in _LOWER else "higher"
    return {"name": name, "value": value, "meaning": meaning,
            "judgement": judge(name, value, chance), "better": better, "citation": citation}


YEH = "Yeh et al. 2019, NeurIPS"
ALVAREZ = "Alvarez-Melis & Jaakkola 2018, ICML WHI"
ROAD = "Rong et al. 2022, ICML"
BHATT = "Bhatt et al. 2020, IJCAI"
ARRAS = "Arras et al. 2022, Information Fusion"
CHALASANI = "Chalasani et al. 2020, ICML"
SIXT = "Sixt et al. 2020, ICML"


def metric_families(
    forward: Callable[[torch.Tensor], torch.Tensor],
    explain_batch: ExplainBatch | None,
    explain_class: Callable[[int], np.ndarray] | None,
    pixels: torch.Tensor,
    saliency,
    target: int,
    *,
    num_classes: int,
    versus: int | None = None,
    heatmap=None,
    roi_region: np.ndarray | None = None,
    samples: int = SAMPLES,
    radius: float = RADIUS,
    noise_std: float = NOISE_STD,
    runs: int = RUNS,
    road_percentages: tuple[float, ...] | None = PERCENTAGES,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> dict:
    """Run the battery on one map and return its figures grouped by family.

    Parameters
    ----------
    forward : callable
        ``f(pixels (N, C, H, W)) -> scores (N, K)`` on [0, 1] inputs.
    explain_batch : callable or None
        ``(N, C, H, W)`` pixels -> ``(N, h, w)`` maps of the same method, layer and target;
        None skips the robustness family.
    explain_class : callable or None
        ``explain_class(c) -> map`` for class ``c``; None skips Random Logit.
    pixels : torch.Tensor
        ``(1, C, H, W)`` image in [0, 1].
    saliency : array-like
        The raw map (model-input geometry), as ``explain_batch`` makes it.
    target : int
        Explained class.
    num_classes : int
        Classes of the model.
    versus : int, optional
        Contrasted class: scores track ``p[target] - p[versus]``.
    heatmap : array-like, optional
        The map in image geometry, for the localisation family (default ``saliency``).
    roi_region : np.ndarray, optional
        Boolean ROI mask shaped like ``heatmap``; without it the localisation family is empty.
    samples, radius, noise_std : int, float, float
        Perturbed inputs per robustness estimate, the uniform radius and the Gaussian std.
    runs : int
        Random subsets of Faithfulness Correlation.
    road_percentages : tuple of float or None
        Shares of pixels ROAD removes, in percent; None leaves ROAD out.
    seed : int
        Seed of every perturbation, subset and class draw.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    dict
        ``{family: [figure, ...]}`` for each of :data:`FAMILIES`, plus ``timings_ms`` per
        family and ``parameters`` (samples, radius, noise std, seed).
    """
    report = progress or no_progress
    raw = np.nan_to_num(np.asarray(saliency, dtype=np.float32), nan=0.0)
    out: dict[str, Any] = {f: [] for f in FAMILIES}
    timings: dict[str, float] = {}

    def check() -> None:
        if cancel is not None:
            cancel.check()

    start = time.perf_counter()
    if explain_batch is not None:
        uniform = input_perturbations(pixels, "uniform", radius, samples, seed)
        gaussian = input_perturbations(pixels, "gaussian", noise_std, samples, seed + 1)
        maps = explain_batch(torch.cat([uniform, gaussian]))
        out["robustness"] = robustness_figures(pixels, raw, gaussian, maps, samples, radius,
                                               noise_std)
    timings["robustness"] = (time.perf_counter() - start) * 1000.0
    report(0.5, "robustness done")
    check()

    start = time.perf_counter()
    fc = faithfulness_correlation(forward, pixels, raw, target, versus=versus, seed=seed,
                                  runs=runs)
    r = None if road_percentages is None else road(
        forward, pixels, raw, target, percentages=road_percentages, versus=versus, seed=seed)
    add_faithfulness(out, fc, r)
    timings["faithfulness"] = (time.perf_counter() - start) * 1000.0
    report(0.7, "faithfulness done")
    check()

    if roi_region is not None:
        out["localisation"] = localisation_figures(raw if heatmap is None else heatmap,
                                                   roi_region)
    out["complexity"] = complexity_figures(raw)

    start = time.perf_counter()
    if explain_class is not None and num_classes - (versus is not None) >= 2:
        check()
        rl = random_logit(explain_class, raw, target, num_classes,
                          exclude=() if versus is None else (int(versus),))
        add_randomisation(out, rl)
    timings["randomisation"] = (time.perf_counter() - start) * 1000.0
    out["timings_ms"] = timings
    out["parameters"] = {"samples": samples, "radius": radius, "noise_std": noise_std,
                         "runs": runs, "road_percentages": road_percentages, "seed": seed}
    report(1.0, "metric families done")
    return out


def robustness_figures(pixels: torch.Tensor, raw: np.ndarray, gaussian: torch.Tensor,
                       maps: np.ndarray, samples: int, radius: float,
                       noise_std: float) -> list[dict]:
    """The robustness figures of one map from its maps on the perturbed inputs.

    ``maps`` holds the maps of the ``samples`` uniform perturbations, then of the ``gaussian``
    ones (as :func:`metric_families` explains them, in one call).
    """
    most, mean = sensitivity_from_maps(raw, maps[:samples])
    lip = lipschitz_from_maps(pixels, raw, gaussian, maps[samples:])
    scaled = raw / peak if (peak := float(np.abs(raw).max())) > 0 else raw
    size_map = float(np.linalg.norm(scaled))
    amp = lip * float(torch.as_tensor(pixels).double().norm()) / size_map \
        if size_map > 0 else 0.0
    return [
        _figure("max_sensitivity", most, f"largest relative change of the map under "
                f"{samples} uniform input perturbations of +/-{radius:g}", YEH),
        _figure("avg_sensitivity", mean, "mean relative change of the map under the same "
                "perturbations", YEH),
        _figure("local_lipschitz", lip, f"largest change of the peak-scaled map per unit "
                f"change of the input (Gaussian noise, std {noise_std:g})", ALVAREZ,
                better="lower"),
        _figure("lipschitz_amplification", amp, "the same, both changes relative to their "
                "size: above 1 the map moves more than the input", ALVAREZ),
    ]


def add_faithfulness(out: dict, fc: dict, r: dict | None) -> None:
    """Put the ROAD figures and curves (where ``r`` is given) and Faithfulness Correlation."""
    if r is not None:
        out["faithfulness"] = [
            _figure("road_morf_mean", r["road_morf_mean"], "mean score with the most relevant "
                    "pixels removed (10..90%) by noisy linear imputation", ROAD, better="lower"),
            _figure("road_lerf_mean", r["road_lerf_mean"], "the same, least relevant first",
                    ROAD, better="higher"),
            _figure("road_gap", r["road_gap"], "(LeRF - MoRF) / score: how much more removing "
                    "what the map ranks high costs than removing what it ranks low", ROAD),
        ]
        out["road_curves"] = {"percentages": r["road_percentages"], "morf": r["road_morf"],
                              "lerf": r["road_lerf"], "score": r["road_score"]}
    out["faithfulness"].append(
        _figure("faithfulness_correlation", fc["faithfulness_correlation"],
                f"correlation of the map's total over {fc['runs']} random pixel subsets with the "
                "score drop when they are removed", BHATT))


def localisation_figures(heatmap, roi_region: np.ndarray) -> list[dict]:
    """Relevance Mass and Rank Accuracy of a map against a boolean ROI of its shape."""
    heat = np.asarray(heatmap, dtype=np.float32)
    chance = float(np.mean(roi_region))
    return [
        _figure("relevance_mass_accuracy", relevance_mass_accuracy(heat, roi_region),
                "share of the positive relevance inside the ROI", ARRAS, chance=chance),
        _figure("relevance_rank_accuracy", relevance_rank_accuracy(heat, roi_region),
                "share of the ROI's pixels among the map's as many highest", ARRAS,
                chance=chance),
    ]


def complexity_figures(raw: np.ndarray) -> list[dict]:
    """Sparseness and Complexity (plain and normalised) of a map."""
    entropy, normalised = complexity(raw)
    return [
        _figure("sparseness", sparseness(raw), "Gini index of |map|: 0 spread evenly, near 1 "
                "on a few pixels", CHALASANI),
        _figure("complexity", entropy, "entropy of |map| as a distribution (nats)", BHATT,
                better="lower"),
        _figure("complexity_normalised", normalised, "that entropy over its largest value: 1 "
                "is a flat map", BHATT),
    ]


def add_randomisation(out: dict, rl: dict) -> None:
    """Put the Random Logit figures and the class it drew."""
    out["randomisation"] = [
        _figure("random_logit_ssim", rl["random_logit_ssim"], f"SSIM with the map for a "
                f"random other class ({rl['random_logit_class']}): near 1 the map does not "
                "depend on the class", SIXT),
        _figure("random_logit_spearman", rl["random_logit_spearman"], "rank correlation "
                "with that map", SIXT, better="lower"),
    ]
    out["random_logit_class"] = rl["random_logit_class"]


def case_families(model: Any, result: Any, image: Any, method: str, layer: str,
                  roi: tuple[int, int, int, int] | None = None, *, roi_shape: str = "box",
                  samples: int = SAMPLES, runs: int = RUNS, seed: int = 0,
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> dict:
    """The battery of :func:`metric_families` for one map of a 2-D case, through the core.

    Parameters
    ----------
    model : LoadedModel
        The model that was explained.
    result : ExplainResult
        Holds the map, the target and the explainer parameters.
    image : Image
        The image that was explained.
    method, layer : str
        Which map.
    roi : (x0, y0, x1, y1), optional
        Region of interest in image pixels, for the localisation family.
    roi_shape : {"box", "ellipse"}
        Shape of the ROI within its box.
    samples : int
        Perturbed inputs per robustness estimate (each is one explanation, batched).
    runs : int
        Random subsets of Faithfulness Correlation.
    seed : int
        Seed of every random draw.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    dict
        As :func:`metric_families`.
    """
    from engine.core.case import Target
    from engine.metrics.case import _as_numpy, case_scorer, case_target, map_function
    from engine.metrics.robustness import batch_explainer

    mres = result.maps[(method, layer)]
    raw = _as_numpy(mres.raw)
    target = case_target(result, model)
    image_shape = tuple(image.shape[:2])
    x = model.preprocess(image, getattr(result, "frame", 0)).detach()
    cap, forward = case_scorer(model, x, target, image_shape)
    pixels = cap.to_pixels(x).cpu()
    params = result.params.get(method) if isinstance(result.params, dict) else None
    params = params if isinstance(params, dict) else None
    explain_batch = batch_explainer(model, method, layer, x, target, params, cancel,
                                    image_shape)
    one = map_function(model, method, layer, x, params, cancel, image_shape)

    def explain_class(c: int) -> np.ndarray:
        return one(model.module, Target(c, target.versus, target.roi))

    heat = _as_numpy(mres.heatmap)
    region = None if roi is None else roi_mask(heat.shape, roi, roi_shape)
    return metric_families(forward, explain_batch, explain_class, pixels, raw,
                           int(target.label), num_classes=len(model.classes),
                           versus=target.versus, heatmap=heat, roi_region=region,
                           samples=samples, runs=runs, seed=seed, progress=progress,
                           cancel=cancel)
