"""Uncertainty of a prediction, and how far its map moves: test-time augmentation and MC dropout.

:func:`prediction_uncertainty` perturbs the model input with small, seeded augmentations that
fit medical images and reports

- the spread of the target probability and the share of augmentations that flip the decision
  (the top class of a softmax model; ``p >= threshold`` for a sigmoid, multi-label model);
- how far the map moves: each augmented map is mapped back onto the original grid (the
  geometric augmentation undone) and compared with the original map by Spearman rank
  correlation and by the overlap of the top-k pixels, inside the region both maps cover;
- MC dropout (Gal & Ghahramani 2016) where the model has dropout layers: those layers alone
  are switched to training mode for the draws and back afterwards.

Augmentations are shifts, small in-plane rotations (2-D only; a volume gets 3-D shifts) and
contrast/brightness changes. There are no flips: left and right carry meaning in medical images
(a chest radiograph's laterality). The maps of every augmentation come from one batched capture
through the explain core, as the audit makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.core.cancel import CancelToken, ProgressFn, no_progress
from engine.core.case import Target
from engine.core.errors import ExplainerUnavailable
from engine.explain.api import INPUT_LAYER, is_layer_based
from engine.metrics.sanity import spearman

#: Largest shift, as a share of each spatial side.
MAX_SHIFT = 0.04
#: Largest in-plane rotation, in degrees (2-D models only).
MAX_ROTATION = 5.0
#: Largest contrast change (gain 1 +/- this) and brightness change (offset, pixel units).
MAX_GAIN = 0.10
MAX_OFFSET = 0.05
#: Share of the covered pixels that count as the map's top region for the overlap.
TOP_FRACTION = 0.10
#: Mean map rank correlation below which the line says the map moves.
MAP_STABLE = 0.7
#: Share of flipped decisions up to which the prediction is called mostly stable.
MOSTLY_STABLE = 0.2
#: Default number of augmentations and of MC dropout draws.
AUGMENTATIONS = 20
DROPOUT_DRAWS = 20


@dataclass(frozen=True)
class Augmentation:
    """One test-time augmentation: shift (share of each side, axis order of the grid), rotation
    (degrees, 2-D only), contrast gain and brightness offset (pixel units)."""

    shift: tuple[float, ...]
    angle: float
    gain: float
    offset: float

    def to_dict(self) -> dict:
        """JSON form."""
        return {"shift": [round(s, 4) for s in self.shift], "angle": round(self.angle, 3),
                "gain": round(self.gain, 4), "offset": round(self.offset, 4)}


def augmentations(n: int, rank: int, seed: int = 0) -> list[Augmentation]:
    """Draw ``n`` seeded augmentations for a ``rank``-D input (2 or 3).

    Parameters
    ----------
    n : int
        How many.
    rank : int
        Spatial dimensions of the model input; a volume gets no rotation.
    seed : int
        Seed of the draws: the same seed gives the same augmentations.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        shift = tuple(float(s) for s in rng.uniform(-MAX_SHIFT, MAX_SHIFT, rank))
        angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION)) if rank == 2 else 0.0
        out.append(Augmentation(shift, angle, float(1 + rng.uniform(-MAX_GAIN, MAX_GAIN)),
                                float(rng.uniform(-MAX_OFFSET, MAX_OFFSET))))
    return out


def _matrix(aug: Augmentation, rank: int) -> torch.Tensor:
    """Homogeneous affine matrix, in grid_sample's normalised coordinates, sampling the
    augmented image from the original one."""
    m = torch.eye(rank + 1, dtype=torch.float64)
    if rank == 2:
        a = math.radians(aug.angle)
        m[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]],
                                 dtype=torch.float64)
    # affine_grid orders coordinates (x, y[, z]), the reverse of the tensor's axes; a shift of
    # s of a side is 2 s in normalised units, and sampling at p - t moves content by +t.
    for axis, s in enumerate(reversed(aug.shift)):
        m[axis, rank] = -2.0 * s
    return m


