"""How well the model performs for each group: discrimination and calibration with bootstrap CIs.

For every class (one-vs-rest) and for every group of the dataset (``column=value``), its
complement (the labelled images outside it) and all images together:

- AUROC of the class's score;
- sensitivity, specificity, PPV and NPV at the model's operating point: the argmax for a
  softmax model, the card's threshold (0.5 when it states none) on each class's sigmoid for a
  multi-label model;
- the expected calibration error (ECE) of the class's score, with equal-width bins (15 by
  default): ``sum_b n_b / n * |frequency_b - confidence_b|``; for a softmax model also the
  top-label ECE of Guo et al. (2017), the maximum probability against being right.

Each figure has a percentile bootstrap interval (1,000 resamples, seeded). Resamples draw
patients, not images, where the manifest or the DICOM names a patient: a patient's images are
in or out of a resample together, so correlated images do not narrow the interval. An image
without a patient is its own unit.

Everything here is a function of the stored records (scores, labels, groups) and the patients'
digests (:func:`engine.audit.manifest.patient_hash`, held in memory only).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.audit.aggregate import group_keys
from engine.audit.manifest import Manifest, patient_hash

#: The per-class figures, in the order tables show them.
METRICS = ("auroc", "sensitivity", "specificity", "ppv", "npv", "ece")
#: Images resampled at once per bootstrap chunk (weights matrix entries), to bound memory.
_CHUNK = 4_000_000
RELIABILITY_PNG = "reliability.png"


@dataclass(frozen=True)
class PerformanceSettings:
    """How the figures and their intervals are computed.

    Attributes
    ----------
    bins : int
        Equal-width calibration bins on [0, 1] (bin ``b`` holds ``b/bins <= p < (b+1)/bins``;
        the last also holds 1).
    n_boot : int
        Bootstrap resamples.
    level : float
        Confidence level of the percentile intervals.
    seed : int
        Seed of the resampling (the same records give the same intervals).
    """

    bins: int = 15
    n_boot: int = 1000
    level: float = 0.95
    seed: int = 0


def operating_point(model) -> dict:
    """The rule that turns the model's scores into a decision, as ``performance.json`` states it.

    A softmax model decides by argmax; a sigmoid (multi-label) model calls each class whose
    score reaches the card's ``threshold`` (0.5 when the card gives none).
    """
    if getattr(model, "output", "softmax") == "sigmoid":
        from engine.models.findings import DEFAULT_THRESHOLD

        threshold = getattr(model, "threshold", DEFAULT_THRESHOLD)
        return {"output": "sigmoid", "rule": "threshold", "threshold": float(threshold)}
    return {"output": "softmax", "rule": "argmax"}


def row_patients(dataset: Manifest) -> dict[int, str | None]:
    """Each manifest row's patient digest: its patient column, else a DICOM file's PatientID.

    Returns
    -------
    dict
        Row index to :func:`engine.audit.manifest.patient_hash` (None when no patient is known).
    """
    import pydicom

    out: dict[int, str | None] = {}
    for row in dataset.rows:
        patient = row.patient
        if patient is None:
            try:
                ds = pydicom.dcmread(row.path, stop_before_pixels=True,
                                     specific_tags=["PatientID"])
                patient = patient_hash(str(ds.get("PatientID", "") or ""))
            except Exception:  # noqa: BLE001 - a raster or unreadable file names no patient
                patient = None
        out[row.index] = patient
    return out


# -- the figures, for one weight vector or a batch of bootstrap weight vectors -------------------

def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_auroc(score: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of ``score`` for ``truth`` with image weights (ties count one half).

    Parameters
    ----------
    score : ndarray
        (n,) scores.
    truth : ndarray
        (n,) booleans.
    weights : ndarray
        (n,) or (B, n) non-negative weights (bootstrap multiplicities).

    Returns
    -------
    ndarray
        () or (B,) AUROC; NaN where the weights leave no positive or no negative image.
    """
    if score.size == 0:
        return np.full(np.shape(weights)[:-1], np.nan)
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w = np.asarray(weights, dtype=np.float64)[..., order]
    y = truth[order]
    pos = np.add.reduceat(w * y, starts, axis=-1)
    neg = np.add.reduceat(w * ~y, starts, axis=-1)
    below = np.cumsum(neg, axis=-1) - neg
    num = (pos * (below + 0.5 * neg)).sum(-1)
    return _ratio(num, pos.sum(-1) * neg.sum(-1))


