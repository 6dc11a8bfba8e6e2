"""Gradient attributions of the input: saliency, input x gradient, Integrated Gradients, SmoothGrad.

All four differentiate the target's objective (its logit) with respect to the input, through the
capture's batched ``input_gradients``, and express the result in **pixel space**: the gradient
with respect to a [0, 1] pixel value is the gradient with respect to the normalised input divided
by the card's std, so a map means the same whatever the normalisation (and Integrated Gradients,
being invariant to that affine change, equals its normalised-space value).

Pixel attributions (N, C, *spatial) become one map per input:

- ``saliency`` takes the maximum over channels of the absolute gradient (Simonyan et al. 2014);
- the signed methods (``inputxgrad``, ``intgrad``, ``smoothgrad`` over them) sum over channels,
  which keeps completeness: the map of Integrated Gradients sums to the same total.

Every method here is batched: the audit hands it a whole batch and its gradients run as batches
of ``batch_size`` inputs (steps and noisy samples included), with progress and cancel between them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from engine.explain.api import INPUT_LAYER, Explainer, Param, no_progress
from plugins.baselines import baseline_input, baseline_param
from plugins.path_quadrature import START_PANELS, adaptive_path_integral

#: Inputs per forward/backward pass unless the user sets ``batch_size``; on CPU larger batches
#: run faster per input (measured on ResNet-18 at 224 px in bench/bench_attributions.py).
GRADIENT_BATCH = 32
#: Quadrature rules of Integrated Gradients: adaptive to a tolerance, or fixed steps.
INTEGRATION_METHODS = ("adaptive", "gausslegendre", "riemann_trapezoid")
#: What SmoothGrad aggregates over noisy samples (Smilkov et al.; Adebayo et al. 2018 for VarGrad).
SMOOTHGRAD_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")
#: Attributions SmoothGrad can smooth.
SMOOTHGRAD_BASES = ("saliency", "inputxgrad", "intgrad")


def batch_param(default: int = GRADIENT_BATCH, advanced: bool = False) -> Param:
    """Return the ``batch_size`` parameter of the gradient methods."""
    return Param("batch_size", "int", default, range=(1, 1024), advanced=advanced,
                 help="inputs per forward/backward pass")


def targets_of(target, n: int) -> torch.Tensor:
    """Return (n,) class indices from an int or the (n,) tensor a batched explainer gets."""
    idx = torch.as_tensor(target).reshape(-1).long().cpu()
    return idx.expand(n).clone() if idx.numel() == 1 else idx


def pixel_scale(capture) -> torch.Tensor:
    """Return d(normalised input)/d(pixel value) per channel: 1/std, shaped (1, C, 1, ...)."""
    return capture.from_pixels(1.0) - capture.from_pixels(0.0)


def note(capture, name: str, per_input: list[dict]) -> None:
    """Record what an explainer reports besides its maps, one dict per input of ``capture``.

    The notes go to ``capture.notes[name]``, a list aligned with the capture's inputs; the core
    collects them from the view it handed the explainer and ``result.json`` carries them with
    the maps (``intgrad`` notes its completeness gap, ``guidedbackprop`` its warning about
    functional ReLUs).
    """
    capture.notes[name] = per_input


def pixel_gradients(
    capture,
    count: int,
    make: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
    progress,
    cancel,
    message: str,
    hooks=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiate the objective at ``count`` inputs made on demand, batch by batch.

    Parameters
    ----------
    capture : Capture
        Its ``input_gradients`` does the passes.
    count : int
        Number of inputs.
    make : callable
        ``make(start, stop)`` returns the normalised inputs ``start:stop`` and their (n,) targets;
        inputs are built per batch so that steps x samples never sit in memory at once.
    batch_size : int
        Most inputs per pass; the batches are made equal in size.
    progress, cancel
        Reported and checked between batches.
    message : str
        Progress text.
    hooks : callable, optional
        Passed to ``input_gradients`` (Guided Backprop's ReLU hooks).

    Returns
    -------
    gradients : torch.Tensor
        (count, C, *spatial) gradients with respect to pixel values.
    values : torch.Tensor
        (count,) objective at each input.
    """
    grads, values = [], []
    # oneDNN runs convolutions (backward too) faster on channels-last CPU batches; a model that
    # reshapes its input with .view() cannot take them, and then gets ordinary ones.
    nhwc = capture.input.dim() == 4 and capture.input.device.type == "cpu"
    batch_size = math.ceil(count / math.ceil(count / batch_size))
    for start in range(0, count, batch_size):
        cancel.check()
        stop = min(count, start + batch_size)
        chunk, targets = make(start, stop)
        got = None
        if nhwc:
            try:
                got = capture.input_gradients(
                    chunk.contiguous(memory_format=torch.channels_last), targets,
                    batch_size=stop - start, cancel=cancel, hooks=hooks)
            except RuntimeError:
                nhwc = False
        if got is None:
            got = capture.input_gradients(chunk.contiguous(), targets, batch_size=stop - start,
                                          cancel=cancel, hooks=hooks)
        grads.append(got[0].contiguous())
        values.append(got[1])
        progress(stop / count, message)
    scale = pixel_scale(capture).to(grads[0])
    return torch.cat(grads, 0) * scale, torch.cat(values, 0)


def quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the points ``alpha`` in [0, 1] and weights of an integration rule.

    ``riemann_trapezoid`` is the trapezoidal rule on ``steps`` equally spaced points, both ends
    included (weights sum to 1); ``gausslegendre`` is Gauss-Legendre quadrature on [0, 1].
    """
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("the trapezoidal rule needs at least 2 steps")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return alphas, weights
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def integrated_gradients(
    capture,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    method: str,
    batch_size: int,
    progress,
    cancel,
    hooks=None,
) -> torch.Tensor:
    """Integrated Gradients of each input along the straight path from its baseline.

    ``attr = (p - p') * sum_j w_j df/dp(p' + alpha_j (p - p'))`` in pixel space (Sundararajan et
    al., eq. 1, with the rule of :func:`quadrature`).

    Parameters
    ----------
    capture : Capture
        Does the gradient passes.
    inputs, baselines : torch.Tensor
        (M, C, *spatial) normalised inputs and their baselines.
    targets : torch.Tensor
        (M,) class per input.
    steps, method
        The integration rule.
    batch_size, progress, cancel, hooks
        See :func:`pixel_gradients`.

    Returns
    -------
    torch.Tensor
        (M, C, *spatial) attributions in pixel space.
    """
    alphas, weights = quadrature(steps, method)
    points = len(alphas)
    alpha_t = torch.as_tensor(alphas, dtype=inputs.dtype, device=inputs.device)
    weight_t = torch.as_tensor(weights, dtype=inputs.dtype)
    delta = inputs - baselines

    def make(start, stop):
        flat = torch.arange(start, stop)
        row, j = flat // points, flat % points
        shape = (-1,) + (1,) * (inputs.dim() - 1)
        return baselines[row] + alpha_t[j].view(shape) * delta[row], targets[row]

    grads, _ = pixel_gradients(capture, len(inputs) * points, make, batch_size, progress,
                               cancel, "Integrated Gradients", hooks)
    grads = grads.view(len(inputs), points, *inputs.shape[1:])
    shape = (1, points) + (1,) * (inputs.dim() - 1)
    summed = (grads * weight_t.to(grads).view(shape)).sum(1)
    pixel_delta = capture.to_pixels(inputs) - capture.to_pixels(baselines)
    return pixel_delta.to(summed) * summed


def adaptive_integrated_gradients(capture, inputs, baselines, targets, params, progress,
                                  cancel, hooks=None) -> tuple[torch.Tensor, list]:
    """Integrated Gradients of each input to the tolerance of ``params`` (adaptive rule).

    Each input gets its own mesh (see :mod:`plugins.path_quadrature`), so a map does not depend
    on the batch it came in. ``params`` gives ``tolerance``, ``max_steps``, ``time_budget``
    and ``batch_size``.

    Returns
    -------
    attributions : torch.Tensor
        (M, C, *spatial) in pixel space.
    records : list of PathRecord
        One per input.
    """
    pixel_delta = capture.to_pixels(inputs) - capture.to_pixels(baselines)
    endpoint = capture.objective(capture.logits, targets).float().cpu() \
        if inputs is capture.input else None
    batch_size = int(params["batch_size"])
    out, records = [], []
    share = 1.0 / len(inputs)
    for i in range(len(inputs)):
        target = targets[i : i + 1]

        def gradients(points, target=target):
            return pixel_gradients(capture, len(points),
                                   lambda a, b: (points[a:b], target.expand(b - a)),
                                   batch_size, no_progress, cancel, "", hooks)

        value = float(endpoint[i]) if endpoint is not None else \
            float(gradients(inputs[i : i + 1])[1][0])
        attr, record = adaptive_path_integral(
            gradients, inputs[i], baselines[i], pixel_delta[i], value,
            float(params["tolerance"]), int(params["max_steps"]), float(params["time_budget"]),
            batch_size, lambda f, m, i=i: progress((i + min(f, 1.0)) * share, m), cancel)
        out.append(attr)
        records.append(record)
    return torch.stack(out), records


def input_pixel_gradients(capture, targets: torch.Tensor, params, progress, cancel, message: str,
                          hooks=None) -> torch.Tensor:
    """Gradients of the target logits at the capture's own inputs, batch by batch.

    Parameters
    ----------
    capture : Capture
        The inputs (``capture.input``) and the passes that differentiate them.
    targets : torch.Tensor
        (N,) class index per input.
    params : dict
        The method's parameters; ``batch_size`` is the most inputs per pass.
    progress, cancel, message, hooks
        As for :func:`pixel_gradients`.

    Returns
    -------
    torch.Tensor
        (N, C, *spatial) gradients with respect to pixel values.
    """
    x = capture.input
    grads, _ = pixel_gradients(capture, len(x), lambda a, b: (x[a:b], targets[a:b]),
                               int(params["batch_size"]), progress, cancel, message, hooks)
    return grads

def channel_sum(attributions: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N, *spatial): the reduction of the signed methods."""
    return attributions.sum(1)


def channel_max_abs(attributions: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N, *spatial): saliency's reduction (Simonyan et al.)."""
    return attributions.abs().amax(1)


class Saliency(Explainer):
    """Vanilla gradient saliency (Simonyan et al. 2014, section 3.1).

    ``map = max_c |df/dp_c|``: the magnitude of the target logit's gradient with respect to each
    pixel value, its largest over the channels, as the paper does for colour images.
    """

    name = "saliency"
    title = "Saliency (gradient)"
    description = "Largest absolute gradient of the target logit over the channels of each pixel."
    citation = (
        "Simonyan K, Vedaldi A, Zisserman A. Deep Inside Convolutional Networks: Visualising "
        "Image Classification Models and Saliency Maps. ICLR Workshop 2014. arXiv:1312.6034"
    )
    needs = frozenset({"input_gradients"})
    batched = True
    units = "logit per pixel value"
    params = (batch_param(),)

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (N, *spatial)}`` in model-input geometry."""
        grads = input_pixel_gradients(capture, targets_of(target, len(capture.input)), params,
                                      progress, cancel, self.title)
        return {INPUT_LAYER: channel_max_abs(grads)}


class InputXGradient(Explainer):
    """Input x gradient (Shrikumar et al. 2016; Ancona et al. 2018).

    ``map = sum_c p_c df/dp_c`` with ``p`` the [0, 1] pixel values: each pixel's first-order
    contribution to the logit against a black image. It equals Integrated Gradients from black
    for a linear model.
    """

    name = "inputxgrad"
    title = "Input x gradient"
    description = "Pixel values times the target logit's gradient, summed over channels (signed)."
    citation = (
        "Shrikumar A, Greenside P, Shcherbina A, Kundaje A. Not Just a Black Box: Learning "
        "Important Features Through Propagating Activation Differences. arXiv:1605.01713, 2016"
    )
    needs = frozenset({"input_gradients"})
    batched = True
    signed = True
    units = "logit"
    params = (batch_param(),)

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (N, *spatial)}`` in model-input geometry."""
        x = capture.input
        grads = input_pixel_gradients(capture, targets_of(target, len(x)), params, progress,
                                      cancel, self.title)
        return {INPUT_LAYER: channel_sum(capture.to_pixels(x).to(grads) * grads)}


