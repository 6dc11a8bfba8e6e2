"""Robustness of an explanation: does the map hold still when the input barely changes?

Two families of estimate, both on seeded input perturbations in pixel space ([0, 1]) and both
batched through the explain core (:func:`batch_explainer`):

- Max- and Avg-Sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of
  Explanations", NeurIPS): inputs are drawn uniformly from the L-infinity ball of radius ``r``
  around the image, and the change of the map is measured relative to the map itself,
  ``||Phi(y) - Phi(x)||_F / ||Phi(x)||_F`` (Quantus's default normalisation); the largest and the
  mean over the draws.
- A local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018, "On the Robustness of
  Interpretability Methods", ICML WHI): the largest ``||Phi(x) - Phi(y)||_2 / ||x - y||_2`` over
  Gaussian perturbations, with each map scaled by its largest magnitude so that methods in
  different units compare.

A constant map, or a map that does not depend on the input (a linear model's gradient), scores 0
on all three; smaller is more stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from engine.core.cancel import CancelToken
from engine.core.errors import ExplainerUnavailable, UsageError

#: ``explain_batch(pixels (N, C, H, W) in [0, 1]) -> maps (N, h, w)``.
ExplainBatch = Callable[[torch.Tensor], np.ndarray]

#: Default half-width of the uniform ball (pixel values in [0, 1]) for the sensitivities.
RADIUS = 0.02
#: Default standard deviation of the Gaussian noise of the Lipschitz estimate.
NOISE_STD = 0.02
#: Default number of perturbed inputs per estimate.
SAMPLES = 8


def batch_explainer(model: Any, method: str, layer: str, x: torch.Tensor, target: Any,
                    params: dict | None = None, cancel: CancelToken | None = None,
                    image_shape: tuple[int, ...] | None = None,
                    batch_size: int = 16) -> ExplainBatch:
    """Return ``explain_batch(pixels) -> (N, h, w)`` that explains a batch through the core.

    Parameters
    ----------
    model : LoadedModel
        The model.
    method, layer : str
        Which map (``"input"`` for model-agnostic methods).
    x : torch.Tensor
        ``(1, C, H, W)`` preprocessed input of the case (fixes the normalisation).
    target : Target or int
        What is explained, for every input of the batch.
    params : dict, optional
        The explainer's parameters.
    cancel : CancelToken, optional
        Checked between batches and passed to the explainer.
    image_shape : tuple of int, optional
        ``(rows, cols)`` of the image, for a region target.
    batch_size : int
        Inputs per capture.

    Returns
    -------
    callable
        Takes ``(N, C, H, W)`` pixel values in [0, 1]; returns the raw maps as float32 numpy.

    Raises
    ------
    ExplainerUnavailable
        When the explainer makes no map for an input (its one-line reason).
    """
    from engine.explain import core
    from engine.explain.api import INPUT_LAYER, is_layer_based

    the_plan = core.plan(model, [method], [layer] if layer != INPUT_LAYER else "auto",
                         {method: params or {}})
    if not is_layer_based(the_plan.explainers[0]):
        the_plan.layers = []
    scorer = core.capture(model, x, target, core.Plan([], {}, [], False), image_shape)

    def explain(pixels: torch.Tensor) -> np.ndarray:
        out = []
        for chunk in torch.as_tensor(pixels, dtype=torch.float32).split(batch_size):
            if cancel is not None:
                cancel.check()
            cap = core.capture(model, scorer.from_pixels(chunk.to(x.device)), target, the_plan,
                               image_shape)
            got = core.explain(cap, the_plan, cancel=cancel)
            for maps, errors in zip(got.maps, got.errors, strict=True):
                if errors:
                    raise ExplainerUnavailable(next(iter(errors.values())))
                key = (method, layer if (method, layer) in maps else INPUT_LAYER)
                if key not in maps:
                    raise ExplainerUnavailable(f"{method}: no map for {layer}")
                out.append(maps[key].numpy().astype(np.float32))
        return np.stack(out)

    return explain


def input_perturbations(x: torch.Tensor, kind: str, scale: float, samples: int,
                        seed: int = 0) -> torch.Tensor:
    """Seeded perturbed copies of a pixel-space image, clipped to [0, 1].

    Parameters
    ----------
    x : torch.Tensor
        ``(1, C, H, W)`` or ``(C, H, W)`` image in [0, 1].
    kind : {"uniform", "gaussian"}
        Uniform noise in ``[-scale, scale]`` (Yeh et al.'s ball) or Gaussian noise of std
        ``scale`` (Alvarez-Melis & Jaakkola).
    scale : float
        Radius or standard deviation, in pixel values.
    samples : int
        How many copies.
    seed : int
        Seed of the noise: the same seed gives the same copies.

    Returns
    -------
    torch.Tensor
        ``(samples, C, H, W)``.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    x = x[None] if x.dim() == 3 else x
    if samples < 1:
        raise UsageError("samples must be at least 1")
    g = torch.Generator().manual_seed(seed)
    shape = (samples, *x.shape[1:])
    if kind == "uniform":
        noise = (torch.rand(shape, generator=g) * 2 - 1) * scale
    elif kind == "gaussian":
        noise = torch.randn(shape, generator=g) * scale
    else:
        raise UsageError(f"unknown perturbation {kind!r}", fix="use uniform or gaussian")
    return (x.cpu() + noise).clamp(0.0, 1.0)


def _flat(maps: np.ndarray, n: int) -> np.ndarray:
    return np.nan_to_num(np.asarray(maps, dtype=np.float64), nan=0.0).reshape(n, -1)


def sensitivity_from_maps(reference, perturbed_maps) -> tuple[float, float]:
    """Max- and Avg-Sensitivity of ``reference`` given its maps on the perturbed inputs.

    ``||Phi(y_j) - Phi(x)||_F / ||Phi(x)||_F``, its largest and its mean over ``j``; 0 for an
    all-zero reference map that stays all zero.
    """
    ref = _flat(reference, 1)
    maps = _flat(perturbed_maps, len(perturbed_maps))
    num = np.linalg.norm(maps - ref, axis=1)
    den = np.linalg.norm(ref)
    values = num / den if den > 0 else np.where(num > 0, np.inf, 0.0)
    return float(values.max()), float(values.mean())


def sensitivity(explain_batch: ExplainBatch, x: torch.Tensor, reference, *,
                radius: float = RADIUS, samples: int = SAMPLES, seed: int = 0) -> dict:
    """Max-Sensitivity and Avg-Sensitivity (Yeh et al. 2019) of one map.

    Parameters
    ----------
    explain_batch : callable
        ``(N, C, H, W)`` pixels -> ``(N, h, w)`` maps (see :func:`batch_explainer`).
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image in [0, 1].
    reference : array-like
        The map of ``x`` (shaped like one map of ``explain_batch``).
    radius : float
        Half-width of the uniform noise (pixel values).
    samples : int
        Perturbed inputs, explained in batches.
    seed : int
        Noise seed (:func:`input_perturbations` with ``"uniform"``).

    Returns
    -------
    dict
        ``max_sensitivity``, ``avg_sensitivity`` (relative change of the map, 0 = unmoved),
        ``radius`` and ``samples``.
    """
    ys = input_perturbations(x, "uniform", radius, samples, seed)
    most, mean = sensitivity_from_maps(reference, explain_batch(ys))
    return {"max_sensitivity": most, "avg_sensitivity": mean, "radius": radius,
            "samples": samples}


def _peak_scaled(maps: np.ndarray) -> np.ndarray:
    peak = np.abs(maps).max(axis=1, keepdims=True)
    return maps / np.where(peak > 0, peak, 1.0)


def lipschitz_from_maps(x: torch.Tensor, reference, perturbed_inputs: torch.Tensor,
                        perturbed_maps, normalise: bool = True) -> float:
    """Largest ``||Phi(x) - Phi(y_j)||_2 / ||x - y_j||_2`` over the perturbed inputs.

    With ``normalise`` each map is first divided by its largest magnitude (as Quantus does by
    default), so that the estimate does not depend on the method's units.
    """
    n = len(perturbed_inputs)
    ref = _flat(reference, 1)
    maps = _flat(perturbed_maps, n)
    if normalise:
        ref, maps = _peak_scaled(ref), _peak_scaled(maps)
    xs = torch.as_tensor(x, dtype=torch.float64).reshape(1, -1).numpy()
    ys = torch.as_tensor(perturbed_inputs, dtype=torch.float64).reshape(n, -1).numpy()
    # The small term keeps an unperturbed draw (all noise clipped away) finite, as in Quantus.
    return float((np.linalg.norm(ref - maps, axis=1)
                  / (np.linalg.norm(xs - ys, axis=1) + 1e-10)).max())


def local_lipschitz(explain_batch: ExplainBatch, x: torch.Tensor, reference, *,
                    std: float = NOISE_STD, samples: int = SAMPLES, seed: int = 0,
                    normalise: bool = True) -> dict:
    """Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018) of one map.

    Parameters
    ----------
    explain_batch : callable
        ``(N, C, H, W)`` pixels -> ``(N, h, w)`` maps.
    x : torch.Tensor
        ``(1, C, H, W)`` pixel-space image in [0, 1].
    reference : array-like
        The map of ``x``.
    std : float
        Standard deviation of the Gaussian noise (pixel values).
    samples : int
        Perturbed inputs.
    seed : int
        Noise seed (:func:`input_perturbations` with ``"gaussian"``).
    normalise : bool
        Scale each map by its largest magnitude first.

    Returns
    -------
    dict
        ``local_lipschitz`` (map change per unit of input change, 0 = unmoved) and
        ``lipschitz_amplification``: the same ratio with both changes relative to the size of
        the map and of the image, a unitless figure (1 = the map moves, in proportion, as much
        as the input does).
    """
    ys = input_perturbations(x, "gaussian", std, samples, seed)
    maps = explain_batch(ys)
    value = lipschitz_from_maps(x, reference, ys, maps, normalise)
    ref = _flat(reference, 1)
    ref = _peak_scaled(ref) if normalise else ref
    size_map = float(np.linalg.norm(ref))
    size_x = float(torch.as_tensor(x, dtype=torch.float64).norm())
    amplification = value * size_x / size_map if size_map > 0 else 0.0
    return {"local_lipschitz": value, "lipschitz_amplification": amplification, "std": std,
            "samples": samples}