def calibration_bins(score: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each score: ``b/bins <= p < (b+1)/bins``, 1.0 in the last bin."""
    return np.clip(np.floor(np.asarray(score, dtype=np.float64) * bins), 0, bins - 1).astype(int)


def weighted_ece(score: np.ndarray, outcome: np.ndarray, weights: np.ndarray,
                 bins: int) -> np.ndarray:
    """Expected calibration error with equal-width bins: ``sum_b |sum_b(y - p)| / sum(w)``.

    Parameters
    ----------
    score : ndarray
        (n,) predicted probabilities of the outcome.
    outcome : ndarray
        (n,) booleans: the outcome happened (the class is present, the prediction was right).
    weights : ndarray
        (n,) or (B, n) image weights.
    bins : int
        Number of equal-width bins.
    """
    onehot = np.zeros((score.size, bins))
    onehot[np.arange(score.size), calibration_bins(score, bins)] = 1.0
    w = np.asarray(weights, dtype=np.float64)
    gap = (w * (outcome.astype(np.float64) - score)) @ onehot
    return _ratio(np.abs(gap).sum(-1), w.sum(-1))


def class_figures(score: np.ndarray, truth: np.ndarray, decided: np.ndarray,
                  weights: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """Every figure of :data:`METRICS` for one class, for each weight vector.

    ``decided`` is the operating point's decision (argmax is the class, or the score reaches the
    threshold). Undefined figures (no positive image for sensitivity, say) are NaN.
    """
    w = np.asarray(weights, dtype=np.float64)
    tp = (w * (truth & decided)).sum(-1)
    fn = (w * (truth & ~decided)).sum(-1)
    fp = (w * (~truth & decided)).sum(-1)
    tn = (w * (~truth & ~decided)).sum(-1)
    return {
        "auroc": weighted_auroc(score, truth, w),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "ece": weighted_ece(score, truth, w, bins),
    }


def patient_weights(units: np.ndarray, n_boot: int, rng: np.random.Generator,
                    ) -> Iterable[np.ndarray]:
    """Bootstrap weights of images, in chunks: each resample draws units (patients).

    Parameters
    ----------
    units : ndarray
        (n,) unit index of each image, ``0 .. m-1``; the images of one unit always share their
        weight (how often their patient was drawn).
    n_boot : int
        Resamples in all.
    rng : numpy.random.Generator
        Source of the draws.

    Yields
    ------
    ndarray
        (b, n) weights, ``b`` resamples at a time.
    """
    m = int(units.max()) + 1 if units.size else 0
    step = max(1, _CHUNK // max(units.size, m, 1))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        draws = rng.integers(0, m, size=(b, m)) + m * np.arange(b)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * m).reshape(b, m)
        yield counts[:, units].astype(np.float64)


# -- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Labelled:
    """The labelled images an audit scored, as arrays (rows in manifest order)."""

    scores: np.ndarray  # (n, K) probabilities
    truth: np.ndarray  # (n, K) booleans: the class is (one of) the image's label(s)
    decided: np.ndarray  # (n, K) booleans: the operating point calls the class
    groups: list[list[str]]  # ``column=value`` groups of each image
    units: np.ndarray  # (n,) resampling unit (patient, or the image itself)
    patients_known: int  # images whose patient is known


def _label_classes(rec: dict, classes: Sequence[str]) -> list[int] | None:
    """The classes an image's label names: one for softmax labels, ``a|b`` for several."""
    # Imported here: the audit's readers (the view model) load this module without torch.
    from engine.audit.loading import label_set

    if rec.get("label_index") is not None:
        return [int(rec["label_index"])]
    return label_set(rec.get("label") or None, classes) or None


