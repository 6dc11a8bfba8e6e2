"""LIME and KernelSHAP over SLIC superpixels: model-agnostic attributions from perturbed inputs.

Both split the model input into superpixels with scikit-image's SLIC, draw binary samples
``z`` (which superpixels are present), show the absent ones as the baseline's pixels (black,
blurred or uniform noise; see :mod:`plugins.baselines`), score every perturbed input with the
model's post-softmax (or sigmoid) target score (what ``Capture.target_scores`` tracks: minus the
``versus`` class's for a contrastive target), and fit a linear model of the score on ``z``.
The perturbed inputs are built and scored in batches through the capture's one scorer, with
progress and cancel; identical samples are scored once. They need only the model's outputs, so
they work on any model, TorchScript included, and a seed makes them repeatable.

The map gives every pixel its superpixel's attribution (signed).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import torch
from skimage.segmentation import slic

from engine.explain.api import INPUT_LAYER, Explainer, ExplainerUnavailable, Param, no_progress
from plugins.baselines import baseline_input, baseline_param
from plugins.gradients import completeness, note
from plugins.shapley_estimation import SAMPLINGS, estimate_shapley

#: Ridge penalty of LIME's weighted linear fit (the lime package's default).
LIME_RIDGE = 1.0
#: Perturbed inputs per forward pass unless the user sets ``batch_size``.
SCORE_BATCH = 32


def superpixels(capture, segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels of the capture's (single) input, labelled 0..M-1.

    Parameters
    ----------
    capture : Capture
        Its input, mapped back to [0, 1] pixels, is segmented.
    segments : int
        Approximate number of superpixels.
    compactness : float
        SLIC's balance of space against intensity, on pixel values that scikit-image rescales
        to [0, 1] (no Lab conversion, so it means the same for grey and colour inputs).

    Returns
    -------
    np.ndarray
        Integer labels over the input's spatial grid ((H, W), or (D, H, W) for volumes).
    """
    pixels = capture.to_pixels(capture.input[:1])[0].clamp(0.0, 1.0).float().cpu().numpy()
    image = np.moveaxis(pixels, 0, -1)
    labels = slic(image.astype(np.float64), n_segments=int(segments),
                  compactness=float(compactness), channel_axis=-1, convert2lab=False,
                  start_label=0)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape)


#: How much the compactness grows on each retry when SLIC finds a single superpixel.
COMPACTNESS_STEP = 10.0
#: Retries before the input is refused.
COMPACTNESS_RETRIES = 3


def method_superpixels(capture, name: str, params: dict) -> tuple[np.ndarray, str | None]:
    """The superpixels a method fits on, and a warning when the compactness had to be raised.

    On a noisy input (speckle, quantum noise, or random pixels) a colour-following SLIC at low
    compactness merges everything into one superpixel, and a fit on one feature shows one
    colour. The compactness is then raised :data:`COMPACTNESS_STEP`-fold, up to
    :data:`COMPACTNESS_RETRIES` times, until there are at least two superpixels.

    Returns
    -------
    labels : np.ndarray
        As :func:`superpixels` returns them.
    warning : str or None
        What was changed, for the method's notes.

    Raises
    ------
    ExplainerUnavailable
        When no compactness tried splits the input.
    """
    segments, asked = int(params["segments"]), float(params["compactness"])
    compactness = asked
    labels = superpixels(capture, segments, compactness)
    for _ in range(COMPACTNESS_RETRIES):
        if labels.max() > 0:
            break
        compactness *= COMPACTNESS_STEP
        labels = superpixels(capture, segments, compactness)
    if labels.max() == 0:
        raise ExplainerUnavailable(
            f"{name}: SLIC finds a single superpixel in this input at every compactness from "
            f"{asked:g} to {compactness:g}, and a fit on one superpixel has nothing to show",
            fix="use occlusion or RISE on this input")
    if compactness == asked:
        return labels, None
    return labels, (f"{name}: SLIC found a single superpixel at compactness {asked:g} (a noisy "
                    f"input); the map uses compactness {compactness:g} "
                    f"({int(labels.max()) + 1} superpixels)")


