"""How to read the trust battery: its figures grouped by family, each family with a one-line
meaning, each figure with a good / fair / poor marker where it has an absolute scale.

The trust panel and its help page show what :func:`panel_groups` returns; they decide nothing
themselves. Families follow Quantus's vocabulary (robustness, faithfulness, localisation,
complexity, randomisation), with the prediction's uncertainty first and the estimators' own
accuracy last. Figures of the battery grouped by family (``metrics["families"]``, each with its
``judgement``) join their family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: (key, label, format, meaning) of each figure :func:`engine.metrics.case.case_metrics`
#: returns, in display order.
ROWS = (
    ("score", "Target probability", "{:.3f}", "Probability of the explained class on the image."),
    ("deletion_auc", "Deletion AUC (lower is better)", "{:.3f}",
     "Area under the probability as the most salient pixels are removed (Petsiuk et al. 2018)."),
    ("insertion_auc", "Insertion AUC (higher is better)", "{:.3f}",
     "Area under the probability as the most salient pixels are restored (Petsiuk et al. 2018)."),
    ("lerf_auc", "Deletion AUC, least salient first", "{:.3f}",
     "Control: removing the least salient pixels first should keep the probability high "
     "(Rong et al. 2022)."),
    ("average_drop", "Drop on explanation map (%)", "{:.1f}",
     "Probability drop when the image is multiplied by the map (Chattopadhay et al. 2018)."),
    ("increase_in_confidence", "Confidence increases", "{}",
     "Whether the map-weighted image scores higher than the image."),
    ("sanity_similarity", "Similarity, top layers randomised", "{:.2f}",
     "Mean of min(Spearman, SSIM) while the decision end of the model (at most half of its "
     "layers, top first) is re-initialised; 0.5 or more fails the check (Adebayo et al. 2018)."),
    ("sanity_spearman", "Randomised-model correlation", "{:.2f}",
     "Spearman correlation with the map of a fully randomised model; near 0 is good "
     "(Adebayo et al. 2018)."),
    ("random_label_spearman", "Other-class correlation", "{:.2f}",
     "Spearman correlation with the map for another class; near 1 means the map ignores "
     "the class."),
    ("reference_spearman", "Map reproduced (Spearman)", "{:.2f}",
     "The method re-run on the unchanged model against the shown map; below 0.99 the map "
     "cannot be made twice."),
    ("completeness_gap", "Completeness gap", "{:.2%}",
     "Integrated Gradients: how far the attributions' sum is from the score's change along "
     "the path from its reference input, the error of its path integral (its tolerance "
     "bounds it)."),
    ("largest_standard_error", "Largest standard error", "{:.3g}",
     "KernelSHAP: the largest standard error of a superpixel's value (Covert and Lee 2021)."),
    ("uncertain_superpixels", "Superpixels within 2 SE of 0", "{}",
     "KernelSHAP: values whose sign the sampling cannot tell."),
    ("surrogate_r2", "Surrogate fit (weighted R²)", "{:.2f}",
     "LIME: how much of the score's variation near the image its linear surrogate explains."),
    ("pointing_hit", "Peak inside ROI", "{}", "Pointing game (Zhang et al. 2016)."),
    ("energy_in_roi", "Saliency share in ROI", "{:.0%}",
     "Energy-based pointing (Wang et al. 2020)."),
    ("iou_at_half", "IoU at 50% of peak", "{:.2f}",
     "Overlap of the map above half its peak with the ROI."),
)

#: (family, one-line meaning, keys of :data:`ROWS`) in display order.
FAMILIES = (
    ("uncertainty", "Does the prediction hold under small shifts, rotations and contrast "
     "changes, and under MC dropout?", ()),
    ("robustness", "Does the map stay put when the image moves a little, and can it be made "
     "again?", ("reference_spearman",)),
    ("faithfulness", "Does removing what the map ranks high lower the score more than "
     "removing what it ranks low?", ("score", "deletion_auc", "insertion_auc", "lerf_auc",
                                      "average_drop", "increase_in_confidence")),
    ("localisation", "Does the map point at the region of interest?",
     ("pointing_hit", "energy_in_roi", "iou_at_half")),
    ("complexity", "Is the map concentrated or spread over the image?", ()),
    ("randomisation", "Does the map change when the model's weights or the class change?",
     ("sanity_similarity", "sanity_spearman", "random_label_spearman")),
    ("estimate accuracy", "How exact is the explainer's own estimate?",
     ("completeness_gap", "largest_standard_error", "uncertain_superpixels", "surrogate_r2")),
)

#: Mean map rank correlation under augmentation at or above which the map is called stable,
#: and below which it is called poor.
MAP_GOOD, MAP_POOR = 0.7, 0.4
#: Probability SD under augmentation below which the prediction is steady, and above which
#: it is poor.
SD_GOOD, SD_POOR = 0.05, 0.15
#: Other-class map correlation above which the map does not tell the classes apart.
CLASS_BLIND = 0.9
#: Re-run correlation below which the map is not reproducible.
REPRODUCIBLE = 0.99


@dataclass
class Figure:
    """One line of the panel: label, value text, marker (``good``/``fair``/``poor``/None)."""

    key: str
    label: str
    text: str
    marker: str | None
    meaning: str


@dataclass
class Group:
    """One family: its name, a one-line meaning and its figures."""

    family: str
    meaning: str
    figures: list[Figure] = field(default_factory=list)


def format_value(fmt: str, value) -> str:
    """Return a figure's text; booleans read yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _band(value: float, good: float, poor: float) -> str:
    """good / fair / poor for a figure that is better high (good > poor) or low."""
    if good >= poor:
        return "good" if value >= good else "poor" if value < poor else "fair"
    return "good" if value <= good else "poor" if value > poor else "fair"