def labelled(records: Iterable[dict], classes: Sequence[str], point: dict,
             patients: Mapping[int, str | None]) -> Labelled:
    """Collect the labelled, successfully scored records as arrays (see :class:`Labelled`)."""
    rows = []
    for rec in records:
        if "error" in rec:
            continue
        found = _label_classes(rec, classes)
        if found is not None:
            rows.append((rec["row"], rec, found))
    rows.sort(key=lambda r: r[0])  # engines finish images in any order; the table must not show it
    k = len(classes)
    scores = np.array([r[1]["scores"] for r in rows], dtype=np.float64).reshape(len(rows), k)
    truth = np.zeros((len(rows), k), dtype=bool)
    for i, (_, _, found) in enumerate(rows):
        truth[i, found] = True
    if point["rule"] == "threshold":
        decided = scores >= point["threshold"]
    else:
        decided = np.zeros_like(truth)
        decided[np.arange(len(rows)), scores.argmax(1) if len(rows) else []] = True
    keys = [patients.get(row) or f"image:{row}" for row, _, _ in rows]
    index = {key: i for i, key in enumerate(sorted(set(keys)))}
    units = np.array([index[key] for key in keys], dtype=np.int64)
    known = sum(1 for row, _, _ in rows if patients.get(row))
    return Labelled(scores, truth, decided, [group_keys(rec) for _, rec, _ in rows], units, known)


def _interval(values: np.ndarray, level: float) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [float("nan"), float("nan")]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def cell(data: Labelled, members: np.ndarray, classes: Sequence[str], point: dict,
         settings: PerformanceSettings) -> dict:
    """The figures of one set of images (a group, its complement, everything), with intervals.

    Parameters
    ----------
    data : Labelled
        Every labelled image.
    members : ndarray
        (n,) booleans: the images of this cell.
    classes : sequence of str
        Class names.
    point : dict
        :func:`operating_point` of the model.
    settings : PerformanceSettings
        Bins and bootstrap.

    Returns
    -------
    dict
        ``{"n", "patients", "by_class": {class: {"n_pos", "n_neg", metric: {"value",
        "ci95"}}}}`` and, for a softmax model, ``"ece_top_label"``.
    """
    scores, truth, decided = data.scores[members], data.truth[members], data.decided[members]
    _, units = np.unique(data.units[members], return_inverse=True)
    n = int(members.sum())
    ones = np.ones(n)
    point_figures, boot = [], []
    top = point["rule"] == "argmax"
    targets = [(scores[:, c], truth[:, c], decided[:, c]) for c in range(len(classes))]
    if top and n:
        confidence = scores.max(1)
        right = truth[np.arange(n), scores.argmax(1)]
    for score, y, d in targets:
        point_figures.append(class_figures(score, y, d, ones, settings.bins))
        boot.append({m: [] for m in METRICS})
    top_boot = []
    if n:
        rng = np.random.default_rng(settings.seed)
        for w in patient_weights(units, settings.n_boot, rng):
            for c, (score, y, d) in enumerate(targets):
                for m, v in class_figures(score, y, d, w, settings.bins).items():
                    boot[c][m].append(v)
            if top:
                top_boot.append(weighted_ece(confidence, right, w, settings.bins))
    by_class = {}
    for c, name in enumerate(classes):
        entry = {"n_pos": int(truth[:, c].sum()), "n_neg": int((~truth[:, c]).sum())}
        for m in METRICS:
            values = np.concatenate(boot[c][m]) if boot[c][m] else np.array([])
            entry[m] = {"value": float(point_figures[c][m]),
                        "ci95": _interval(values, settings.level)}
        by_class[name] = entry
    out = {"n": n, "patients": int(units.max()) + 1 if n else 0, "by_class": by_class}
    if top:
        value = float(weighted_ece(confidence, right, ones, settings.bins)) if n else math.nan
        values = np.concatenate(top_boot) if top_boot else np.array([])
        out["ece_top_label"] = {"value": value, "ci95": _interval(values, settings.level)}
    return out


