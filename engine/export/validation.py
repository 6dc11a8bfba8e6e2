"""The "Method and its validation" section every report carries (CLAIM 2024, item 31).

CLAIM asks authors to report the explanation method, the parameters used, and how the
explanation was validated, through stability analyses across input perturbations. One
structure is built here from a result's method, layer, target, parameters, trust metrics and
intended-use check; the PDF, the HTML page, ``result.json`` and the DICOM SR render it.
"""

from __future__ import annotations

from typing import Any

from engine.export.provenance import method_title

#: The reporting item the section follows.
STANDARD = "CLAIM 2024, item 31 (explainability: method, parameters, validation)"
#: What a row says when the trust metrics were not computed.
NOT_MEASURED = "not measured (compute the trust metrics to record it)"


def _number(value: Any) -> str:
    return f"{float(value):.2f}" if isinstance(value, int | float) else "—"


def _params_text(params: dict) -> str:
    parts = []
    for method, values in (params or {}).items():
        items = ", ".join(f"{k}={v}" for k, v in (values or {}).items())
        parts.append(f"{method_title(method)}: {items or 'defaults'}")
    return "; ".join(parts) or "defaults"


def _sanity_text(m: dict) -> str:
    if "sanity_passed" not in m:
        return "not run" if m else NOT_MEASURED
    verdict = "passed" if m["sanity_passed"] else "failed"
    text = (f"{verdict}: similarity to the map after randomising the top layers "
            f"{_number(m.get('sanity_similarity'))} (Adebayo et al. 2018 cascade)")
    if "reference_spearman" in m:
        text += ("; the method re-run reproduces the map at Spearman "
                 f"{_number(m['reference_spearman'])}")
    if "random_label_spearman" in m:
        text += (f"; map for class {m.get('random_label_class')} at Spearman "
                 f"{_number(m['random_label_spearman'])}")
    return text


def _stability_text(m: dict) -> str:
    u = m.get("uncertainty") or {}
    parts = []
    if u.get("map_spearman_mean") is not None:
        lim = u.get("limits") or {}
        parts.append(
            f"map rank-correlation {_number(u['map_spearman_mean'])} (lowest "
            f"{_number(u.get('map_spearman_min'))}), top-{u.get('top_fraction', 0.1):.0%} "
            f"overlap {_number(u.get('map_top_overlap_mean'))} over {u['augmentations']} "
            f"augmentations ({u.get('kind', '')}; shift up to {lim.get('shift', 0):.0%}, rotation "
            f"up to {lim.get('rotation_deg', 0):g} degrees, gain up to {lim.get('gain', 0):.0%}, "
            f"offset up to {lim.get('offset', 0):g}; no flips), each augmentation undone "
            "before comparing")
    robustness = (m.get("families") or {}).get("robustness") if isinstance(
        m.get("families"), dict) else None
    for figure in robustness or []:
        if isinstance(figure, dict) and isinstance(figure.get("value"), int | float):
            parts.append(f"{str(figure.get('name', '')).replace('_', ' ')} "
                         f"{_number(figure['value'])}")
    return "; ".join(parts) or (NOT_MEASURED if not m else "not run")


def validation_section(*, method: str, layer: str, target: str, versus: Any, params: dict,
                       metrics: dict | None, intended_use: dict | None) -> dict:
    """Build the section's structure.

    Parameters
    ----------
    method, layer : str
        The explained map(s); several are comma-joined.
    target : str
        The explained class.
    versus : str or None
        The contrasted class, if any.
    params : dict
        Explainer parameters per method.
    metrics : dict, optional
        The trust battery (:func:`engine.metrics.battery.trust_battery`).
    intended_use : dict, optional
        The intended-use check (``status``, ``message``).

    Returns
    -------
    dict
        ``standard``, ``rows`` (list of ``[label, text]``) and the figures they quote:
        ``seed``, ``sanity_passed``, ``map_spearman_mean``, ``decision_flip_share``,
        ``uncertainty`` (the plain-language line), ``intended_use_status``.
    """
    m = dict(metrics or {})
    u = m.get("uncertainty") or {}
    use = intended_use or {}
    methods = [s for s in str(method).split(",") if s]
    drop = u.get("mc_dropout") or {}
    seed_text = (f"augmentations and MC dropout seed {u['seed']}; " if "seed" in u else "") + \
        "the other class of the class-sensitivity check is drawn with the target class as seed"
    rows = [
        ["Standard", STANDARD],
        ["Method", ", ".join(f"{method_title(s)} ({s})" for s in methods) or "—"],
        ["Layer", str(layer) or "—"],
        ["Target", f"{target}" + (f" rather than {versus}" if versus not in (None, "") else "")],
        ["Parameters", _params_text(params)],
        ["Seeds", seed_text],
        ["Faithfulness", str(m.get("summary") or NOT_MEASURED)],
        ["Sanity", _sanity_text(m)],
        ["Stability", _stability_text(m)],
        ["Uncertainty", str(u.get("summary") or NOT_MEASURED)],
        ["MC dropout", (f"{drop['draws']} draws: mean {_number(drop['mean'])}, "
                        f"SD {_number(drop['std'])}" if drop.get("dropout_layers")
                        else "no dropout layers" if drop else NOT_MEASURED)],
        ["Intended use", f"{use.get('status', 'unknown')}: {use.get('message', '')}".strip()],
    ]
    return {
        "standard": STANDARD,
        "rows": rows,
        "seed": u.get("seed"),
        "sanity_passed": m.get("sanity_passed"),
        "map_spearman_mean": u.get("map_spearman_mean"),
        "decision_flip_share": u.get("decision_flip_share"),
        "uncertainty": u.get("summary"),
        "intended_use_status": use.get("status", "unknown"),
    }


def validation_of(content: dict) -> dict:
    """:func:`validation_section` from a report's content or a ``result.json`` dict."""
    return validation_section(method=content.get("method", ""), layer=content.get("layer", ""),
                              target=str(content.get("target", "")),
                              versus=content.get("versus"), params=content.get("params") or {},
                              metrics=content.get("metrics"),
                              intended_use=content.get("intended_use"))
