"""How accurate the map's own estimate is, from what its explainer noted beside it.

Integrated Gradients notes its completeness gap, KernelSHAP a standard error per superpixel and
LIME its surrogate's weighted R^2 (see ``plugins/gradients.py`` and ``plugins/superpixels.py``).
:func:`estimate_accuracy` turns those notes into trust-metric keys, so the trust panel and the
reports show them beside the faithfulness measures, and ``result.json`` keeps the full notes.
"""

from __future__ import annotations


def estimate_accuracy(notes: dict | None) -> dict:
    """Return the accuracy keys of one map's notes (empty for methods that note none).

    Parameters
    ----------
    notes : dict, optional
        ``MapResult.notes``.

    Returns
    -------
    dict
        ``completeness_gap`` (relative, Integrated Gradients), ``path_passes`` (its gradient
        passes), ``largest_standard_error`` and ``uncertain_superpixels`` (KernelSHAP: values
        within two standard errors of 0), ``surrogate_r2`` (LIME), where noted.
    """
    notes = notes or {}
    out: dict = {}
    gap = (notes.get("completeness") or {}).get("relative_gap")
    if gap is not None:
        out["completeness_gap"] = float(gap)
    passes = (notes.get("quadrature") or {}).get("passes")
    if passes is not None:
        out["path_passes"] = int(passes)
    errors = notes.get("standard_errors")
    if errors:
        out["largest_standard_error"] = float(max(errors))
        out["uncertain_superpixels"] = len(notes.get("uncertain") or [])
    if notes.get("r2") is not None:
        out["surrogate_r2"] = float(notes["r2"])
    return out
