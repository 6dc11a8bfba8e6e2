"""Comparing audits of several models on the same data: one table, one finding, one figure.

:func:`compare` is what the demo audit writes as ``comparison.json`` and what the Audit view's
"Compare with…" shows; :func:`write_comparison` writes it, as JSON, Markdown and a figure of
every model's mean heatmaps, from the audit folders.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from engine.audit.aggregate import mean_heatmaps
from engine.audit.outputs import heat_rgb
from engine.audit.store import HEADER, ResultStore
from engine.core.atomic import StagedFiles
from engine.core.jsonsafe import json_bytes

#: The files :func:`write_comparison` writes.
COMPARISON_FILES = ("comparison.json", "comparison.md", "comparison_mean_heatmaps.png")


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def compare(audits: dict[str, dict], role: str = "marker") -> dict:
    """Compare audits of several models on the same data.

    Parameters
    ----------
    audits : dict
        Model name to its ``audit.json`` content, in display order.
    role : str
        The region whose share of saliency is compared.

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


def comparison_grid(cells_by_model: dict[str, dict], title: str = ""):
    """Return one figure of every model's mean heatmaps: rows model × class, columns groups."""
    from matplotlib.figure import Figure

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
            ax.imshow(np.zeros((2, 2, 3), np.uint8) if cell is None else heat_rgb(cell[0]))
            if i == 0:
                ax.set_title(g, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{model}\n{cls}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _mean_cells(folder: Path, classes: list[str]) -> dict:
    """The mean heatmap per (class, group) of the audit stored in ``folder``."""
    header = json.loads((folder / HEADER).read_text())
    store = ResultStore(folder, header, resume=True)
    size = int(header["heat_size"])
    return mean_heatmaps(store.heatmaps(), classes, (size, size))


def write_comparison(folders: dict[str, str | Path], out_dir: str | Path,
                     role: str = "marker") -> dict:
    """Compare the audits in ``folders`` and write :data:`COMPARISON_FILES` into ``out_dir``.

    Parameters
    ----------
    folders : dict
        Model name to the folder its audit wrote (``audit.json``, ``run.json``, results).
    out_dir : str or Path
        Where the comparison goes.
    role : str
        The region compared.

    Returns
    -------
    dict
        What :func:`compare` returns, as written to ``comparison.json``.
    """
    audits = {name: json.loads((Path(f) / "audit.json").read_text())
              for name, f in folders.items()}
    comp = compare(audits, role)
    cells = {name: _mean_cells(Path(f), audits[name]["classes"]) for name, f in folders.items()}
    first = next(iter(audits.values()))
    figure = comparison_grid(cells, title=f"Mean {first['method']} heatmap per class × group")
    png = io.BytesIO()
    figure.savefig(png, format="png")
    files = dict(zip(COMPARISON_FILES, (json_bytes(comp), comparison_markdown(comp).encode(),
                                        png.getvalue()), strict=True))
    with StagedFiles(Path(out_dir)) as staged:
        for name, data in files.items():
            staged.add(name, data)
        staged.commit()
    return comp
