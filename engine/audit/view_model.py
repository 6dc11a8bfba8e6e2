"""What the Audit view shows of the audits on show: lines, table rows, chart data, map grid.

The view draws; everything it draws is decided here, from the ``audit.json`` contents and the
folders an audit wrote, so the same numbers can be checked without a window. ``audits`` is
always an ordered ``{name: audit.json content}``: the first audit is the one compared with
the second. This module imports neither Qt nor torch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.audit.aggregate import is_shortcut
from engine.audit.compare import compare
from engine.audit.manifest import BORDER_ROLE

#: Columns of audit.csv shown first in the table, in order, when present.
TABLE_LEAD = ("case", "path", "label", "pred", "correct")
#: Columns of audit.csv the table leaves out (internal keys).
TABLE_HIDDEN = ("row", "digest")
#: A bar: ``(value, lo, hi)``, any part None.
Bar = tuple[float | None, float | None, float | None]
#: The value of a missing bar.
NO_BAR: Bar = (None, None, None)


@dataclass(frozen=True)
class ChartData:
    """One bar chart: a title, ``(label, [bar per audit])`` entries, and what to say if empty.

    Attributes
    ----------
    title : str
        Shown above the plot.
    entries : list
        ``(label, [(value, lo, hi), ...])``, one bar per audit on show.
    series : list of str
        The audits' names when there are several (the legend), else empty.
    percent : bool
        Values are fractions shown as percentages.
    reference : float or None
        A dashed reference line (enrichment 1.0).
    empty : str
        Why there are no entries, shown in the plot instead of a blank.
    """

    title: str
    entries: list = field(default_factory=list)
    series: list = field(default_factory=list)
    percent: bool = True
    reference: float | None = None
    empty: str = ""


def num_text(x, unit: str) -> str:
    """A percentage (``%``) or a ratio (``×``), or a dash for a missing number."""
    if x is None or x != x:
        return "–"
    return f"{100 * x:.1f}%" if unit == "%" else f"{x:.1f}×"


def share_text(stats: dict) -> str:
    """``2.2% (1.9%–2.6%)`` for a share with its CI."""
    lo, hi = stats["ci95"]
    return f"{num_text(stats['mean'], '%')} ({num_text(lo, '%')}–{num_text(hi, '%')})"


def summary(audit: dict) -> str:
    """One audit in a line: images, accuracy, flagged and skipped."""
    acc = audit["accuracy"]["overall"]
    return (f"{audit['n']} images, " + (f"accuracy {acc:.1%}, " if acc is not None else "")
            + f"{len(audit['flagged'])} flagged, {len(audit['errors'])} skipped")


def _named(audits: dict[str, dict], lines) -> list[str]:
    """Prefix each ``(name, line)`` with its audit's name when several are on show."""
    return [f"{name}: {line}" if len(audits) > 1 else line for name, line in lines]


def status_line(audits: dict[str, dict]) -> str:
    """The summary of every audit on show, in one line."""
    return "; ".join(_named(audits, ((n, summary(a)) for n, a in audits.items())))


def verdict_text(audits: dict[str, dict]) -> str:
    """The audits' verdict lines, one per line."""
    lines = _named(audits, ((n, v) for n, a in audits.items() for v in a["verdicts"]))
    return "\n".join(lines) or "No groups to compare."


def default_role(roles: list[str]) -> str:
    """The region to open on: the first shortcut people look for (marker, text), else border."""
    shortcut = [r for r in roles if is_shortcut(r) and r != BORDER_ROLE]
    return shortcut[0] if shortcut else BORDER_ROLE


def comparison(audits: dict[str, dict], role: str) -> dict | None:
    """The comparison of several audits on ``role`` (:func:`engine.audit.compare.compare`)."""
    return compare(audits, role=role) if len(audits) > 1 else None


def finding(audits: dict[str, dict], role: str) -> str:
    """The comparison's one-line finding as a sentence, or empty."""
    comp = comparison(audits, role)
    return comp["finding"] + "." if comp and "finding" in comp else ""