def reliability(data: Labelled, members: np.ndarray, classes: Sequence[str],
                bins: int) -> dict:
    """Per class, each bin's mean score (confidence), frequency of the class and count."""
    out = {}
    for c, name in enumerate(classes):
        score, y = data.scores[members, c], data.truth[members, c]
        b = calibration_bins(score, bins)
        count = np.bincount(b, minlength=bins)
        out[name] = {
            "count": count.tolist(),
            "confidence": _ratio(np.bincount(b, score, bins), count).tolist(),
            "frequency": _ratio(np.bincount(b, y.astype(float), bins), count).tolist(),
        }
    return out


def performance(records: Iterable[dict], classes: Sequence[str], point: dict,
                patients: Mapping[int, str | None],
                settings: PerformanceSettings | None = None) -> dict:
    """The performance table of an audit: overall, and per group against its complement.

    Parameters
    ----------
    records : iterable of dict
        The audit's per-image records (scores, label, groups); failed and unlabelled images are
        left out.
    classes : sequence of str
        The model's classes.
    point : dict
        :func:`operating_point` of the model.
    patients : mapping
        Manifest row to patient digest (:func:`row_patients`), None when unknown.
    settings : PerformanceSettings, optional
        Bins and bootstrap (the defaults when None).

    Returns
    -------
    dict
        ``performance.json``: the settings, ``overall``, ``by_group`` (each group with its
        ``complement``) and ``reliability`` (overall, per group).
    """
    settings = settings or PerformanceSettings()
    data = labelled(records, classes, point, patients)
    n = len(data.units)
    everyone = np.ones(n, dtype=bool)
    by_group, curves = {}, {"all": reliability(data, everyone, classes, settings.bins)}
    for g in sorted({g for gs in data.groups for g in gs}):
        inside = np.array([g in gs for gs in data.groups], dtype=bool)
        by_group[g] = {**cell(data, inside, classes, point, settings),
                       "complement": cell(data, ~inside, classes, point, settings)}
        curves[g] = reliability(data, inside, classes, settings.bins)
    unit = "patient" if data.patients_known else "image"
    return {
        "classes": list(classes),
        "operating_point": point,
        "calibration": {"binning": "equal-width", "bins": settings.bins},
        "bootstrap": {"method": "percentile", "resamples": settings.n_boot,
                      "level": settings.level, "seed": settings.seed, "unit": unit,
                      "images_with_patient": data.patients_known},
        "n": n,
        "overall": cell(data, everyone, classes, point, settings),
        "by_group": by_group,
        "reliability": curves,
    }


# -- what the audit folder gets ---------------------------------------------------------------

def performance_outputs(records: Iterable[dict], dataset: Manifest, model,
                        settings: PerformanceSettings | None = None,
                        ) -> tuple[dict, dict[str, bytes]]:
    """The performance table of an audit and its files, ready to publish with the others.

    Returns
    -------
    perf : dict
        :func:`performance` (``audit.json``'s ``performance`` section leaves out the curves).
    files : dict
        ``performance.json``, ``performance.csv`` and, with labelled images, the reliability
        diagram, by name.
    """
    from engine.core.jsonsafe import json_bytes, jsonable

    if getattr(model, "task", "classification") != "classification":
        records = []  # a segmentation model's scores are pixel shares, not class probabilities
    perf = jsonable(performance(records, model.classes, operating_point(model),
                                row_patients(dataset) if records else {}, settings))
    files = {"performance.json": json_bytes(perf), "performance.csv": performance_csv(perf)}
    if perf["n"]:
        files[RELIABILITY_PNG] = reliability_png(perf)
    return perf, files


def _rows(perf: dict) -> Iterable[tuple[str, str, dict, str, dict]]:
    """(group, subset, cell, class entry) for every line of the table."""
    cells = [("all", "all", perf["overall"])]
    for g, entry in perf["by_group"].items():
        cells += [(g, "group", entry), (g, "complement", entry["complement"])]
    for g, subset, c in cells:
        for name, entry in c["by_class"].items():
            yield g, subset, c, name, entry


