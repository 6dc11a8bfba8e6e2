"""Trust metrics for the case on screen: faithfulness, sanity and localisation of one map.

:func:`case_metrics` is the one entry point: ``explain --metrics``, ``engine.api.metrics``, the
GUI trust panel and the tools call it, for an image or a volume (it picks the 2-D or 3-D
measures itself). Everything runs through the explain core, for the case's own target:

- the faithfulness curves score perturbed inputs with the core's scorer for the case, so a
  contrastive map's curves track ``p[target] - p[versus]`` and a segmentation model's region
  map tracks the region, as the perturbation explainers do;
- the sanity checks re-run the explainer through the core with the case's target, versus and
  region, first on the unchanged model (how well the shown map is reproduced), then on
  randomised copies. The user's model is never modified.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from engine.core.cancel import Cancelled, CancelToken, ProgressFn, no_progress
from engine.core.case import Target
from engine.core.errors import UsageError
from engine.metrics.estimate_accuracy import estimate_accuracy
from engine.metrics.faithfulness import average_drop_increase, perturbation_curve
from engine.metrics.localisation import roi_metrics
from engine.metrics.sanity import cascading_randomisation, decision_end_verdict, spearman

#: Spearman correlation with another class's map above which the map is called class-blind.
CLASS_INSENSITIVE = 0.9
#: Spearman correlation between the shown map and its re-run on the unchanged model below
#: which the map is not reproducible (dropout left on, a non-deterministic layer, unseeded noise).
REPRODUCIBLE = 0.99
#: Share of pixels whose removal the summary line reports.
SUMMARY_FRACTION = 0.10
#: (LeRF deletion AUC - MoRF deletion AUC) / original score above which a map is called
#: faithful, and above which it is called weakly faithful.
FAITHFUL_GAP = 0.25
WEAK_GAP = 0.05
#: Below this target probability the faithfulness verdict is inconclusive.
LOW_SCORE = 0.1


def _as_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    return np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0)


def _with_module(model: Any, module: torch.nn.Module) -> Any:
    """A shallow copy of a loaded model that runs ``module`` instead of its own."""
    twin = copy.copy(model)
    object.__setattr__(twin, "module", module)
    return twin


def map_function(model: Any, method: str, layer: str, x: torch.Tensor, params: dict | None = None,
                 cancel: CancelToken | None = None, image_shape: tuple[int, ...] | None = None):
    """Return ``explain(module, target) -> raw map`` that reruns one explainer through the core.

    Parameters
    ----------
    model : LoadedModel
        The model; ``module`` is swapped for the one passed to the returned function.
    method : str
        Registry key of the explainer.
    layer : str
        Layer of the map (``"input"`` for model-agnostic explainers).
    x : torch.Tensor
        ``(1, C, *spatial)`` preprocessed input.
    params : dict, optional
        The explainer's parameters (checked against its schema).
    cancel : CancelToken, optional
        Passed to the explainer.
    image_shape : tuple of int, optional
        The image's ``(rows, cols)``, to place a region target on the model's grid.

    The returned function takes the module to run and the
    :class:`engine.core.case.Target` (or class index) to explain.
    """
    from engine.explain.core import explain_one

    def explain(module: torch.nn.Module, target: Any) -> np.ndarray:
        return _as_numpy(explain_one(_with_module(model, module), x, method, layer, target,
                                     params, cancel, image_shape))

    return explain


def case_target(result: Any, model: Any) -> Target:
    """The :class:`Target` a result explained: its case's, or rebuilt from its fields."""
    case = getattr(result, "case", None)
    if case is not None:
        return case.target
    versus = getattr(result, "versus", None)
    return Target(int(result.target),
                  None if versus is None else int(model.resolve_target(versus)))


def case_scorer(model: Any, x: torch.Tensor, target: Target,
                image_shape: tuple[int, ...] | None) -> Any:
    """The core's scorer for one case, as ``forward(pixels) -> (N, K)`` on [0, 1] inputs.

    The capture is forward-only; its ``forward_scores`` carries the case's region (a
    segmentation model's explained region), and the folded copy of the model where one
    exists. Returns ``(capture, forward)``.
    """
    from engine.explain import core

    cap = core.capture(model, x, target, core.Plan([], {}, [], False), image_shape)

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        return cap.forward_scores(cap.from_pixels(pixels.to(x.device))).float().cpu()

    return cap, forward