class IntegratedGradients(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017, eq. 1).

    The gradient of the target logit is averaged along the straight path from a baseline ``p'``
    to the image ``p`` and multiplied by ``p - p'``, in pixel space. ``steps`` points of the
    chosen rule run in batches. Completeness (the paper's axiom) says the attributions sum to
    ``f(p) - f(p')``; the gap is recorded for every input in ``capture.notes["intgrad"]``
    as ``{"completeness": {"sum", "expected", "gap", "relative_gap"}}`` (see :func:`note`).
    """

    name = "intgrad"
    title = "Integrated Gradients"
    description = "Path-averaged gradients from a baseline to the image, times the change."
    citation = (
        "Sundararajan M, Taly A, Yan Q. Axiomatic Attribution for Deep Networks. ICML 2017. "
        "arXiv:1703.01365"
    )
    needs = frozenset({"input_gradients"})
    batched = True
    signed = True
    units = "logit"
    params = (
        Param("tolerance", "float", 0.01, range=(0.0001, 0.5),
              help="adaptive rule: stop when the completeness gap is below this share of "
              "f(image) - f(baseline)"),
        Param("time_budget", "float", 0.0, range=(0.0, 3600.0),
              help="adaptive rule: stop after this many seconds per image (0: no limit)"),
        baseline_param(),
        Param("seed", "int", 0, range=(0, 2**31 - 1), help="seed of the uniform baseline"),
        Param("method", "choice", "adaptive", choices=INTEGRATION_METHODS, advanced=True,
              help="integration rule along the path: adaptive to the tolerance, or fixed steps"),
        Param("steps", "int", 50, range=(2, 4096), advanced=True,
              help="points on the path of the fixed rules"),
        Param("max_steps", "int", 512, range=(START_PANELS + 1, 8192), advanced=True,
              help="adaptive rule: most points on the path (passes) per image"),
        batch_param(advanced=True),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (N, *spatial)}`` and note the completeness gap of each input."""
        x = capture.input
        targets = targets_of(target, len(x))
        baselines = baseline_input(capture, params["baseline"], params["seed"])
        endpoint = capture.objective(capture.logits, targets).float().cpu()
        if params["method"] == "adaptive":
            attr, records = adaptive_integrated_gradients(
                capture, x, baselines, targets, params, progress, cancel)
            base_values = torch.tensor([r.baseline_value for r in records])
        else:
            attr = integrated_gradients(capture, x, baselines, targets, int(params["steps"]),
                                        params["method"], int(params["batch_size"]), progress,
                                        cancel)
            # f at the baseline, by the same objective the gradients differentiate.
            _, base_values = capture.input_gradients(baselines, targets, len(baselines),
                                                     cancel=cancel)
            records = [None] * len(x)
        totals = attr.flatten(1).sum(1).cpu()
        expected = endpoint - base_values.float().cpu()
        entries = []
        for t, e, record in zip(totals.tolist(), expected.tolist(), records, strict=True):
            entry = {"completeness": completeness(float(t), float(e))}
            entry["quadrature"] = record.as_dict() if record is not None else {
                "rule": params["method"], "passes": int(params["steps"])}
            entries.append(entry)
        note(capture, self.name, entries)
        return {INPUT_LAYER: channel_sum(attr)}


def completeness(total: float, expected: float) -> dict:
    """Return the completeness record: attribution sum, ``f(x) - f(x')``, their gap."""
    gap = total - expected
    return {"sum": total, "expected": expected, "gap": gap,
            "relative_gap": abs(gap) / abs(expected) if expected != 0 else None}


class SmoothGrad(Explainer):
    """SmoothGrad (Smilkov et al. 2017) over a base attribution.

    ``samples`` copies of the image get Gaussian noise of standard deviation ``noise`` times the
    image's pixel range (seeded); the base method runs on each, per channel, and the results are
    aggregated per ``kind``: ``smoothgrad`` their mean, ``smoothgrad_sq`` the mean of their
    squares, ``vargrad`` their variance (Adebayo et al. 2018). The channels are then reduced as
    the base method does (maximum for ``saliency``, sum otherwise). ``intgrad`` as base runs
    ``steps`` Gauss-Legendre points from ``baseline`` to each noisy copy.
    """

    name = "smoothgrad"
    title = "SmoothGrad"
    description = "A gradient attribution averaged over noisy copies of the image."
    citation = (
        "Smilkov D, Thorat N, Kim B, Viegas F, Wattenberg M. SmoothGrad: removing noise by "
        "adding noise. arXiv:1706.03825, 2017"
    )
    needs = frozenset({"input_gradients"})
    batched = True
    signed = True
    units = "base method's units (squared for smoothgrad_sq and vargrad)"
    params = (
        Param("base", "choice", "saliency", choices=SMOOTHGRAD_BASES,
              help="attribution averaged over the noisy copies"),
        Param("kind", "choice", "smoothgrad", choices=SMOOTHGRAD_KINDS,
              help="mean, mean of squares, or variance over the noisy copies"),
        Param("samples", "int", 25, range=(1, 10000), help="noisy copies of the image"),
        Param("noise", "float", 0.15, range=(0.0, 10.0),
              help="noise standard deviation as a share of the image's pixel range"),
        Param("seed", "int", 0, range=(0, 2**31 - 1), help="seed of the noise"),
        Param("steps", "int", 20, range=(2, 4096), help="path points when the base is intgrad"),
        baseline_param(),
        batch_param(),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return ``{"input": (N, *spatial)}`` in model-input geometry."""
        x = capture.input
        n, samples = len(x), int(params["samples"])
        targets = targets_of(target, n).repeat_interleave(samples)
        pixels = capture.to_pixels(x)
        span = (pixels.flatten(1).amax(1) - pixels.flatten(1).amin(1)).cpu()
        sigma = float(params["noise"]) * span.repeat_interleave(samples)
        gen = torch.Generator().manual_seed(int(params["seed"]))
        # Drawn in one call, in pixel space, the same draws for every input of a batch (so a
        # map does not depend on its batch), input-major: the layout NoiseTunnel uses.
        noise = torch.randn((samples, *x.shape[1:]), generator=gen, dtype=x.dtype)
        noise = noise.repeat(n, *([1] * (x.dim() - 1)))
        noise = noise * sigma.to(noise).view(-1, *([1] * (x.dim() - 1)))
        noisy = x.repeat_interleave(samples, 0) + noise.to(x.device) * pixel_scale(capture)
        attr = self._base(capture, noisy, targets, params, progress, cancel)
        attr = attr.view(n, samples, *attr.shape[1:])
        mean = attr.mean(1)
        if params["kind"] == "smoothgrad":
            agg = mean
        else:
            agg = (attr**2).mean(1)
            if params["kind"] == "vargrad":
                agg = agg - mean**2
        reduce = channel_max_abs if params["base"] == "saliency" else channel_sum
        return {INPUT_LAYER: reduce(agg)}

    def _base(self, capture, noisy, targets, params, progress, cancel):
        """The base attribution per noisy input, per channel, in pixel space."""
        batch_size = int(params["batch_size"])
        if params["base"] == "intgrad":
            baselines = baseline_input(capture, params["baseline"], params["seed"], noisy)
            return integrated_gradients(capture, noisy, baselines, targets,
                                        int(params["steps"]), "gausslegendre", batch_size,
                                        progress, cancel)
        grads, _ = pixel_gradients(capture, len(noisy),
                                   lambda a, b: (noisy[a:b], targets[a:b]), batch_size,
                                   progress, cancel, self.title)
        if params["base"] == "saliency":
            return grads.abs()
        return capture.to_pixels(noisy).to(grads) * grads


EXPLAINERS = (Saliency, InputXGradient, IntegratedGradients, SmoothGrad)