def models_table(audits: dict[str, dict], role: str,
                 title_of: Callable[[str], str]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the one-row-per-audit table: method, share, enrichment, accuracy.

    ``title_of`` turns a method's registry key into its display title.
    """
    cols = ["model", "method", f"share on {role} (95% CI)", "enrichment", "accuracy"]
    rows = []
    for name, audit in audits.items():
        share = audit["roi_share"].get(role)
        contrast = audit.get("roi_contrast", {}).get(role, {})
        acc = audit["accuracy"]["overall"]
        rows.append([name, f"{title_of(audit['method'])} · {audit['layer']}",
                     share_text(share) if share else "–",
                     num_text(contrast.get("enrichment"), "×"),
                     "–" if acc is None else f"{acc:.1%}"])
    return cols, rows


def _share(audit: dict, role: str, group: str) -> Bar:
    entry = audit["roi_share"].get(role, {})
    s = entry if group == "all" else entry.get("by_group", {}).get(group)
    return (s["mean"], *s["ci95"]) if s else NO_BAR


def _enrichment(audit: dict, role: str, group: str) -> Bar:
    entry = audit.get("roi_contrast", {}).get(role, {})
    e = entry if group == "all" else entry.get("by_group", {}).get(group, {})
    return (e.get("enrichment"), None, None)


def _versus(audit: dict, role: str, group: str) -> Bar:
    v = audit.get("roi_contrast", {}).get(role, {}).get("by_group", {}).get(group, {})
    v = v.get("vs_rest")
    return (v["diff"], *v["ci95"]) if v else NO_BAR


def _accuracy(audit: dict, group: str) -> Bar:
    acc = audit["accuracy"]
    return (acc["overall"] if group == "all" else acc["by_group"].get(group), None, None)


def nothing_to_contrast(role: str, groups: list[str]) -> str:
    """Why no group can be set against the rest of the images with ``role``."""
    if not groups:
        return "no groups in the dataset (a column such as site): nothing to compare"
    if len(groups) == 1:
        return f"one group only ({groups[0]}): nothing to compare"
    return (f"every image with `{role}` is in {', '.join(groups)}: no other images to "
            "compare with")


def charts(audits: dict[str, dict], role: str,
           title_of: Callable[[str], str]) -> dict[str, ChartData]:
    """The four charts of ``role``: ``share``, ``enrichment``, ``contrast`` and ``accuracy``.

    The groups are those of the first audit; each entry has one bar per audit. A group with
    no other images to set it against has no contrast bar, and a contrast chart with no bar
    says why (:func:`nothing_to_contrast`).
    """
    first = next(iter(audits.values()))
    series = list(audits) if len(audits) > 1 else []
    groups = list(first["roi_share"].get(role, {}).get("by_group", {}))

    def per_group(pick, names) -> list:
        return [(g, [pick(a, g) for a in audits.values()]) for g in names]

    contrast = [(g, bars) for g, bars in per_group(lambda a, g: _versus(a, role, g), groups)
                if any(b[0] is not None for b in bars)]
    title = title_of(first["method"])
    return {
        "share": ChartData(f"Share of {title} saliency on `{role}` (95% CI)",
                           per_group(lambda a, g: _share(a, role, g), ["all", *groups]),
                           series),
        "enrichment": ChartData(
            f"Enrichment on `{role}`: share ÷ area (1.0 = as by area)",
            per_group(lambda a, g: _enrichment(a, role, g), ["all", *groups]), series,
            percent=False, reference=1.0),
        "contrast": ChartData(f"Share on `{role}`: group minus the rest (95% CI)", contrast,
                              series,
                              empty="" if contrast else nothing_to_contrast(role, groups)),
        "accuracy": ChartData("Accuracy per group",
                              per_group(_accuracy, ["all", *first["accuracy"]["by_group"]]),
                              series),
    }


def read_table(csv_path: Path) -> tuple[list[str], list[list[float | str]]]:
    """Columns and rows of ``audit.csv`` as the table shows them.

    The lead columns (:data:`TABLE_LEAD`) come first and internal keys are left out; numbers
    are floats, so that they sort as numbers, not as text.
    """
    with Path(csv_path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        cols = [c for c in TABLE_LEAD if c in fields]
        cols += [c for c in fields if c not in cols and c not in TABLE_HIDDEN]
        records = list(reader)
    return cols, [[_number_or_text(rec.get(c) or "") for c in cols] for rec in records]


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def row_image(row: dict[str, str], case_paths: dict[str, Path]) -> tuple[str, str]:
    """The file a table row opens, and otherwise why it cannot be opened.

    Parameters
    ----------
    row : dict
        The row's cells by column.
    case_paths : dict
        Case name to file, for an audit run in this application (a de-identified audit names
        its images by case only).

    Returns
    -------
    tuple of str
        ``(path, "")``, or ``("", message)``, or ``("", "")`` for a row with no image.
    """
    if row.get("path"):
        return row["path"], ""
    case = row.get("case", "")
    if case in case_paths:
        return str(case_paths[case]), ""
    if case:
        return "", (f"{case}: this de-identified audit was not run here, so its images are "
                    "unknown. Fix: run it again here, or with --keep-identifiers")
    return "", ""


@dataclass(frozen=True)
class MapCell:
    """One mean heatmap of the grid: its file and what it shows."""

    path: Path
    tooltip: str


def mean_map_grid(folders: list[tuple[str, Path]]
                  ) -> tuple[list[str], list[tuple[str, list[MapCell | None]]]]:
    """Lay out the audits' mean heatmaps: one row per class of each audit, a column per group.

    Parameters
    ----------
    folders : list of (str, Path)
        Each audit's name and its ``mean_heatmaps`` folder (files ``CLASS__GROUP.png``).

    Returns
    -------
    groups : list of str
        The column headings, ``all`` first.
    rows : list
        ``(row label, [cell or None per group])``; the label names the audit when there are
        several, so two models' maps sit one above the other.
    """
    files = {name: sorted(folder.glob("*__*.png")) for name, folder in folders}
    groups = sorted({f.stem.split("__")[1] for found in files.values() for f in found},
                    key=lambda g: (g != "all", g))
    rows = []
    for name, folder in folders:
        for cls in sorted({f.stem.split("__")[0] for f in files[name]}):
            cells = []
            for g in groups:
                path = folder / f"{cls}__{g}.png"
                cells.append(MapCell(path, f"{name}: mean map of {cls}, {g}")
                             if path.is_file() else None)
            rows.append((f"{name}\n{cls}" if len(folders) > 1 else cls, cells))
    return groups, rows