def _marker(key: str, m: dict) -> str | None:
    value = m.get(key)
    if key == "deletion_auc" and isinstance(m.get("summary"), str):
        # The faithfulness verdict (MoRF against LeRF, see engine.metrics.case.summary_line).
        verdict = m["summary"].split(":", 1)[0]
        return {"faithful": "good", "weakly faithful": "fair",
                "not faithful": "poor"}.get(verdict)
    if key == "sanity_similarity" and "sanity_passed" in m:
        return "good" if m["sanity_passed"] else "poor"
    if key == "random_label_spearman" and isinstance(value, int | float):
        return "poor" if value > CLASS_BLIND else "good"
    if key == "reference_spearman" and isinstance(value, int | float):
        return "good" if value >= REPRODUCIBLE else "poor"
    if key == "pointing_hit" and isinstance(value, bool):
        return "good" if value else "poor"
    return None


def _uncertainty_figures(u: dict) -> tuple[list[Figure], list[Figure]]:
    n, flips = int(u.get("augmentations", 0)), int(u.get("decision_flips", 0))
    share = flips / max(1, n)
    spread = float(u.get("probability_std", 0.0))
    pred = [
        Figure("tta_agree", "Augmentations that agree", f"{n - flips}/{n}",
               "good" if flips == 0 else "fair" if share <= 0.2 else "poor",
               "Test-time augmentation: how many augmented images keep the decision."),
        Figure("tta_sd", "Probability spread (SD)", f"{spread:.3f}",
               _band(spread, SD_GOOD, SD_POOR),
               "Standard deviation of the target probability over the augmentations."),
    ]
    drop = u.get("mc_dropout") or {}
    if drop.get("dropout_layers"):
        pred.append(Figure("mc_dropout_sd", "MC dropout spread (SD)", f"{drop['std']:.3f}",
                           _band(float(drop["std"]), SD_GOOD, SD_POOR),
                           f"Target probability over {drop['draws']} passes with dropout on "
                           "(Gal and Ghahramani 2016)."))
    elif drop:
        pred.append(Figure("mc_dropout_sd", "MC dropout", "none", None,
                           "MC dropout needs dropout layers; this model has none."))
    moves = []
    if u.get("map_spearman_mean") is not None:
        rho = float(u["map_spearman_mean"])
        moves.append(Figure("map_spearman", "Map rank-correlation, augmented", f"{rho:.2f}",
                            _band(rho, MAP_GOOD, MAP_POOR),
                            "Spearman correlation of the map with the map of each augmented "
                            "image, the augmentation undone; mean over the augmentations."))
        top = float(u.get("map_top_overlap_mean") or 0.0)
        moves.append(Figure("map_top_overlap", "Top-10% overlap, augmented", f"{top:.0%}",
                            _band(top, 0.5, 0.25),
                            "Share of the map's top 10% pixels that stay in the top 10% "
                            "under the augmentations."))
    return pred, moves


def panel_groups(metrics: dict | None) -> list[Group]:
    """The battery's figures grouped by family, in display order; empty families are left out.

    Parameters
    ----------
    metrics : dict, optional
        From :func:`engine.metrics.battery.trust_battery` (or ``case_metrics``).
    """
    m = dict(metrics or {})
    rows = {key: (label, fmt, tip) for key, label, fmt, tip in ROWS}
    pred, moves = _uncertainty_figures(m["uncertainty"]) if m.get("uncertainty") else ([], [])
    extra = {"uncertainty": pred, "robustness": moves}
    families = m.get("families") if isinstance(m.get("families"), dict) else {}
    groups = []
    for family, meaning, keys in FAMILIES:
        figures = list(extra.get(family, []))
        for key in keys:
            if key in m:
                label, fmt, tip = rows[key]
                figures.append(Figure(key, label, format_value(fmt, m[key]), _marker(key, m),
                                      tip))
        for item in families.get(family) or []:
            if isinstance(item, dict) and "value" in item:
                figures.append(Figure(str(item.get("name", "")),
                                      str(item.get("name", "")).replace("_", " "),
                                      format_value("{:.3g}", item["value"]),
                                      item.get("judgement"), str(item.get("meaning", ""))))
        if figures:
            groups.append(Group(family, meaning, figures))
    return groups