def summary_line(
    target_name: str, p0: float, p10: float, morf_auc: float, lerf_auc: float, sanity: dict
) -> str:
    """Return the plain-language verdict shown above the metrics.

    The verdict compares deleting the most relevant pixels first (MoRF) with deleting the least
    relevant first (LeRF), as ROAD (Rong et al. 2022) recommends: imputation artefacts hit both
    orders alike, so only the gap between them credits the map.

    Parameters
    ----------
    target_name : str
        Class explained.
    p0, p10 : float
        Target probability on the image, and after deleting the top 10% salient pixels.
    morf_auc, lerf_auc : float
        Deletion AUC, most and least relevant first.
    sanity : dict
        The sanity keys of :func:`case_metrics` (may be empty).
    """
    gap = lerf_auc - morf_auc
    if p0 < LOW_SCORE:
        # Nothing to take away: a deletion curve cannot fall far below a score near zero.
        verdict = f"inconclusive (the {target_name} probability is low)"
    elif gap >= FAITHFUL_GAP * p0:
        verdict = "faithful"
    elif gap >= WEAK_GAP * p0:
        verdict = "weakly faithful"
    elif min(morf_auc, lerf_auc) >= (1 - WEAK_GAP) * p0:
        # Removing pixels in either order does not lower the score: the model reacts to the
        # perturbation itself, so the test can neither credit nor blame the map.
        verdict = "inconclusive (removing pixels in any order does not lower the probability)"
    else:
        verdict = "not faithful"
    pct = round(100 * SUMMARY_FRACTION)
    verb = "drops" if p10 < p0 else "moves"
    line = (
        f"{verdict}: removing the top {pct}% salient pixels {verb} the {target_name} probability "
        f"from {p0:.2f} to {p10:.2f}"
    )
    if verdict == "not faithful":
        # Say why: a map can point at a lesion while the model reads something else (a marker).
        line += (
            ", while removing the least salient pixels first lowers it more: the model relies on "
            "pixels the map ranks low"
            if lerf_auc < morf_auc
            else ", about as much as removing the least salient pixels first: the map does not "
            "single out what the model uses"
        )
    if sanity.get("sanity_passed") is False:
        line += (
            f"; sanity check failed: the map barely changes when the top layers of the model are "
            f"randomised (similarity {sanity['sanity_similarity']:.2f}), so it may show the "
            "image, not the model"
        )
    return line