def score_samples(capture, target: int, samples: np.ndarray, labels: np.ndarray,
                  baseline: torch.Tensor, batch_size: int, progress, cancel,
                  message: str) -> np.ndarray:
    """Target scores of the perturbed inputs that binary rows of ``samples`` describe.

    Row ``z`` keeps superpixel ``j`` where ``z[j]`` is 1 and shows the baseline elsewhere.
    Identical rows are scored once; the all-present row is the capture's own score.

    Returns
    -------
    np.ndarray
        (S,) float64 scores.
    """
    unique, inverse = np.unique(samples.astype(bool), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    scores = np.empty(len(unique))
    full = unique.all(axis=1)
    scores[full] = float(capture.reference_scores()[0])
    todo = np.flatnonzero(~full)
    x = capture.input
    label_t = torch.as_tensor(labels, device=x.device).long()
    for start in range(0, len(todo), batch_size):
        cancel.check()
        rows = todo[start : start + batch_size]
        keep = torch.as_tensor(unique[rows], device=x.device)[:, label_t]
        batch = torch.where(keep[:, None], x, baseline)
        found = capture.target_scores(batch, target, len(rows))
        scores[rows] = found.double().cpu().numpy()
        progress(min(1.0, (start + len(rows)) / max(1, len(todo))), message)
    return scores[inverse]


def _common_params(segments: int = 50, samples_help: str = "perturbed inputs scored",
                   advanced: bool = False, samples: int = 1000) -> tuple[Param, ...]:
    return (
        Param("segments", "int", segments, range=(2, 10000), help="approximate SLIC superpixels"),
        Param("compactness", "float", 0.3, range=(0.001, 1000.0),
              help="SLIC compactness (higher: more regular, less colour-following superpixels)"),
        Param("samples", "int", samples, range=(10, 100000), help=samples_help,
              advanced=advanced),
        baseline_param(),
        Param("seed", "int", 0, range=(0, 2**31 - 1), help="seed of the samples"),
        Param("batch_size", "int", SCORE_BATCH, range=(1, 1024), advanced=True,
              help="perturbed inputs per forward pass"),
    )


def _as_map(values: np.ndarray, labels: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(1, *grid): each pixel its superpixel's value, batch first for the one input."""
    return torch.as_tensor(values[labels], dtype=torch.float32, device=like.device)[None]


class LIME(Explainer):
    """LIME (Ribeiro et al. 2016, section 3) on superpixels.

    The first sample keeps every superpixel, the rest keep each one with probability 1/2 (as
    the ``lime`` package does for images). Each sample is weighted by the exponential kernel
    ``exp(-d^2 / width^2)`` of its cosine distance ``d`` to the all-present sample, and a ridge
    regression (penalty 1, with intercept) of the target score on the samples, weighted so, gives
    each superpixel its coefficient. How well that local surrogate fits is noted for the input
    in ``capture.notes["lime"]`` as ``{"r2": weighted R^2, "superpixels": M}`` (see
    :func:`weighted_r2`): a low R^2 says the map is a poor summary of the model near the image.
    """

    name = "lime"
    title = "LIME"
    description = "Weighted ridge fit of the target score on which superpixels are shown."
    citation = (
        "Ribeiro MT, Singh S, Guestrin C. \"Why Should I Trust You?\": Explaining the "
        "Predictions of Any Classifier. KDD 2016. arXiv:1602.04938"
    )
    needs = frozenset({"forward_fn"})
    signed = True
    units = "probability per superpixel"
    params = (*_common_params(),
              Param("kernel_width", "float", 0.25, range=(0.01, 10.0),
                    help="width of the exponential kernel on cosine distance"))

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (1, H, W) map}`` in model-input geometry."""
        labels, warning = method_superpixels(capture, self.name, params)
        m = int(labels.max()) + 1
        rng = np.random.default_rng(int(params["seed"]))
        z = rng.integers(0, 2, size=(int(params["samples"]), m)).astype(bool)
        z[0] = True
        baseline = baseline_input(capture, params["baseline"], params["seed"])
        y = score_samples(capture, target, z, labels, baseline, int(params["batch_size"]),
                          progress, cancel, self.title)
        present = z.sum(1)
        cosine = np.where(present > 0, np.sqrt(present / m), 0.0)
        weights = np.exp(-((1.0 - cosine) ** 2) / float(params["kernel_width"]) ** 2)
        coef = weighted_ridge(z.astype(np.float64), y, weights, LIME_RIDGE)
        fit = {"r2": weighted_r2(z.astype(np.float64), y, weights, coef), "superpixels": m}
        if warning:
            fit["warning"] = warning
        note(capture, self.name, [fit])
        return {INPUT_LAYER: _as_map(coef, labels, capture.input)}


def weighted_ridge(z: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    """Coefficients of ``min sum_i w_i (y_i - b - z_i . c)^2 + alpha |c|^2`` (intercept free).

    The intercept is removed by centring on the weighted means, as scikit-learn's ``Ridge``
    does with ``sample_weight`` (which is how the ``lime`` package fits).
    """
    zc = z - (w @ z) / w.sum()
    # Relative to the first score first: equal scores then centre to an exact zero (and zero
    # coefficients), not to rounding noise that the display would stretch to full contrast.
    yc = y - y[0]
    yc = yc - (w @ yc) / w.sum()
    gram = zc.T @ (zc * w[:, None]) + alpha * np.eye(z.shape[1])
    return np.linalg.solve(gram, zc.T @ (w * yc))


def weighted_r2(z: np.ndarray, y: np.ndarray, w: np.ndarray, coef: np.ndarray) -> float:
    """Weighted R^2 of the surrogate ``b + z . coef`` (intercept at the weighted means).

    ``1 - sum w (y - fit)^2 / sum w (y - mean_w y)^2``, what scikit-learn's ``r2_score`` gives
    with ``sample_weight``: how much of the score's variation, near the image as the kernel
    weighs it, the linear surrogate explains. 1 when the scores are all equal (nothing to
    explain, nothing missed).
    """
    mean_y = (w @ y) / w.sum()
    intercept = mean_y - ((w @ z) / w.sum()) @ coef
    residual = w @ (y - intercept - z @ coef) ** 2
    spread = w @ (y - mean_y) ** 2
    return float(1.0 - residual / spread) if spread > 0 else 1.0


def shapley_samples(m: int, budget: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions and weights for KernelSHAP, as the reference implementation draws them.

    Subset sizes ``s`` and ``m - s`` share the Shapley kernel's mass ``(m - 1) / (s (m - s))``.
    From the smallest sizes up, a size whose share of the remaining budget covers all its
    coalitions is enumerated with exact weights; the rest of the budget is sampled: a size by
    its kernel mass, a random coalition of that size, and its complement with it (paired
    sampling). Drawn coalitions share the remaining mass equally, repeats adding up.

    Returns
    -------
    z : np.ndarray
        (S, m) bool coalitions, S <= budget, neither empty nor full.
    weights : np.ndarray
        (S,) float64 kernel weights summing to 1.
    """
    if m < 2:
        return np.zeros((0, m), bool), np.zeros(0)
    half = m // 2  # sizes 1..half, each paired with its complement size m - s
    mass = np.array([(m - 1) / (s * (m - s)) for s in range(1, half + 1)])
    paired = np.array([s != m - s for s in range(1, half + 1)])
    mass[paired] *= 2
    mass /= mass.sum()
    rows, weights = [], []
    left, remaining = budget, mass.copy()
    done = 0
    for i, s in enumerate(range(1, half + 1)):
        count = math.comb(m, s) * (2 if paired[i] else 1)
        share = remaining[i:] / remaining[i:].sum()
        if left * share[0] < count - 1e-8:
            break
        per = mass[i] / count
        for subset in _combinations(m, s):
            rows.append(subset)
            weights.append(per)
            if paired[i]:
                rows.append(~subset)
                weights.append(per)
        left -= count
        done = i + 1
    if done < half and left > 0:
        rest = mass[done:] / mass[done:].sum()
        drawn: dict[bytes, int] = {}
        order: list[np.ndarray] = []
        while left > 0:
            s = done + 1 + int(rng.choice(len(rest), p=rest))
            subset = np.zeros(m, bool)
            subset[rng.choice(m, size=s, replace=False)] = True
            pair = [subset, ~subset] if paired[s - 1] else [subset]
            for row in pair[:left]:
                key = row.tobytes()
                if key not in drawn:
                    drawn[key] = 0
                    order.append(row)
                drawn[key] += 1
                left -= 1
        total = sum(drawn.values())
        for row in order:
            rows.append(row)
            weights.append(mass[done:].sum() * drawn[row.tobytes()] / total)
    z = np.array(rows, dtype=bool).reshape(-1, m)
    w = np.asarray(weights, dtype=np.float64)
    return z, w / w.sum()


def _combinations(m: int, s: int):
    for chosen in combinations(range(m), s):
        row = np.zeros(m, bool)
        row[list(chosen)] = True
        yield row


def constrained_shapley(z: np.ndarray, y: np.ndarray, w: np.ndarray, empty: float,
                        full: float) -> np.ndarray:
    """Solve KernelSHAP's weighted least squares with ``sum(phi) = full - empty`` exactly.

    The last coefficient is eliminated, ``phi_m = (full - empty) - sum_{j<m} phi_j``, which
    turns the constrained problem into an ordinary weighted least-squares fit (Lundberg and Lee,
    Theorem 2 with the efficiency constraint; the reference implementation does the same).
    """
    m = z.shape[1]
    delta = full - empty
    if m == 1:
        return np.array([delta])
    zf = z.astype(np.float64)
    target = y - empty - zf[:, -1] * delta
    design = zf[:, :-1] - zf[:, -1:]
    root = np.sqrt(w)[:, None]
    head, *_ = np.linalg.lstsq(design * root, target * root[:, 0], rcond=None)
    return np.append(head, delta - head.sum())


class KernelSHAP(Explainer):
    """KernelSHAP (Lundberg and Lee 2017, section 4.1) on superpixels, with standard errors.

    Coalitions of superpixels are drawn with their complements (paired sampling), scored with
    the absent superpixels shown as the baseline, and the Shapley values come from the
    kernel-weighted least-squares fit with the efficiency constraint solved exactly: they sum
    to ``f(x) - f(baseline)`` (post-softmax target scores). Each value gets a standard error
    (Covert and Lee 2021; see :mod:`plugins.shapley_estimation`), and sampling stops when the
    largest is at most ``tolerance`` of the values' range, or at ``samples`` scored inputs, or
    after ``time_budget`` seconds. When every coalition fits the budget they are all scored
    and the values are exact. The record goes to ``capture.notes["kernelshap"]``:
    ``{"efficiency": {"sum", "expected", "gap", "relative_gap"}, "superpixels": M,
    "standard_errors": [M floats], "uncertain": [superpixels whose value is within two standard
    errors of 0], "passes", "stopped_by", "sampling"}`` (see :func:`plugins.gradients.note`).
    """

    name = "kernelshap"
    title = "KernelSHAP"
    description = "Shapley values of superpixels from kernel-weighted samples (sum to the change)."
    citation = (
        "Lundberg SM, Lee S-I. A Unified Approach to Interpreting Model Predictions. NeurIPS "
        "2017. arXiv:1705.07874. Covert I, Lee S-I. Improving KernelSHAP: Practical Shapley "
        "Value Estimation Using Linear Regression. AISTATS 2021"
    )
    needs = frozenset({"forward_fn"})
    signed = True
    units = "probability per superpixel"
    params = (
        Param("tolerance", "float", 0.03, range=(0.001, 1.0),
              help="stop when the largest standard error is below this share of the values' "
              "range"),
        Param("time_budget", "float", 0.0, range=(0.0, 3600.0),
              help="stop after this many seconds (0: no limit)"),
        *_common_params(samples_help="most perturbed inputs scored", advanced=True,
                        samples=4000),
        Param("sampling", "choice", "kernel", choices=SAMPLINGS, advanced=True,
              help="coalition sizes drawn by the Shapley kernel's mass or uniformly "
              "(leverage scores)"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (1, H, W) map}``; notes the efficiency check and the errors."""
        labels, warning = method_superpixels(capture, self.name, params)
        m = int(labels.max()) + 1
        rng = np.random.default_rng(int(params["seed"]))
        baseline = baseline_input(capture, params["baseline"], params["seed"])
        batch = int(params["batch_size"])
        budget = int(params["samples"])
        full = float(capture.reference_scores()[0])
        empty = float(score_samples(capture, target, np.zeros((1, m), bool), labels, baseline,
                                    batch, no_progress, cancel, self.title)[0])
        if 2**m - 2 <= budget:
            z, w = shapley_samples(m, budget, rng)
            y = score_samples(capture, target, z, labels, baseline, batch, progress, cancel,
                              self.title)
            phi = constrained_shapley(z, y, w, empty, full)
            errors, passes, stopped = np.zeros(m), len(z) + 1, "tolerance"
        else:
            seen: dict[bytes, float] = {}

            def score(rows: np.ndarray) -> np.ndarray:
                # Coalitions drawn again are not scored again.
                todo = np.array([r for r in {r.tobytes(): r for r in rows
                                             if r.tobytes() not in seen}.values()])
                if len(todo):
                    got = score_samples(capture, target, todo, labels, baseline, batch,
                                        no_progress, cancel, self.title)
                    seen.update(zip((r.tobytes() for r in todo), got.tolist(), strict=True))
                return np.array([seen[r.tobytes()] for r in rows]) - empty

            found = estimate_shapley(score, m, full - empty, rng, float(params["tolerance"]),
                                     budget, float(params["time_budget"]), params["sampling"],
                                     progress, cancel, self.title)
            phi, errors = found.values, found.standard_errors
            passes, stopped = len(seen) + 1, found.stopped_by
        notes = {"efficiency": completeness(float(phi.sum()), full - empty), "superpixels": m,
                 "standard_errors": errors.tolist(),
                 "uncertain": np.flatnonzero(np.abs(phi) < 2 * errors).tolist(),
                 "passes": passes, "stopped_by": stopped, "sampling": params["sampling"]}
        if warning:
            notes["warning"] = warning
        note(capture, self.name, [notes])
        return {INPUT_LAYER: _as_map(phi, labels, capture.input)}


EXPLAINERS = (LIME, KernelSHAP)
