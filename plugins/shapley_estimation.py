"""Shapley values by paired sampling and regression, with standard errors and a stopping rule.

KernelSHAP (Lundberg and Lee 2017) writes the Shapley values of ``m`` players as the solution of
a weighted least-squares problem over all coalitions ``z``, with the Shapley kernel
``mu(z) = (m - 1) / (C(m, |z|) |z| (m - |z|))`` and the constraint ``sum(phi) = v(1) - v(0)``:

    ``phi = A^-1 (b - 1 lambda)``, ``A = E[z z^T]``, ``b = E[z (v(z) - v(0))]``,

the expectations under ``mu``, and ``lambda`` what makes the constraint hold. Covert and Lee
(2021, "Improving KernelSHAP") estimate ``A`` and ``b`` by sampling, show that drawing each
coalition with its complement (**paired sampling**) removes most of the variance, and that the
estimator's uncertainty follows from the central limit theorem on the per-pair terms. Here the
pair terms ``A_k``, ``b_k`` are averaged, ``phi`` solves the constrained problem on the averages,
and its covariance comes from the delta method: with ``P = A^-1 - A^-1 1 1^T A^-1 / 1^T A^-1 1``
and the residual terms ``u_k = b_k - A_k phi``,

    ``Cov(phi) ~ P Cov(u) P / n``.

An additive game has ``u_k = 0`` for every pair: its values come out exact, with zero error.

Two proposals are offered. ``kernel`` draws a coalition size with the kernel's mass,
``(m - 1) / (s (m - s))`` up to a constant; ``leverage`` draws the size uniformly, which is
sampling by the leverage scores of the regression (Musco and Witter 2024, "Provably Accurate
Shapley Value Estimation via Leverage Score Sampling"), and importance-weights each pair by
``mu / q``. The benchmark (``bench/bench_estimators.py``) measures which needs fewer passes.

This module holds no explainer: it estimates from any ``score(coalitions) -> values``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

#: How coalitions are drawn.
SAMPLINGS = ("kernel", "leverage")
#: Pairs drawn per round between checks of the standard errors.
ROUND_PAIRS = 32
#: z for a 95 % two-sided interval (what "covers the truth" is tested at).
Z95 = 1.959963984540054


@dataclass
class ShapleyEstimate:
    """Estimated Shapley values and how far they can be trusted.

    Attributes
    ----------
    values : np.ndarray
        (m,) Shapley values; they sum to ``v(1) - v(0)`` exactly.
    standard_errors : np.ndarray
        (m,) standard error of each value (0 where the game is additive in that player).
    passes : int
        Coalitions scored (the empty one included; repeats are scored once).
    pairs : int
        Pairs drawn.
    stopped_by : str
        ``tolerance``, ``passes`` or ``time``.
    curve : list of (int, np.ndarray)
        Passes and values after each round (for benchmarks).
    """

    values: np.ndarray
    standard_errors: np.ndarray
    passes: int
    pairs: int
    stopped_by: str
    curve: list

    def relative_error(self) -> float:
        """Largest standard error over the range of the values (Covert and Lee's criterion)."""
        spread = float(self.values.max() - self.values.min()) if len(self.values) else 0.0
        top = float(self.standard_errors.max()) if len(self.values) else 0.0
        return top / spread if spread > 0 else 0.0 if top == 0 else float("inf")


def size_proposal(m: int, sampling: str) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the coalition sizes ``1..m-1`` and each size's importance weight.

    Returns
    -------
    q : np.ndarray
        (m - 1,) probability of drawing a coalition of size ``s`` (then uniform among them).
    ratio : np.ndarray
        (m - 1,) ``mu / q`` for a coalition of size ``s``, up to a constant factor.
    """
    sizes = np.arange(1, m)
    kernel = (m - 1) / (sizes * (m - sizes))
    kernel = kernel / kernel.sum()
    if sampling == "kernel":
        return kernel, np.ones(m - 1)
    if sampling == "leverage":
        uniform = np.full(m - 1, 1.0 / (m - 1))
        return uniform, kernel / uniform
    raise ValueError(f"unknown sampling {sampling!r}")


def draw_pairs(m: int, count: int, rng: np.random.Generator,
               sampling: str = "kernel") -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` coalitions (each stands for itself and its complement).

    Returns
    -------
    z : np.ndarray
        (count, m) bool, neither empty nor full.
    ratio : np.ndarray
        (count,) importance weight of each pair.
    """
    q, ratio = size_proposal(m, sampling)
    sizes = 1 + rng.choice(m - 1, size=count, p=q)
    keys = rng.random((count, m))
    # The s players with the smallest keys: a uniform coalition of size s.
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    z = ranks < sizes[:, None]
    return z, ratio[sizes - 1]


def pair_terms(z: np.ndarray, ratio: np.ndarray, y: np.ndarray, y_complement: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair ``A_k`` (k, m, m) and ``b_k`` (k, m) from values relative to the empty one."""
    zf = z.astype(np.float64)
    zc = 1.0 - zf
    a = 0.5 * ratio[:, None, None] * (zf[:, :, None] * zf[:, None, :]
                                      + zc[:, :, None] * zc[:, None, :])
    b = 0.5 * ratio[:, None] * (zf * y[:, None] + zc * y_complement[:, None])
    return a, b


def solve_constrained(a: np.ndarray, b: np.ndarray, total: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``phi`` minimising ``phi A phi - 2 b phi`` with ``sum(phi) = total``, and the map ``P``.

    ``P`` is how ``phi`` moves with ``b - A phi`` (the delta method's Jacobian).
    """
    inverse = np.linalg.pinv(a)
    ones = np.ones(len(b))
    ia1 = inverse @ ones
    projector = inverse - np.outer(ia1, ia1) / (ones @ ia1)
    phi = projector @ b + ia1 * total / (ones @ ia1)
    return phi, projector


def estimate_shapley(
    score,
    m: int,
    total: float,
    rng: np.random.Generator,
    tolerance: float,
    max_passes: int,
    time_budget: float = 0.0,
    sampling: str = "kernel",
    progress=None,
    cancel=None,
    message: str = "KernelSHAP",
) -> ShapleyEstimate:
    """Estimate Shapley values by paired sampling until their standard errors are small.

    Parameters
    ----------
    score : callable
        ``score(z) -> (k,) values minus v(empty)`` for (k, m) bool coalitions.
    m : int
        Players (at least 2).
    total : float
        ``v(full) - v(empty)``, which the values sum to.
    rng : np.random.Generator
        Seeded.
    tolerance : float
        Stop when the largest standard error is at most this share of the values' range.
    max_passes : int
        Most coalitions scored (two per pair).
    time_budget : float
        Seconds; 0 for no limit.
    sampling : str
        One of :data:`SAMPLINGS`.
    progress, cancel
        ``progress(fraction, message)`` as passes against the passes estimated (the standard
        error falls as ``1 / sqrt(pairs)``); ``cancel.check()`` between rounds.

    Returns
    -------
    ShapleyEstimate
    """
    start = time.perf_counter()
    terms_a = np.zeros((0, m, m))
    terms_b = np.zeros((0, m))
    curve = []
    passes, pairs = 1, 0  # the empty coalition, scored by the caller
    first = max(ROUND_PAIRS, m)
    stopped = "tolerance"
    while True:
        if cancel is not None:
            cancel.check()
        count = min(first if pairs == 0 else ROUND_PAIRS, max(1, (max_passes - passes) // 2))
        z, ratio = draw_pairs(m, count, rng, sampling)
        values = score(np.concatenate([z, ~z]))
        a, b = pair_terms(z, ratio, values[:count], values[count:])
        terms_a = np.concatenate([terms_a, a])
        terms_b = np.concatenate([terms_b, b])
        pairs += count
        passes += 2 * count
        phi, projector = solve_constrained(terms_a.mean(0), terms_b.mean(0), total)
        residual = terms_b - terms_a @ phi
        cov = np.cov(residual, rowvar=False) if pairs > 1 else np.zeros((m, m))
        errors = np.sqrt(np.clip(np.diag(projector @ cov @ projector.T) / pairs, 0.0, None))
        result = ShapleyEstimate(phi, errors, passes, pairs, stopped, curve)
        curve.append((passes, phi))
        ratio_now = result.relative_error()
        needed = passes if ratio_now <= tolerance else min(
            max_passes, int(passes * (ratio_now / tolerance) ** 2) + 1)
        if progress is not None:
            progress(passes / max(needed, 1), f"{message}: {passes} of ~{needed} passes")
        if ratio_now <= tolerance and pairs >= first:
            break
        if passes + 2 > max_passes:
            result.stopped_by = "passes"
            break
        if time_budget > 0 and time.perf_counter() - start >= time_budget:
            result.stopped_by = "time"
            break
    return result
