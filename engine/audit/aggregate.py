"""Merge per-image audit records into dataset-level numbers, flags and verdicts.

Records are the dicts :mod:`engine.audit.runner` stores, one per image. Everything here is a
function of those records alone, so results computed anywhere (several processes, machines)
merge the same way.

An image's class for the per-class numbers is its label when the dataset has one, otherwise
the model's prediction. Groups are written ``column=value``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engine.audit.manifest import BORDER_ROLE
from engine.audit.measures import (
    RunningMeanMap,
    bootstrap_ci,
    classification_summary,
    confusion_matrix,
    summarise,
)

#: Roles whose holding most of an image's saliency flags the image (plus any role named so).
SHORTCUT_PREFIXES = ("marker", "text", "tag", BORDER_ROLE)
#: Roles that mark where the evidence should be; most saliency outside them flags the image.
ANATOMY_PREFIXES = ("anatomy", "lung", "body", "organ")
#: Share above which a shortcut role is "most of the mass" (and below which anatomy is left).
FLAG_SHARE = 0.5


def image_class(rec: dict, classes: Sequence[str]) -> str:
    """Return the class an image is counted under: its label if known, else the prediction."""
    if rec.get("label_index") is not None:
        return classes[rec["label_index"]]
    return classes[rec["pred"]]


def group_keys(rec: dict) -> list[str]:
    """Return the ``column=value`` groups an image belongs to."""
    return [f"{col}={val}" for col, val in sorted(rec.get("groups", {}).items())]


def is_shortcut(role: str) -> bool:
    """Whether saliency on ``role`` suggests a shortcut (marker, text, border, ...)."""
    return role.lower().startswith(SHORTCUT_PREFIXES)


def is_anatomy(role: str) -> bool:
    """Whether ``role`` marks the anatomy the evidence should lie in."""
    return role.lower().startswith(ANATOMY_PREFIXES)


def flag_reason(shares: dict[str, float | None]) -> str | None:
    """Return why an image is flagged, or None: most mass on a shortcut role or off anatomy."""
    best = None
    for role, share in shares.items():
        if share is None or not np.isfinite(share):
            continue
        if is_shortcut(role) and share > FLAG_SHARE and (best is None or share > best[1]):
            best = (f"{share:.0%} of saliency on `{role}`", share)
    if best:
        return best[0]
    for role, share in shares.items():
        if share is not None and np.isfinite(share) and is_anatomy(role) and share < FLAG_SHARE:
            return f"{1 - share:.0%} of saliency outside `{role}`"
    return None


def image_entry(rec: dict, names: Mapping[str, str] | None, **fields) -> dict:
    """How a list in ``audit.json`` names an image: its ``case`` name (and ``path`` if kept).

    ``names`` maps record keys to the export's pseudonyms; without it, the key is the name.
    """
    entry = {"case": (names or {}).get(rec["key"], rec["key"])}
    if "path" in rec:
        entry["path"] = rec["path"]
    return {**entry, **fields}


def aggregate(records: Iterable[dict], classes: Sequence[str], roles: Sequence[str],
              names: Mapping[str, str] | None = None) -> dict:
    """Compute accuracy, ROI shares with bootstrap CIs, flags and verdicts from records.

    Parameters
    ----------
    records : iterable of dict
        Per-image records (failed images carry ``"error"`` and are counted apart).
    classes : sequence of str
        The model's class names.
    roles : sequence of str
        The dataset's ROI roles (``border`` is added).
    names : mapping, optional
        Record key to the name ``flagged`` and ``errors`` give the image (see
        :func:`image_entry`).

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``classification``, ``roi_share``, ``flagged``, ``verdicts``,
        ``errors`` (the parts of ``audit.json`` that depend on the images).
    """
    roles = [*sorted(r for r in roles if r != BORDER_ROLE), BORDER_ROLE]
    k = len(classes)
    # Share values per (role, cell); a cell is "", "g:<group>", "c:<class>" or "cg:<class>|<group>".
    values: dict[str, dict[str, list[float]]] = {r: defaultdict(list) for r in roles}
    cms: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((k, k), dtype=np.int64))
    flagged, errors = [], []
    n = 0
    for rec in records:
        if "error" in rec:
            errors.append((rec["row"], image_entry(rec, names, reason=rec["error"])))
            continue
        n += 1
        cls = image_class(rec, classes)
        groups = group_keys(rec)
        if rec.get("label_index") is not None:
            for cell in ["", *groups]:
                cms[cell] += confusion_matrix([rec["label_index"]], [rec["pred"]], k)
        for role in roles:
            share = rec["shares"].get(role)
            if share is None or not np.isfinite(share):
                continue
            cells = ["", f"c:{cls}"]
            cells += [f"g:{g}" for g in groups] + [f"cg:{cls}|{g}" for g in groups]
            for cell in cells:
                values[role][cell].append(share)
        reason = flag_reason(rec["shares"])
        if reason:
            flagged.append((rec["row"], image_entry(rec, names, reason=reason)))
    classification = {
        "overall": classification_summary(cms[""], classes) if "" in cms else None,
        "by_group": {g: classification_summary(cm, classes) for g, cm in sorted(cms.items()) if g},
    }
    accuracy = {
        "overall": classification["overall"]["accuracy"] if classification["overall"] else None,
        "by_group": {g: s["accuracy"] for g, s in classification["by_group"].items()},
    }
    roi_share = {}
    for role in roles:
        cells = values[role]
        entry = summarise(cells.get("", []))
        entry["by_group"] = {c[2:]: summarise(v) for c, v in sorted(cells.items()) if c[:2] == "g:"}
        entry["by_class"] = {c[2:]: summarise(v) for c, v in sorted(cells.items()) if c[:2] == "c:"}
        entry["by_class_group"] = {
            c[3:]: summarise(v) for c, v in sorted(cells.items()) if c[:3] == "cg:"
        }
        roi_share[role] = entry
    return {
        "n": n,
        "accuracy": accuracy,
        "classification": classification,
        "roi_share": roi_share,
        # In manifest order, so that the order in which an engine finished them does not show.
        "flagged": [entry for _, entry in sorted(flagged, key=lambda f: f[0])],
        "verdicts": verdicts(roi_share),
        "errors": [entry for _, entry in sorted(errors, key=lambda e: e[0])],
    }


def _pct(x: float) -> str:
    """Percent without the sign: whole numbers, one decimal below 10% so small shares show."""
    return f"{100 * x:.1f}" if abs(x) < 0.1 else f"{round(100 * x)}"


def verdicts(roi_share: dict) -> list[str]:
    """Return one line per group: its main shortcut role, against the column's other groups.

    The role is the shortcut role (marker, text, ...) with the highest mean share in the
    group, or the border band when the group has no other shortcut role, e.g.
    ``site=A: 61% of saliency on `marker` (CI 57–65%) vs 4% for site=B``.
    """
    shortcut_roles = [r for r in roi_share if is_shortcut(r)]
    columns: dict[str, set[str]] = defaultdict(set)
    for role in shortcut_roles:
        for g in roi_share[role]["by_group"]:
            columns[g.split("=", 1)[0]].add(g)
    lines = []
    for col, groups in sorted(columns.items()):
        if len(groups) < 2:
            continue
        for g in sorted(groups):
            candidates = [
                (roi_share[r]["by_group"][g]["mean"], r) for r in shortcut_roles
                if r != BORDER_ROLE and g in roi_share[r]["by_group"]
                and np.isfinite(roi_share[r]["by_group"][g]["mean"])
            ]
            role = max(candidates)[1] if candidates else BORDER_ROLE
            by_group = roi_share[role]["by_group"]
            if g not in by_group:
                continue
            stats = by_group[g]
            lo, hi = stats["ci95"]
            line = (f"{g}: {_pct(stats['mean'])}% of saliency on `{role}` "
                    f"(CI {_pct(lo)}–{_pct(hi)}%)")
            rest = sorted(x for x in groups if x != g and x in by_group)
            rest_n = sum(by_group[x]["n"] for x in rest)
            if rest_n:
                rest_mean = sum(by_group[x]["mean"] * by_group[x]["n"] for x in rest) / rest_n
                other = rest[0] if len(rest) == 1 else f"the other {col} groups"
                line += f" vs {_pct(rest_mean)}% for {other}"
            else:
                line += f"; no other {col} group has a `{role}` region"
            lines.append(line)
    return lines


def _ratio(share: float, area: float) -> float:
    """Share over area fraction; NaN when the region has no area or either is unknown."""
    if not (np.isfinite(share) and np.isfinite(area)) or area <= 0.0:
        return float("nan")
    return float(share / area)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def contrasts(records: Iterable[dict], roles: Sequence[str],
              areas: dict[str, dict[str, float]]) -> dict:
    """Return, per role, enrichment overall and per group, and each group against the rest.

    Enrichment is the mean share of saliency on a role divided by the role's mean area
    fraction over the same images: 1.0 is what a map spread evenly over the image gives, 10
    means ten times the saliency its size would earn. Each group is contrasted with its
    complement, the images outside it: the difference of mean shares, with a bootstrap CI
    (:func:`engine.audit.measures.bootstrap_ci` with ``minus``).

    Parameters
    ----------
    records : iterable of dict
        Per-image records (failed images are skipped).
    roles : sequence of str
        The dataset's ROI roles (``border`` is added).
    areas : dict
        ``manifest row -> {role: fraction of the image the role covers}``; images without an
        entry count in the shares but not in the area fractions.

    Returns
    -------
    dict
        ``role -> {"area_fraction", "enrichment", "by_group": {group: {"share",
        "area_fraction", "enrichment", "vs_rest": {"diff", "ci95", "n", "n_rest"}}}}``.
    """
    roles = [*sorted(r for r in roles if r != BORDER_ROLE), BORDER_ROLE]
    done = [rec for rec in records if "error" not in rec]
    out = {}
    for role in roles:
        pairs = [(rec, rec["shares"].get(role)) for rec in done]
        pairs = [(rec, s) for rec, s in pairs if s is not None and np.isfinite(s)]
        shares = [s for _, s in pairs]
        fracs = [areas[r["row"]][role] for r, _ in pairs if role in areas.get(r["row"], {})]
        entry = {"area_fraction": _mean(fracs), "enrichment": _ratio(_mean(shares), _mean(fracs))}
        groups = sorted({g for rec, _ in pairs for g in group_keys(rec)})
        by_group = {}
        for g in groups:
            inside = [(rec, s) for rec, s in pairs if g in group_keys(rec)]
            rest = [s for rec, s in pairs if g not in group_keys(rec)]
            g_shares = [s for _, s in inside]
            g_fracs = [areas[r["row"]][role] for r, _ in inside
                       if role in areas.get(r["row"], {})]
            diff = _mean(g_shares) - _mean(rest) if rest else float("nan")
            by_group[g] = {
                "share": _mean(g_shares),
                "area_fraction": _mean(g_fracs),
                "enrichment": _ratio(_mean(g_shares), _mean(g_fracs)),
                "vs_rest": {"diff": diff, "ci95": list(bootstrap_ci(g_shares, minus=rest)),
                            "n": len(g_shares), "n_rest": len(rest)},
            }
        entry["by_group"] = by_group
        out[role] = entry
    return out


def mean_heatmaps(
    pairs: Iterable[tuple[dict, np.ndarray]], classes: Sequence[str], size: tuple[int, int]
) -> dict[tuple[str, str], tuple[np.ndarray, int]]:
    """Return the mean heatmap per (class, group), with ``"all"`` as the every-image group.

    ``pairs`` is consumed once; only one running sum per cell is held, never the maps.

    Returns
    -------
    dict
        ``(class, group) -> (mean map, count)``.
    """
    sums: dict[tuple[str, str], RunningMeanMap] = {}
    for rec, heat in pairs:
        cls = image_class(rec, classes)
        for g in ["all", *group_keys(rec)]:
            sums.setdefault((cls, g), RunningMeanMap(size)).add(heat)
    return {key: (acc.mean(), acc.count) for key, acc in sorted(sums.items())}