def warp(t: torch.Tensor, augs: list[Augmentation], inverse: bool = False,
         padding: str = "border") -> torch.Tensor:
    """Apply each augmentation's geometry (or its inverse) to ``t[i]``.

    Parameters
    ----------
    t : torch.Tensor
        ``(N, C, *spatial)`` with N = len(augs), 2 or 3 spatial axes.
    augs : list of Augmentation
        One per input.
    inverse : bool
        Undo the augmentation instead (maps an augmented map back onto the original grid).
    padding : {"border", "zeros"}
        What fills the area the shifted content leaves (``grid_sample``'s padding mode).
    """
    rank = t.dim() - 2
    mats = [_matrix(a, rank) for a in augs]
    if inverse:
        mats = [torch.linalg.inv(m) for m in mats]
    theta = torch.stack([m[:rank] for m in mats]).to(t.dtype)
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _intensity(pixels: torch.Tensor, augs: list[Augmentation]) -> torch.Tensor:
    shape = (len(augs),) + (1,) * (pixels.dim() - 1)
    gain = torch.tensor([a.gain for a in augs], dtype=pixels.dtype).reshape(shape)
    offset = torch.tensor([a.offset for a in augs], dtype=pixels.dtype).reshape(shape)
    return ((pixels - 0.5) * gain + 0.5 + offset).clamp(0.0, 1.0)


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of ``a``'s top ``fraction`` of values that are also in ``b``'s top ``fraction``."""
    a, b = np.ravel(a), np.ravel(b)
    k = max(1, int(round(fraction * a.size)))
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def _decisions(probs: torch.Tensor, label: int, model: Any) -> np.ndarray:
    if getattr(model, "output", "softmax") == "sigmoid":
        return (probs[:, label] >= float(getattr(model, "threshold", 0.5))).numpy()
    return probs.argmax(dim=1).numpy()


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    """The dropout layers of a module (every ``nn.Dropout*`` kind)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def mc_dropout(model: Any, x: torch.Tensor, label: int, draws: int = DROPOUT_DRAWS,
               seed: int = 0) -> dict:
    """MC dropout: the target probability over ``draws`` passes with dropout on.

    Only the dropout layers are put in training mode (batch normalisation keeps its running
    statistics), with torch's random state seeded and restored, and put back afterwards.

    Returns
    -------
    dict
        ``dropout_layers`` (count); with any: ``mean``, ``std``, ``draws``, ``flips`` (draws
        whose decision differs from the deterministic one) and ``decision_flip_share``.
    """
    from engine.explain import core

    module = getattr(model, "module", None)
    layers = dropout_layers(module) if isinstance(module, nn.Module) else []
    if not layers:
        return {"dropout_layers": 0}
    base = core.predict(model, x)
    was = [m.training for m in layers]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            for m in layers:
                m.train()
            # Each copy in the batch draws its own dropout mask.
            probs = core.predict(model, x.expand(draws, *x.shape[1:]).contiguous())
        finally:
            for m, t in zip(layers, was, strict=True):
                m.train(t)
    p = probs[:, label].numpy()
    flips = int((_decisions(probs, label, model) != _decisions(base, label, model)[0]).sum())
    return {"dropout_layers": len(layers), "draws": draws, "mean": float(p.mean()),
            "std": float(p.std()), "flips": flips, "decision_flip_share": flips / draws}


