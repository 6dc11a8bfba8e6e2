"""Random Logit (Sixt, Granz & Landgraf 2020, "When Explanations Lie: Why Many Modified BP
Attributions Fail", ICML), beside the model-randomisation cascade of
:mod:`engine.metrics.sanity`.

The map for the explained class is compared with the map for another class drawn at random: an
explainer that draws the same map whatever class it is asked about cannot show class evidence.
The similarity is the SSIM of the two maps, each scaled by its largest magnitude, with the data
range of the pair (Quantus's definition), reported with the Spearman rank correlation. Low is
good; a map independent of the class scores 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.core.errors import UsageError
from engine.metrics.sanity import spearman, ssim

#: Seed of the other class (Quantus's default), so the same case checks the same class.
SEED = 42


def random_logit_class(target: int, num_classes: int, seed: int = SEED,
                       exclude: tuple[int, ...] = ()) -> int:
    """The other class Random Logit explains: drawn as Quantus 0.6 draws it (seeded).

    Parameters
    ----------
    target : int
        The explained class.
    num_classes : int
        How many classes the model has.
    seed : int
        Seed of the draw.
    exclude : tuple of int
        Further classes not to draw (a contrasted class).
    """
    others = [c for c in range(num_classes) if c != target and c not in exclude]
    if not others:
        raise UsageError("Random Logit needs a model with at least two classes")
    # The legacy generator, as Quantus seeds it: the same seed draws the same class.
    rs = np.random.RandomState(seed)
    return int(others[rs.randint(0, len(others), 1)[0]])


def map_ssim(a, b) -> float:
    """SSIM of two maps each scaled by its largest magnitude, over the pair's data range.

    scikit-image's default 7-pixel window, narrowed (to an odd width) for coarse maps; NaN when a
    side is shorter than 3 pixels (see :func:`engine.metrics.sanity.ssim`).
    """
    return ssim(a, b, data_range=None)


def random_logit(explain_class: Callable[[int], np.ndarray], reference, target: int,
                 num_classes: int, *, seed: int = SEED,
                 exclude: tuple[int, ...] = ()) -> dict:
    """Random Logit of one map.

    Parameters
    ----------
    explain_class : callable
        ``explain_class(c) -> map`` for class ``c`` (same method, layer and input).
    reference : array-like
        The map of ``target``.
    target : int
        The explained class.
    num_classes : int
        Classes of the model.
    seed : int
        Seed of the other class (:func:`random_logit_class`).
    exclude : tuple of int
        Classes not to draw.

    Returns
    -------
    dict
        ``random_logit_class`` (index), ``random_logit_ssim`` and ``random_logit_spearman``.
    """
    other = random_logit_class(target, num_classes, seed, exclude)
    changed = np.asarray(explain_class(other))
    return {"random_logit_class": other, "random_logit_ssim": map_ssim(reference, changed),
            "random_logit_spearman": spearman(reference, changed)}