def case_metrics(
    session: Any,
    result: Any,
    image: Any,
    model: Any,
    method: str,
    layer: str,
    roi: tuple[int, int, int, int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    sanity: bool = True,
    *,
    roi_shape: str = "box",
    baseline: str = "background",
    steps: int = 20,
    cascade_steps: int = 4,
    families: bool = False,
) -> dict:
    """Compute the trust metrics of one map of one case: an image, or a volume a 3-D model read.

    Parameters
    ----------
    session : Session
        The session that produced ``result`` (kept for the contract; the metrics run their own
        batched passes).
    result : ExplainResult
        Holds the map ``(method, layer)``, the target and the explainer parameters.
    image : Image
        The image that was explained.
    model : LoadedModel
        The model that was explained.
    method, layer : str
        Which map.
    roi : (x0, y0, x1, y1), optional
        Region of interest in image pixels; adds ``pointing_hit``, ``energy_in_roi`` and
        ``iou_at_half``.
    progress, cancel
        Progress callback and cancel token.
    sanity : bool
        Whether to run the randomisation and class-sensitivity checks (re-explains the case
        ``cascade_steps + 1`` times).
    roi_shape : {"box", "ellipse"}
        Shape of the ROI within its bounding box.
    baseline : {"background", "linear", "blur", "mean"}
        What replaces removed pixels (see :mod:`engine.metrics.faithfulness`).
    steps : int
        Points on each curve, minus one.
    cascade_steps : int
        Stages of the randomisation cascade.
    families : bool
        Also run the battery grouped by family (robustness, faithfulness, localisation,
        complexity, randomisation) of :func:`engine.metrics.families.case_families` under the
        ``families`` key (2-D cases).

    Returns
    -------
    dict
        ``deletion_auc``, ``insertion_auc``, ``lerf_auc`` (deletion, least relevant first),
        ``average_drop`` (percent), ``increase_in_confidence``
        (bool for one case), ``score``, ``score_after_top10``; with ``sanity``:
        ``sanity_spearman`` (after the full cascade), ``sanity_passed`` (judged at the decision
        end, see :func:`engine.metrics.sanity.decision_end_verdict`), ``sanity_similarity``,
        ``sanity_top_spearman``, ``sanity_top_ssim`` and ``sanity_top_stages`` (the decision-end
        means and how many stages they cover), ``sanity_cascade`` (per stage ``layers``,
        ``spearman``, ``ssim``, ``similarity``),
        ``random_label_spearman``, ``random_label_class``; with ``roi``: ``pointing_hit``,
        ``energy_in_roi``, ``iou_at_half``; always ``versus`` (the contrasted class index or
        None), ``versus_name``, ``tracks`` (what the curves follow), ``curves``, ``summary``,
        ``warnings`` and ``timings_ms``. ``reference_spearman`` (with ``sanity``) says how
        well the method re-run on the unchanged model reproduces the shown map: below
        :data:`REPRODUCIBLE` it warns. For a volume: the keys of
        :func:`engine.metrics.volume.volume_metrics` (``roi`` is then a voxel box
        ``(x0, y0, z0, x1, y1, z1)``) and ``reference_spearman``.

    Raises
    ------
    UsageError
        If the map is not in ``result`` or the ROI is outside the image.
    """
    report = progress or no_progress
    key = (method, layer)
    if key not in result.maps:
        have = ", ".join(f"{m}/{lay}" for m, lay in result.maps) or "none"
        raise UsageError(
            f"no {method} map for layer {layer} in this result",
            fix=f"explain it first; maps available: {have}",
        )
    mres = result.maps[key]
    raw = _as_numpy(mres.raw)
    target = case_target(result, model)
    label = int(target.label)
    target_name = str(getattr(result, "target_name", "") or label)
    volume = getattr(image, "kind", None) == "volume"
    image_shape = None if volume else tuple(image.shape[:2])
    timings: dict[str, float] = {}
    warnings: list[str] = []

    start = time.perf_counter()
    x = model.preprocess(image, getattr(result, "frame", 0)).detach()
    cap, forward = case_scorer(model, x, target, image_shape)
    pixels = cap.to_pixels(x).cpu()

    def part(lo: float, hi: float) -> ProgressFn:
        return lambda f, m="": report(lo + (hi - lo) * f, m)

    common = {"method": method, "layer": layer, "target": label, "target_name": target_name,
              "versus": None if target.versus is None else int(target.versus),
              "versus_name": None if target.versus is None else str(
                  model.classes[int(target.versus)]),
              "tracks": "p[target] - p[versus]" if target.versus is not None else "p[target]",
              **estimate_accuracy(getattr(mres, "notes", None))}
    if volume:
        from engine.metrics.volume import volume_metrics

        out: dict[str, Any] = {**common, **volume_metrics(
            forward, pixels, mres, label, roi=roi, steps=steps, versus=target.versus,
            cancel=cancel)}
        timings["faithfulness"] = (time.perf_counter() - start) * 1000.0
        report(0.8, "faithfulness done")
        _reference(out, warnings, model, method, layer, x, raw, result, target, image_shape,
                   cancel)
        out["warnings"] = warnings
        out["timings_ms"] = timings
        report(1.0, "trust metrics done")
        return out

    deletion = perturbation_curve(forward, pixels, raw, label, "deletion", baseline=baseline,
                                  steps=steps, progress=part(0.0, 0.2), cancel=cancel,
                                  versus=target.versus)
    lerf = perturbation_curve(forward, pixels, raw, label, "deletion", baseline=baseline,
                              steps=steps, order="lerf", progress=part(0.2, 0.4), cancel=cancel,
                              versus=target.versus)
    insertion = perturbation_curve(forward, pixels, raw, label, "insertion", baseline=baseline,
                                   steps=steps, progress=part(0.4, 0.6), cancel=cancel,
                                   versus=target.versus)
    drop, increased, p0, _ = average_drop_increase(forward, pixels, raw, label, target.versus)
    timings["faithfulness"] = (time.perf_counter() - start) * 1000.0
    p10 = deletion.score_at(SUMMARY_FRACTION)
    out = {
        **common,
        "baseline": baseline,
        "score": p0,
        "score_after_top10": p10,
        "deletion_auc": deletion.auc,
        "insertion_auc": insertion.auc,
        "lerf_auc": lerf.auc,
        "average_drop": drop,
        "increase_in_confidence": bool(increased),
        "curves": {"deletion": deletion.to_dict(), "insertion": insertion.to_dict(),
                   "lerf": lerf.to_dict()},
    }
    report(0.62, "faithfulness done")

    sanity_out: dict[str, Any] = {}
    if sanity:
        start = time.perf_counter()
        _reference(out, warnings, model, method, layer, x, raw, result, target, image_shape,
                   cancel)
        try:
            sanity_out = _sanity(model, method, layer, x, raw, result, target, image_shape,
                                 cascade_steps, part(0.62, 0.98), cancel)
        except (UsageError, Cancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - a model we cannot copy still gets its metrics
            warnings.append(f"sanity check skipped: {type(exc).__name__}: {exc}")
        timings["sanity"] = (time.perf_counter() - start) * 1000.0
        out.update(sanity_out)
        if sanity_out.get("sanity_passed") is False:
            warnings.append(
                "the map barely changes when the top layers of the model are randomised: it may "
                "not reflect what the model learned"
            )
        if sanity_out.get("random_label_spearman", 0.0) > CLASS_INSENSITIVE:
            warnings.append(
                f"the map for class {sanity_out['random_label_class']} is nearly the same "
                f"(Spearman {sanity_out['random_label_spearman']:.2f}): it does not tell the "
                "classes apart"
            )

    if roi is not None:
        out.update(roi_metrics(_as_numpy(mres.heatmap), roi, roi_shape))
    if families:
        from engine.metrics.families import case_families

        start = time.perf_counter()
        out["families"] = case_families(model, result, image, method, layer, roi,
                                        roi_shape=roi_shape, cancel=cancel)
        timings["families"] = (time.perf_counter() - start) * 1000.0
    shown = target_name if target.versus is None else \
        f"{target_name} rather than {out['versus_name']}"
    out["summary"] = summary_line(shown, p0, p10, deletion.auc, lerf.auc, sanity_out)
    out["warnings"] = warnings
    out["timings_ms"] = timings
    report(1.0, "trust metrics done")
    return out


def _warn_reference(out: dict, warnings: list[str]) -> None:
    value = out.get("reference_spearman")
    if value is not None and value < REPRODUCIBLE:
        warnings.append(
            f"re-running the method on the unchanged model reproduces the shown map only to "
            f"Spearman {value:.2f} (below {REPRODUCIBLE}): dropout left on, a non-deterministic "
            "layer or unseeded noise; the metrics describe a map that cannot be made twice"
        )


def _reference(out, warnings, model, method, layer, x, raw, result, target, image_shape,
               cancel) -> None:
    """Add ``reference_spearman``: the shown map against its re-run on the unchanged model.

    The same method, target, versus and region: the randomisation cascade is judged against
    the shown map, and this says whether that map can be made again at all.
    """
    params = result.params.get(method) if isinstance(result.params, dict) else None
    explain = map_function(model, method, layer, x, params if isinstance(params, dict) else None,
                           cancel, image_shape)
    try:
        out["reference_spearman"] = spearman(raw, explain(model.module, target))
    except (UsageError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - the other metrics still stand
        warnings.append(f"reference re-run skipped: {type(exc).__name__}: {exc}")
        return
    _warn_reference(out, warnings)


def _finite(value: float) -> float | None:
    # JSON has no NaN: an SSIM the map was too coarse for is reported as null.
    return None if np.isnan(value) else float(value)


def _sanity(model, method, layer, x, raw, result, target, image_shape, cascade_steps,
            progress, cancel):
    params = result.params.get(method) if isinstance(result.params, dict) else None
    explain = map_function(model, method, layer, x, params if isinstance(params, dict) else None,
                           cancel, image_shape)
    steps = cascading_randomisation(
        model.module,
        lambda module: explain(module, target),
        raw,
        example=x,
        max_steps=cascade_steps,
        progress=progress,
        cancel=cancel,
    )
    verdict = decision_end_verdict(steps)
    out: dict[str, Any] = {
        "sanity_spearman": steps[-1].spearman,
        "sanity_passed": verdict.passed,
        "sanity_similarity": verdict.similarity,
        "sanity_top_spearman": verdict.spearman,
        "sanity_top_ssim": _finite(verdict.ssim),
        "sanity_top_stages": verdict.stages,
        "sanity_cascade": [{"layers": s.layers, "spearman": s.spearman, "ssim": _finite(s.ssim),
                            "similarity": s.similarity} for s in steps],
    }
    classes = list(getattr(result, "classes", []) or getattr(model, "classes", []))
    label = int(target.label)
    others = [i for i in range(len(classes)) if i not in (label, target.versus)]
    if others:
        # Seeded by the target, so the same case always checks the same other class.
        other = int(np.random.default_rng(label).choice(others))
        out["random_label_class"] = classes[other]
        out["random_label_spearman"] = spearman(
            raw, explain(model.module, Target(other, target.versus, target.roi)))
    return out