def _upsample(raw: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(N, *grid) raw maps onto the model input's grid, as (N, 1, *size)."""
    t = raw.float()[:, None]
    if tuple(t.shape[2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear" if len(size) == 2 else "trilinear",
                         align_corners=False)


def prediction_uncertainty(model: Any, x: torch.Tensor, target: Target | int, method: str,
                           layer: str, params: dict | None = None, *, n: int = AUGMENTATIONS,
                           seed: int = 0, draws: int = DROPOUT_DRAWS,
                           batch_size: int = 8, progress: ProgressFn | None = None,
                           cancel: CancelToken | None = None,
                           image_shape: tuple[int, ...] | None = None) -> dict:
    """Test-time augmentation, MC dropout and map movement for one case.

    Parameters
    ----------
    model : LoadedModel
        The model (never modified: dropout layers are switched back).
    x : torch.Tensor
        ``(1, C, *spatial)`` preprocessed input, 2-D or 3-D.
    target : Target or int
        What the map explains.
    method, layer : str
        The map's explainer and layer; ``method=None`` skips the map movement.
    params : dict, optional
        The explainer's parameters.
    n : int
        Number of augmentations.
    seed : int
        Seed of the augmentations and of the dropout draws.
    draws : int
        MC dropout passes.
    batch_size : int
        Augmented inputs explained per capture.
    progress, cancel
        Progress callback and cancel token.
    image_shape : tuple of int, optional
        The image's ``(rows, cols)`` (a segmentation model's region target).

    Returns
    -------
    dict
        ``augmentations`` (n), ``seed``, ``kind`` ("shift, rotation, contrast" or its 3-D
        form), ``limits`` (largest shift, rotation, gain and offset), ``top_fraction``,
        ``dropout_draws``, ``probability`` (unaugmented), ``probability_mean``, ``probability_std``,
        ``probability_range`` ([min, max]), ``decision_flips``, ``decision_flip_share``,
        ``map_spearman_mean`` / ``_min``, ``map_top_overlap_mean`` (top 10 %),
        ``mc_dropout`` (see :func:`mc_dropout`), ``summary`` (the plain-language line) and
        ``per_augmentation`` (each augmentation with its probability and map figures).
    """
    from engine.explain import core

    report = progress or no_progress
    cancel = cancel or CancelToken()
    target = target if isinstance(target, Target) else Target(int(target))
    label = int(target.label)
    x = x.detach()
    rank = x.dim() - 2
    augs = augmentations(n, rank, seed)
    cap0 = core.capture(model, x, target, core.Plan([], {}, [], False), image_shape)
    pixels = cap0.to_pixels(x).cpu()
    moved = _intensity(warp(pixels.expand(n, *pixels.shape[1:]).contiguous(), augs), augs)
    xs = cap0.from_pixels(moved.to(x.device)).to(x.dtype)

    base = core.predict(model, x)
    probs = core.predict(model, xs)
    report(0.2, "augmented predictions done")
    p = probs[:, label].numpy()
    flips = _decisions(probs, label, model) != _decisions(base, label, model)[0]

    spear: list[float | None] = [None] * n
    overlap: list[float | None] = [None] * n
    if method is not None:
        the_plan = core.plan(model, [method], [layer] if layer != INPUT_LAYER else "auto",
                             {method: params or {}})
        if not is_layer_based(the_plan.explainers[0]):
            the_plan.layers = []
        both = torch.cat([x, xs], 0)
        raws: list[torch.Tensor] = []
        for start in range(0, n + 1, batch_size):
            cancel.check()
            cap = core.capture(model, both[start:start + batch_size], target, the_plan,
                               image_shape)
            got = core.explain(cap, the_plan, cancel=cancel)
            for maps, errors in zip(got.maps, got.errors, strict=True):
                key = (method, layer if (method, layer) in maps else INPUT_LAYER)
                if errors or key not in maps:
                    raise ExplainerUnavailable(
                        next(iter(errors.values()), f"{method}: no map for {layer}"))
                raws.append(maps[key])
            report(0.2 + 0.7 * min(1.0, (start + batch_size) / (n + 1)), "augmented maps")
        size = tuple(x.shape[2:])
        stack = _upsample(torch.stack(raws), size)
        back = warp(stack[1:], augs, inverse=True, padding="zeros")[:, 0].numpy()
        covered = warp(torch.ones_like(stack[1:]), augs, inverse=True,
                       padding="zeros")[:, 0].numpy() > 0.999
        ref = stack[0, 0].numpy()
        for i in range(n):
            mask = covered[i]
            spear[i] = spearman(ref[mask], back[i][mask])
            overlap[i] = top_overlap(ref[mask], back[i][mask])

    dropout = mc_dropout(model, x, label, draws, seed)
    report(1.0, "uncertainty done")
    out = {
        "augmentations": n,
        "seed": seed,
        "kind": "shift, rotation, contrast" if rank == 2 else "3-D shift, contrast",
        "limits": {"shift": MAX_SHIFT, "rotation_deg": MAX_ROTATION if rank == 2 else 0.0,
                   "gain": MAX_GAIN, "offset": MAX_OFFSET, "flips": False},
        "top_fraction": TOP_FRACTION,
        "dropout_draws": draws,
        "probability": float(base[0, label]),
        "probability_mean": float(p.mean()),
        "probability_std": float(p.std()),
        "probability_range": [float(p.min()), float(p.max())],
        "decision_flips": int(flips.sum()),
        "decision_flip_share": float(flips.mean()),
        "map_spearman_mean": None if method is None else float(np.mean(spear)),
        "map_spearman_min": None if method is None else float(np.min(spear)),
        "map_top_overlap_mean": None if method is None else float(np.mean(overlap)),
        "mc_dropout": dropout,
        "per_augmentation": [{**a.to_dict(), "probability": float(p[i]),
                              "flipped": bool(flips[i]), "map_spearman": spear[i],
                              "map_top_overlap": overlap[i]} for i, a in enumerate(augs)],
    }
    out["summary"] = uncertainty_line(out)
    return out


def uncertainty_line(u: dict) -> str:
    """The plain-language line, e.g. ``stable: 20/20 augmentations agree; map rank-correlation
    0.91``."""
    n, flips = int(u["augmentations"]), int(u["decision_flips"])
    share = flips / max(1, n)
    verdict = "stable" if flips == 0 else "mostly stable" if share <= MOSTLY_STABLE else \
        "unstable"
    parts = [f"{verdict}: {n - flips}/{n} augmentations agree",
             f"probability {u['probability_mean']:.2f} (SD {u['probability_std']:.2f})"]
    rho = u.get("map_spearman_mean")
    if rho is not None:
        moves = "" if rho >= MAP_STABLE else " (the map moves)"
        parts.append(f"map rank-correlation {rho:.2f}{moves}")
    drop = u.get("mc_dropout") or {}
    if drop.get("dropout_layers"):
        parts.append(f"MC dropout {drop['mean']:.2f} (SD {drop['std']:.2f})")
    else:
        parts.append("no dropout layers")
    return "; ".join(parts)


def case_uncertainty(result: Any, image: Any, model: Any, method: str | None, layer: str | None,
                     **kwargs: Any) -> dict:
    """:func:`prediction_uncertainty` for a shown result: its input, target and parameters.

    Parameters
    ----------
    result : ExplainResult
        The case (target, versus, frame, explainer parameters).
    image : Image or Volume
        What was explained.
    model : LoadedModel
        The model.
    method, layer : str or None
        The map to follow under the augmentations (None: the prediction only).
    **kwargs
        Passed to :func:`prediction_uncertainty` (``n``, ``seed``, ``progress``, ``cancel``...).
    """
    from engine.metrics.case import case_target

    target = case_target(result, model)
    volume = getattr(image, "kind", None) == "volume"
    x = model.preprocess(image, getattr(result, "frame", 0)).detach()
    params = result.params.get(method) if isinstance(getattr(result, "params", None), dict) \
        else None
    return prediction_uncertainty(model, x, target, method, layer,
                                  params if isinstance(params, dict) else None,
                                  image_shape=None if volume else tuple(image.shape[:2]),
                                  **kwargs)