def performance_csv(perf: dict) -> bytes:
    """``performance.csv``: one line per (group or complement, class), each figure and its CI."""
    cols = ["group", "subset", "class", "n", "patients", "n_pos", "n_neg"]
    for m in METRICS:
        cols += [m, f"{m}_lo", f"{m}_hi"]
    with io.StringIO(newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for g, subset, c, name, entry in _rows(perf):
            line = [g, subset, name, c["n"], c["patients"], entry["n_pos"], entry["n_neg"]]
            for m in METRICS:
                line += [_num(entry[m]["value"]), *map(_num, entry[m]["ci95"])]
            writer.writerow(line)
        return fh.getvalue().encode("utf-8")


def _num(x: float) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.4f}"


def reliability_png(perf: dict, max_groups: int = 8) -> bytes:
    """The reliability diagram: per class, frequency against confidence, all images and groups."""
    from matplotlib.figure import Figure

    classes = perf["classes"]
    cols = min(4, len(classes))
    rows = math.ceil(len(classes) / cols)
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows), dpi=110)
    axes = fig.subplots(rows, cols, squeeze=False)
    names = ["all", *list(perf["reliability"])[1:max_groups + 1]]
    for k, cls in enumerate(classes):
        ax = axes[k // cols][k % cols]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for name in names:
            curve = perf["reliability"][name][cls]
            x = np.array(curve["confidence"], dtype=float)
            y = np.array(curve["frequency"], dtype=float)
            keep = np.isfinite(x) & np.isfinite(y)
            ax.plot(x[keep], y[keep], marker="o", ms=3, lw=1.6 if name == "all" else 0.9,
                    color="black" if name == "all" else None, label=name)
        ece = perf["overall"]["by_class"][cls]["ece"]["value"]
        ax.set_title(f"{cls} (ECE {_dec(ece, 3)})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean score in bin", fontsize=7)
        ax.set_ylabel("fraction positive", fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.legend(fontsize=6, loc="upper left")
    for k in range(len(classes), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"Reliability ({perf['calibration']['bins']} equal-width bins)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def summary_lines(perf: dict) -> list[str]:
    """One line per group and class: sensitivity with its CI, against the complement's.

    For example ``site=A, nodule: sensitivity 41% (CI 33–49%) vs 96% (CI 93–99%) outside;
    AUROC 0.71 vs 0.99``.
    """
    lines = []
    for g, entry in perf["by_group"].items():
        for cls, inside in entry["by_class"].items():
            if not inside["n_pos"]:
                continue
            rest = entry["complement"]["by_class"][cls]
            s, r = inside["sensitivity"], rest["sensitivity"]
            lines.append(
                f"{g}, {cls}: sensitivity {_pct(s['value'])} (CI {_pct(s['ci95'][0])}–"
                f"{_pct(s['ci95'][1])}) vs {_pct(r['value'])} (CI {_pct(r['ci95'][0])}–"
                f"{_pct(r['ci95'][1])}) outside; AUROC {_dec(inside['auroc']['value'])} vs "
                f"{_dec(rest['auroc']['value'])}")
    return lines


def _pct(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def _dec(x: float, places: int = 2) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{places}f}"


def table_rows(perf: dict) -> list[list[str]]:
    """The report's table: group, class, n, then each figure as ``value (lo–hi)``."""
    out = [["group", "class", "n", "AUROC", "sens.", "spec.", "PPV", "NPV", "ECE"]]
    for g, subset, c, name, entry in _rows(perf):
        label = g if subset != "complement" else f"not {g}"
        out.append([label, name, str(c["n"]),
                    *[_with_ci(entry[m]) for m in METRICS]])
    return out


def _with_ci(fig: dict) -> str:
    value, (lo, hi) = fig["value"], fig["ci95"]
    if value is None or not math.isfinite(value):
        return "–"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.2f}"
    return f"{value:.2f} ({lo:.2f}–{hi:.2f})"
