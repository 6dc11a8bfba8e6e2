"""Complexity of a map: is the evidence concentrated on a few pixels or spread thin?

- Sparseness (Chalasani et al. 2020, "Concise Explanations of Neural Networks using Adversarial
  Training", ICML): the Gini index of the map's magnitudes, 0 for a constant map, towards 1 when
  all the mass sits on one pixel.
- Complexity (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
  Explanations", IJCAI): the Shannon entropy of the magnitudes read as a distribution; ``log n``
  (the largest) for a constant map over ``n`` pixels, 0 for a single pixel. It is also reported
  divided by ``log n``, so that maps of different sizes compare.

Both read the magnitude ``|map|``, as Quantus does by default.
"""

from __future__ import annotations

import numpy as np


def _magnitudes(saliency) -> np.ndarray:
    return np.abs(np.nan_to_num(np.asarray(saliency, dtype=np.float64), nan=0.0)).ravel()


def sparseness(saliency) -> float:
    """Gini index of ``|map|`` (Chalasani et al. 2020); 0 for a constant or all-zero map.

    Parameters
    ----------
    saliency : array-like
        Map of any shape.

    Returns
    -------
    float
        In [0, 1 - 1/n]: higher is sparser.
    """
    a = np.sort(_magnitudes(saliency))
    n, total = a.size, a.sum()
    if n == 0 or total <= 0:
        return 0.0
    k = np.arange(1, n + 1)
    return float(((2 * k - n - 1) * a).sum() / (n * total))


def complexity(saliency) -> tuple[float, float]:
    """Entropy of ``|map| / sum |map|`` (Bhatt et al. 2020), and that entropy over ``log n``.

    Parameters
    ----------
    saliency : array-like
        Map of any shape.

    Returns
    -------
    entropy : float
        In nats; ``log n`` for a constant map (and, by convention, for an all-zero one).
    normalised : float
        ``entropy / log n`` in [0, 1]: lower is more concentrated.
    """
    a = _magnitudes(saliency)
    n = a.size
    if n <= 1:
        return 0.0, 0.0
    total = a.sum()
    if total <= 0:
        return float(np.log(n)), 1.0
    p = a / total
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    return entropy, entropy / float(np.log(n))
