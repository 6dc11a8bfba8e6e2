"""Sanity checks: does the map depend on the model, and on the class it explains?

Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", NeurIPS): the
parameterised layers of a *copy* of the model are re-initialised one by one, from the output layer
down (a cascade), the map is recomputed after each step, and its Spearman rank correlation with the
original map is recorded. A map that barely changes when the model it explains is destroyed shows
the image, not the model: Adebayo et al. found this for Guided Backprop, which behaves like an edge
detector.

The verdict looks at the decision end. Guided Backprop's failure is that it ignores the *top*
layers, the ones that hold what the model learned about the classes; once the randomisation
reaches the first convolutions every map changes, Guided Backprop's included (its Spearman after
the full cascade is 0.3-0.4 on the demo models, under any sensible threshold). So the check
compares the map after each stage that randomises at most half of the parameterised layers, from
the output down, and flags the map when it stays similar there on average. "Similar" needs both
measures Adebayo et al. report: the Spearman rank correlation of the map as it is read (signed
methods with their sign, so a map whose sign flips counts as changed) and the structural
similarity (SSIM) of the maps scaled by their largest absolute value. Rank correlation alone is
high for smooth maps that cover the bright object whatever the weights (SmoothGrad); SSIM alone is
high for maps that are mostly empty. The smaller of the two is the stage's similarity.

Class sensitivity stands in for Adebayo's data-randomisation test (retraining on shuffled labels is
far too slow for one case on screen). The map for a randomly chosen *other* class is compared with
the map for the target; an explainer that draws the same map whatever class it is asked about
cannot be showing class evidence. This is the class-insensitivity failure that Sixt, Granz and
Landgraf 2020 ("When Explanations Lie", ICML) prove for several modified-backprop methods, and it is
cheap: one more map.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn

from engine.core.cancel import CancelToken, ProgressFn

#: Below this similarity at the decision end a map passes the randomisation check.
SANITY_THRESHOLD = 0.5
#: Share of the parameterised layers, counted from the output, that make up the decision end.
DECISION_END = 0.5


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks (1-based) of a flat array, ties sharing their average rank."""
    v = np.asarray(values, dtype=np.float64).ravel()
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    # Rank of a value = number of smaller values + the mean position within its tie group.
    starts = np.cumsum(counts) - counts
    return (starts + (counts + 1) / 2.0)[inverse]


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally shaped maps (0 when either is constant).

    Parameters
    ----------
    a, b : array-like
        Maps of the same shape; NaN is read as 0.

    Returns
    -------
    float
        Correlation in [-1, 1].
    """
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0).ravel()
    b = np.nan_to_num(np.asarray(b, dtype=np.float64), nan=0.0).ravel()
    if a.shape != b.shape:
        raise ValueError(f"map shapes differ: {a.shape} vs {b.shape}")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def ssim(a, b, *, data_range: float | None = 2.0) -> float:
    """Structural similarity of two equally shaped maps, each scaled by its largest |value|.

    Parameters
    ----------
    a, b : array-like
        Maps of the same shape (2-D or 3-D); NaN is read as 0. Signed maps keep their sign, so
        the data range is [-1, 1]. SSIM is the product of a luminance and a structure term, so
        a sign flip (negative in both) scores low but positive; :class:`CascadeStep` pairs it
        with the signed rank correlation, which is -1 there.
    data_range : float or None
        The SSIM's data range: 2.0 for signed maps scaled to [-1, 1]; None for the pair's own
        range after scaling, as Quantus's Random Logit uses it (two equal constant maps are then
        identical, 1.0).

    Returns
    -------
    float
        Mean SSIM (Wang et al. 2004) with scikit-image's defaults; NaN when a side of the map is
        shorter than 3 pixels, where the SSIM window does not fit.
    """
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0)
    b = np.nan_to_num(np.asarray(b, dtype=np.float64), nan=0.0)
    if a.shape != b.shape:
        raise ValueError(f"map shapes differ: {a.shape} vs {b.shape}")
    side = min(a.shape)
    if side < 3:
        return float("nan")
    # The default 7-pixel window, narrowed (to an odd width) for maps as coarse as a CAM layer.
    win = min(7, side if side % 2 else side - 1)
    scaled = [m / peak if (peak := np.abs(m).max()) > 0 else m for m in (a, b)]
    if data_range is None:
        data_range = float(max(m.max() for m in scaled) - min(m.min() for m in scaled))
        if data_range <= 0:
            return 1.0
    return float(structural_similarity(*scaled, win_size=win, data_range=data_range))


def parameter_layers(module: nn.Module, example: torch.Tensor | None = None) -> list[str]:
    """Names of the modules that own parameters, in forward-execution order.

    Parameters
    ----------
    module : nn.Module
        The model.
    example : torch.Tensor, optional
        An input for one dry forward pass that records the order in which layers run. Without
        it (or if the pass fails) the definition order is used.
    """
    owners = [
        name
        for name, m in module.named_modules()
        if name and any(True for _ in m.parameters(recurse=False))
    ]
    if example is None:
        return owners
    seen: list[str] = []
    handles = []
    lookup = dict(module.named_modules())
    for name in owners:
        handles.append(
            lookup[name].register_forward_hook(
                lambda _m, _i, _o, name=name: seen.append(name) if name not in seen else None
            )
        )
    try:
        with torch.inference_mode():
            module(example)
    except Exception:  # noqa: BLE001 - an odd model falls back to definition order
        seen = []
    finally:
        for h in handles:
            h.remove()
    return seen + [n for n in owners if n not in seen] if seen else owners


def randomise_layer(layer: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise one layer's own parameters (and normalisation statistics) in place.

    Weights get Kaiming-normal values, like a freshly built network; biases and normalisation
    shifts get small normal values; normalisation scales random positive values, so that a
    randomised BatchNorm is not the identity.
    """
    with torch.no_grad():
        for pname, p in layer.named_parameters(recurse=False):
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            elif pname == "weight":
                p.copy_(0.5 + torch.rand(p.shape, generator=generator))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        if isinstance(layer, nn.modules.batchnorm._NormBase) and layer.track_running_stats:
            layer.reset_running_stats()


