"""The demo audit: both demo models on correlated and counterfactual phantoms, side by side.

In the correlated set the site-B marker goes with ``nodule`` 95% of the time; in the
counterfactual set it goes with ``normal``. A model that learned the marker instead of the
lesion puts its saliency on the marker and loses accuracy on the counterfactual set.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from engine.demo.phantoms import CORRELATED

#: The two demo datasets: name, P(marker | nodule), seed offset. The default seed keeps them
#: apart from the phantoms the demo models were trained and validated on.
DEMO_SETS = (("correlated", CORRELATED, 0), ("counterfactual", 1.0 - CORRELATED, 1))
DEMO_MODELS = ("demo", "demo-biased")
DEMO_SEED = 5000


def build_demo_dataset(folder: Path, n: int, seed: int = DEMO_SEED, progress=None,
                       cancel=None) -> Path:
    """Generate both demo sets and return a combined manifest with a ``set`` column.

    Parameters
    ----------
    folder : Path
        Where the sets and ``manifest.csv`` are written.
    n : int
        Images per set.
    seed : int
        Seed of the correlated set (the counterfactual one uses ``seed + 1``).
    progress, cancel
        Progress callback and cancel token.
    """
    from engine.demo.files import write_demo_set

    folder.mkdir(parents=True, exist_ok=True)
    rows, header = [], None
    for k, (name, rate, offset) in enumerate(DEMO_SETS):
        sub_progress = None
        if progress is not None:
            def sub_progress(f, m="", k=k):
                progress((k + f) / len(DEMO_SETS), m)
        sub = write_demo_set(folder / name, n, seed + offset, marker_given_nodule=rate,
                             progress=sub_progress, cancel=cancel)
        with sub.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = header or [*reader.fieldnames, "set"]
            for rec in reader:
                for col in [c for c in rec if c == "path" or c.endswith("_mask")]:
                    written = Path(rec[col]) if rec[col] else None
                    if written is not None and not written.is_absolute():
                        rec[col] = (Path(name) / written).as_posix()
                rec["set"] = name
                rows.append(rec)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def compare(audits: dict[str, dict], role: str = "marker") -> dict:
    """Compare audits of several models on the same data.

    Returns
    -------
    dict
        Per model: the ``role`` share (mean, CI), border share, accuracy overall and per set;
        and, for exactly two models, ``ratio`` (second over first), whether the CIs overlap,
        and a one-line ``finding``.
    """
    table = {}
    for name, audit in audits.items():
        share = audit["roi_share"].get(role, {"mean": None, "ci95": [None, None], "n": 0})
        border = audit["roi_share"]["border"]
        by_group = audit["accuracy"]["by_group"]
        table[name] = {
            "share": share["mean"], "ci95": share["ci95"], "n": share.get("n", 0),
            "border": border["mean"], "border_ci95": border["ci95"],
            "accuracy": audit["accuracy"]["overall"],
            "accuracy_by_set": {g.split("=", 1)[1]: a for g, a in by_group.items()
                                if g.startswith("set=")},
        }
    out = {"role": role, "models": table}
    if len(table) == 2:
        (a, ta), (b, tb) = table.items()
        ratio = _num(tb["share"]) / _num(ta["share"]) if _num(ta["share"]) > 0 else math.inf
        overlap = not (_num(tb["ci95"][0]) > _num(ta["ci95"][1])
                       or _num(ta["ci95"][0]) > _num(tb["ci95"][1]))
        out.update(ratio=ratio, cis_overlap=overlap)
        out["finding"] = (
            f"{b} puts {ratio:.1f}x the saliency on `{role}` that {a} does "
            f"({_num(tb['share']):.1%} vs {_num(ta['share']):.1%}; CIs "
            f"{'overlap' if overlap else 'do not overlap'})"
        )
    return out


def comparison_markdown(comp: dict) -> str:
    """Return the comparison as a Markdown table."""
    role = comp["role"]
    sets = sorted({s for t in comp["models"].values() for s in t["accuracy_by_set"]})

    def pct(x):
        return "–" if x is None or not math.isfinite(_num(x)) else f"{100 * _num(x):.1f}%"

    head = ["model", f"saliency on `{role}` (95% CI)", "on `border` (95% CI)", "accuracy",
            *[f"accuracy, {s}" for s in sets]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in comp["models"].items():
        cells = [f"`{name}`", f"{pct(t['share'])} ({pct(t['ci95'][0])}–{pct(t['ci95'][1])})",
                 f"{pct(t['border'])} ({pct(t['border_ci95'][0])}–{pct(t['border_ci95'][1])})",
                 pct(t["accuracy"]), *[pct(t["accuracy_by_set"].get(s)) for s in sets]]
        lines.append("| " + " | ".join(cells) + " |")
    if "finding" in comp:
        lines += ["", comp["finding"] + "."]
    return "\n".join(lines) + "\n"


def comparison_grid(cells_by_model: dict[str, dict], path: Path, title: str = "") -> None:
    """Save one figure of every model's mean heatmaps: rows model × class, columns groups."""
    from matplotlib.figure import Figure

    from engine.audit.outputs import heat_rgb

    rows = [(m, c) for m, cells in cells_by_model.items() for c in sorted({k[0] for k in cells})]
    groups = sorted({k[1] for cells in cells_by_model.values() for k in cells},
                    key=lambda g: (g != "all", g))
    fig = Figure(figsize=(1.55 * len(groups) + 0.9, 1.6 * len(rows) + 0.4), dpi=110)
    axes = fig.subplots(len(rows), len(groups), squeeze=False)
    for i, (model, cls) in enumerate(rows):
        for j, g in enumerate(groups):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = cells_by_model[model].get((cls, g))
            if cell is None:
                ax.imshow(np.zeros((2, 2, 3), np.uint8))
            else:
                ax.imshow(heat_rgb(cell[0]))
            if i == 0:
                ax.set_title(g, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{model}\n{cls}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
