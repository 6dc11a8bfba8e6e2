"""Adaptive quadrature of path attributions, stopped by the completeness gap it measures.

Integrated Gradients (and any attribution that integrates the gradient along a straight path
from a baseline ``x'`` to ``x``) is the integral over ``alpha`` in [0, 1] of the gradient at
``x' + alpha (x - x')``, times ``x - x'``. Its scalar part, the directional derivative
``g(alpha) = grad f . (x - x')``, integrates to a number that is known exactly on every piece of
the path: ``f(x' + b (x - x')) - f(x' + a (x - x'))``. Every gradient pass returns ``f`` at its
point too, so the quadrature error of each panel ``[a, b]`` of a mesh that includes its ends is
known **exactly** (for the scalar integral), at no extra pass:

    ``e = (b - a) (g(a) + g(b)) / 2 - (f(b) - f(a))``.

The rule here is the composite trapezoid on an adaptive mesh: start from
:data:`START_PANELS` equal panels, then split the panels whose ``|e|`` is largest,
:data:`ROUND_POINTS` midpoints per round. ``sum e`` over the panels *is* the completeness gap
of the attributions on the current mesh, and ``sum |e|`` bounds it whatever cancels. The rule
stops when the gap is within the tolerance times ``|f(x) - f(x')|`` for :data:`STABLE_ROUNDS`
rounds in a row (or the bound is), or when the pass budget or the time budget is spent. On
networks made of ReLUs and max-pooling, ``f`` is piecewise linear along the path and ``g`` piecewise
constant: a panel without a kink has ``e = 0`` exactly and is never split, so the passes go to
where the integrand changes (the idea of non-uniform interpolation, arXiv:2302.11107, driven
here by a measured error rather than a heuristic).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

#: Equal panels of the first mesh (START_PANELS + 1 passes, both ends included).
START_PANELS = 8
#: Midpoints added per round of refinement. Fixed, not the batch size, so that the mesh (and the
#: map) does not depend on how the passes are batched.
ROUND_POINTS = 16
#: Rounds in a row whose completeness gap must be within the tolerance: the gap is a sum of
#: signed panel errors, and one round's may cancel by chance (measured: it swings by 10x from
#: one round to the next on ReLU networks).
STABLE_ROUNDS = 2
#: Why the refinement stopped.
STOPS = ("tolerance", "passes", "time")


@dataclass
class PathRecord:
    """What the adaptive rule did for one input; goes to the map's notes.

    Attributes
    ----------
    passes : int
        Gradient passes (points on the path) used.
    error_estimate : float
        ``sum |e|`` over the final panels relative to ``|f(x) - f(x')|`` (0 when that is 0):
        a bound of the relative completeness gap that no cancellation between panels hides.
    tolerance : float
        The relative error asked for.
    stopped_by : str
        One of :data:`STOPS`.
    baseline_value : float
        ``f(x')``, from the pass at ``alpha = 0``.
    curve : list of (int, float)
        Passes and relative completeness gap after each round (for benchmarks and plots).
    """

    passes: int
    error_estimate: float
    tolerance: float
    stopped_by: str
    baseline_value: float
    curve: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """The record as JSON-ready data."""
        return {"rule": "adaptive", "passes": self.passes,
                "error_estimate": self.error_estimate, "tolerance": self.tolerance,
                "stopped_by": self.stopped_by}


def passes_needed(history: list[tuple[int, float]], goal: float, budget: int) -> int:
    """Estimate the passes the rule will need, from how its error fell so far.

    The error is taken to fall as ``passes ** -p``, with ``p`` fitted to the last two rounds
    (kept within 0.5..3; 1 before there are two rounds). Used only for the progress bar.

    Parameters
    ----------
    history : list of (int, float)
        (passes, error) after each round.
    goal : float
        The error to reach.
    budget : int
        Most passes allowed.
    """
    passes, error = history[-1]
    if error <= goal:
        return passes
    rate = 1.0
    if len(history) > 1:
        (n0, e0), (n1, e1) = history[-2], history[-1]
        if n1 > n0 and e0 > 0 and e1 > 0:
            rate = min(3.0, max(0.5, math.log(e0 / e1) / math.log(n1 / n0)))
    if goal <= 0:
        return budget
    return int(min(budget, max(passes + 1, math.ceil(passes * (error / goal) ** (1 / rate)))))


def adaptive_path_integral(
    gradients,
    x: torch.Tensor,
    baseline: torch.Tensor,
    pixel_delta: torch.Tensor,
    endpoint_value: float,
    tolerance: float,
    max_passes: int,
    time_budget: float,
    batch_size: int,
    progress,
    cancel,
    message: str = "Integrated Gradients",
) -> tuple[torch.Tensor, PathRecord]:
    """Integrate the pixel gradient along the path from ``baseline`` to ``x`` to a tolerance.

    Parameters
    ----------
    gradients : callable
        ``gradients(points) -> (grads, values)``: for (k, C, *spatial) normalised inputs, their
        (k, C, *spatial) gradients with respect to pixel values and (k,) objective values.
    x, baseline : torch.Tensor
        (C, *spatial) normalised input and baseline.
    pixel_delta : torch.Tensor
        (C, *spatial) ``x - x'`` in pixel values (what multiplies the averaged gradient).
    endpoint_value : float
        ``f(x)``; ``f(x')`` comes from the pass at ``alpha = 0``.
    tolerance : float
        Relative error of the completeness gap to stop at.
    max_passes : int
        Most gradient passes (at least ``START_PANELS + 1``).
    time_budget : float
        Seconds; 0 for no limit.
    batch_size : int
        Most points per gradient pass.
    progress, cancel
        ``progress(fraction, message)`` as passes against the passes estimated, and the cancel
        token, checked between rounds.
    message : str
        Progress text.

    Returns
    -------
    attributions : torch.Tensor
        (C, *spatial) attributions in pixel space.
    record : PathRecord
    """
    start_time = time.perf_counter()
    max_passes = max(int(max_passes), START_PANELS + 1)
    delta = x - baseline
    alphas = [i / START_PANELS for i in range(START_PANELS + 1)]
    # Per node (by alpha): pixel gradient, value f, directional derivative g.
    grads: dict[float, torch.Tensor] = {}
    value: dict[float, float] = {}
    slope: dict[float, float] = {}

    def evaluate(points: list[float]) -> None:
        for lo in range(0, len(points), batch_size):
            cancel.check()
            chunk = points[lo : lo + batch_size]
            alpha_t = torch.tensor(chunk, dtype=x.dtype, device=x.device)
            shape = (-1,) + (1,) * x.dim()
            got, values = gradients(baseline[None] + alpha_t.view(shape) * delta[None])
            directional = (got * pixel_delta[None].to(got)).flatten(1).sum(1)
            for a, grad, v, g in zip(chunk, got, values.tolist(), directional.tolist(),
                                     strict=True):
                grads[a], value[a], slope[a] = grad, float(v), float(g)

    evaluate(alphas)
    scale = abs(endpoint_value - value[0.0])
    goal = tolerance * scale
    history: list[tuple[int, float]] = []
    gaps: list[float] = []
    stopped = "tolerance"
    while True:
        nodes = sorted(grads)
        errors = [((b - a) * (slope[a] + slope[b]) / 2 - (value[b] - value[a]), a, b)
                  for a, b in zip(nodes[:-1], nodes[1:], strict=True)]
        total = sum(abs(e) for e, _, _ in errors)
        # The completeness gap of the attributions on this mesh, exactly: sum of panel errors.
        gaps.append(abs(sum(e for e, _, _ in errors)))
        history.append((len(nodes), total))
        estimate = passes_needed(history, goal, max_passes)
        progress(len(nodes) / max(estimate, 1),
                 f"{message}: {len(nodes)} of ~{estimate} passes")
        if total <= goal or (len(gaps) >= STABLE_ROUNDS
                             and max(gaps[-STABLE_ROUNDS:]) <= goal):
            break
        if len(nodes) >= max_passes:
            stopped = "passes"
            break
        if time_budget > 0 and time.perf_counter() - start_time >= time_budget:
            stopped = "time"
            break
        room = min(ROUND_POINTS, max_passes - len(nodes))
        # The panels with the largest error first; a panel too narrow to split is left.
        worst = sorted((e for e in errors if abs(e[0]) > 0), key=lambda e: -abs(e[0]))
        mids = [(a + b) / 2 for _, a, b in worst if a < (a + b) / 2 < b][:room]
        if not mids:
            break
        evaluate(mids)
    nodes = sorted(grads)
    total_grad = torch.zeros_like(grads[0.0])
    for a, b in zip(nodes[:-1], nodes[1:], strict=True):
        total_grad += (b - a) / 2 * (grads[a] + grads[b])
    record = PathRecord(passes=len(nodes),
                        error_estimate=history[-1][1] / scale if scale > 0 else 0.0,
                        tolerance=float(tolerance), stopped_by=stopped,
                        baseline_value=value[0.0],
                        curve=[(n, g / scale if scale > 0 else 0.0)
                               for (n, _), g in zip(history, gaps, strict=True)])
    return pixel_delta.to(total_grad) * total_grad, record