@dataclass
class CascadeStep:
    """One step of the randomisation cascade.

    Attributes
    ----------
    layers : list of str
        Layers randomised so far (top first).
    spearman : float
        Rank correlation of the map with the original.
    ssim : float
        Structural similarity with the original (NaN for maps too coarse for the window).
    """

    layers: list[str]
    spearman: float
    ssim: float = float("nan")

    @property
    def similarity(self) -> float:
        """The smaller of the rank correlation and the SSIM (Spearman alone where SSIM is NaN)."""
        return self.spearman if np.isnan(self.ssim) else min(self.spearman, self.ssim)


def cascade_groups(layers: list[str], max_steps: int) -> list[list[str]]:
    """Split the layers, top first, into at most ``max_steps`` cumulative cascade stages.

    The top layer is always a stage of its own, because randomising the classifier alone is the
    most telling single step; the rest are spread evenly.
    """
    top_down = list(reversed(layers))
    if not top_down:
        return []
    if max_steps <= 1 or len(top_down) <= max_steps:
        cuts = list(range(1, len(top_down) + 1)) if max_steps > 1 else [len(top_down)]
    else:
        rest = np.linspace(1, len(top_down), max_steps)[1:]
        cuts = [1] + sorted({int(round(c)) for c in rest})
    return [top_down[:c] for c in cuts]


def cascading_randomisation(
    module: nn.Module,
    explain: Callable[[nn.Module], np.ndarray],
    reference,
    *,
    example: torch.Tensor | None = None,
    max_steps: int = 4,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[CascadeStep]:
    """Run the Adebayo et al. cascading model-randomisation test on a deep copy of ``module``.

    Parameters
    ----------
    module : nn.Module
        The model. It is never modified; a deep copy is randomised.
    explain : callable
        ``explain(randomised_module) -> map``; must return a map shaped like ``reference``.
    reference : array-like
        The map of the intact model.
    example : torch.Tensor, optional
        An input used once to find the layers' execution order.
    max_steps : int
        Number of cascade stages (each needs one more map).
    seed : int
        Seed for the new weights.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    list of CascadeStep
        One entry per stage; the last has every parameterised layer randomised.
    """
    randomised = copy.deepcopy(module)
    randomised.eval()
    names = parameter_layers(randomised, example)
    lookup = dict(randomised.named_modules())
    g = torch.Generator().manual_seed(seed)
    steps: list[CascadeStep] = []
    done: set[str] = set()
    groups = cascade_groups(names, max_steps)
    for i, group in enumerate(groups):
        if cancel is not None:
            cancel.check()
        for name in group:
            if name not in done:
                randomise_layer(lookup[name], g)
                done.add(name)
        changed = explain(randomised)
        steps.append(CascadeStep(layers=list(group), spearman=spearman(reference, changed),
                                 ssim=ssim(reference, changed)))
        if progress is not None:
            progress((i + 1) / len(groups), "sanity check: randomising the model")
    return steps


@dataclass
class Verdict:
    """What the cascade says about the decision end.

    Attributes
    ----------
    stages : int
        How many cascade stages fall in the decision end (at least the top layer alone).
    spearman, ssim, similarity : float
        Their means over those stages (SSIM NaN when no stage had one).
    passed : bool
        Whether the similarity stays below :data:`SANITY_THRESHOLD`.
    """

    stages: int
    spearman: float
    ssim: float
    similarity: float
    passed: bool


def decision_end_verdict(steps: list[CascadeStep]) -> Verdict:
    """Judge a cascade by the stages that randomise at most half of the layers, top first.

    Parameters
    ----------
    steps : list of CascadeStep
        The whole cascade, as :func:`cascading_randomisation` returns it (its last stage holds
        every parameterised layer).

    Returns
    -------
    Verdict
        Flagged (``passed`` false) when the map stays similar, on average, while only the layers
        at the decision end are randomised.
    """
    if not steps:
        raise ValueError("the cascade has no stages")
    limit = max(1.0, DECISION_END * len(steps[-1].layers))
    top = [s for i, s in enumerate(steps) if i == 0 or len(s.layers) <= limit]
    ssims = [s.ssim for s in top if not np.isnan(s.ssim)]
    similarity = float(np.mean([s.similarity for s in top]))
    return Verdict(
        stages=len(top),
        spearman=float(np.mean([s.spearman for s in top])),
        ssim=float(np.mean(ssims)) if ssims else float("nan"),
        similarity=similarity,
        passed=bool(similarity < SANITY_THRESHOLD),
    )
