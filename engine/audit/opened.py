"""A finished audit folder opened for browsing: checked, read, and laid out for the Audit view.

An audit writes the same folder whether it ran on the command line, on Ray or in the window:
``audit.json`` and ``audit.csv``, and, from audits that found them, ``clusters.json``
(:mod:`engine.audit.discovery`) and ``performance.json`` (:mod:`engine.audit.performance`).
:func:`open_audit` checks such a folder and says in one line what is wrong with one that is
not; the functions below lay out the cluster browser (the clusters' mean maps per class, the
exemplars of a cluster) and the performance table. This module imports neither Qt nor torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audit.discovery import CLUSTERS_JSON
from engine.audit.performance import table_rows
from engine.core.errors import UsageError

AUDIT_JSON = "audit.json"
AUDIT_CSV = "audit.csv"
PERFORMANCE_JSON = "performance.json"
#: The keys of audit.json the Audit view reads.
REQUIRED = ("n", "model", "method", "layer", "accuracy", "roi_share", "flagged", "verdicts",
            "errors")
#: The fix named when a folder is not an audit.
FIX = "choose the folder an audit wrote (the one holding audit.json and audit.csv)"


@dataclass(frozen=True)
class OpenedAudit:
    """A finished audit folder, read.

    Attributes
    ----------
    folder : Path
        The audit folder.
    audit : dict
        ``audit.json``'s content.
    clusters : dict or None
        ``clusters.json``'s content, when the audit wrote one.
    performance : dict or None
        ``performance.json``'s content, when the audit wrote one.
    """

    folder: Path
    audit: dict
    clusters: dict | None = None
    performance: dict | None = None

    @property
    def spec(self) -> str:
        """The model the audit ran with, as audit.json names it (its images open with it)."""
        return self.audit["model"]["name"]


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{what} cannot be read ({type(exc).__name__})", path=path,
                         fix="run the audit again into this folder") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} holds no audit", path=path,
                         fix="run the audit again into this folder")
    return data


def _audits_inside(folder: Path) -> list[str]:
    """The audit folders directly inside ``folder`` (a demo audit writes one per model)."""
    try:
        return sorted(p.name for p in folder.iterdir() if (p / AUDIT_JSON).is_file())
    except OSError:
        return []


def open_audit(folder: str | Path) -> OpenedAudit:
    """Check and read the audit written to ``folder``.

    Raises
    ------
    UsageError
        One line naming the folder and the fix: it does not exist, holds no audit (naming the
        audits inside it, as a demo audit's folder holds one per model), or its audit.json is
        unreadable or lacks what the view shows.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UsageError("no such folder", path=folder, fix=FIX)
    if not (folder / AUDIT_JSON).is_file():
        inside = _audits_inside(folder)
        if inside:
            raise UsageError(f"not an audit folder; it holds the audits {', '.join(inside)}",
                             path=folder, fix="choose one of them")
        raise UsageError("not an audit folder (no audit.json)", path=folder, fix=FIX)
    audit = _read_json(folder / AUDIT_JSON, AUDIT_JSON)
    missing = [k for k in REQUIRED if k not in audit]
    if missing or not isinstance(audit.get("model"), dict) or "name" not in audit["model"]:
        raise UsageError(f"{AUDIT_JSON} lacks {', '.join(missing) or 'model.name'}; it was not "
                         "written by an audit", path=folder / AUDIT_JSON,
                         fix="run the audit again into this folder")
    if not (folder / AUDIT_CSV).is_file():
        raise UsageError(f"{AUDIT_CSV} is missing", path=folder,
                         fix="run the audit again with --resume into this folder")
    return OpenedAudit(folder, audit, **findings(folder))


def findings(folder: str | Path) -> dict:
    """``clusters`` and ``performance`` of the audit in ``folder``: each file's content, or
    None where the audit wrote none (an audit from before discovery, say)."""
    folder = Path(folder)
    return {key: _read_json(folder / name, name) if (folder / name).is_file() else None
            for key, name in (("clusters", CLUSTERS_JSON), ("performance", PERFORMANCE_JSON))}


# -- the cluster browser ---------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterCell:
    """One cluster in the browser's grid.

    Attributes
    ----------
    cls : str
        The class clustered.
    index : int
        The cluster's position in its class's ``clusters`` list.
    caption : str
        Two lines: the cluster and its size; its most over-represented metadata.
    tooltip : str
        Every enrichment, with p-values, and the outside-body share.
    mean_map : numpy.ndarray
        The cluster's mean map, peak 1.
    """

    cls: str
    index: int
    caption: str
    tooltip: str
    mean_map: np.ndarray


def enrichment_line(cluster: dict) -> str:
    """The cluster's most over-represented value, e.g. ``site=B 1.9× (p adj 0.002)``.

    A value that is not significant after correction is marked so; a cluster with none says so.
    """
    if not cluster.get("enriched"):
        return "no metadata over-represented"
    e = cluster["enriched"][0]
    line = (f"{e['attribute']}={e['value']} {e['enrichment']:.1f}× "
            f"(p adj {e['p_adjusted']:.2g})")
    return line if e["significant"] else line + ", n.s."


def _tooltip(cls: str, cluster: dict) -> str:
    lines = [f"{cls}, cluster {cluster['id']}: {cluster['size']} images "
             f"({cluster['share']:.0%} of the class)"]
    outside = cluster.get("outside_body")
    if outside and outside.get("mean") is not None:
        lo, hi = outside["ci95"]
        lines.append(f"saliency outside the body {outside['mean']:.1%} "
                     f"(CI {lo:.1%}–{hi:.1%})")
    diff = cluster.get("difference")
    if diff and diff.get("moved") is not None:
        lines.append(f"{diff['moved']:.0%} of its saliency sits elsewhere than the class's")
    for e in cluster.get("enriched", []):
        lines.append(f"{e['attribute']}={e['value']}: {e['in_cluster']}/{e['cluster_size']} "
                     f"vs {e['in_class']}/{e['class_size']} in the class, "
                     f"{e['enrichment']:.2f}×, p {e['p']:.2g}, p adj {e['p_adjusted']:.2g}"
                     + ("" if e["significant"] else " (n.s.)"))
    return "\n".join(lines)


def cluster_grid(clusters: dict) -> list[tuple[str, str, list[ClusterCell]]]:
    """The browser's grid: one row per class, one cell per cluster, largest first.

    Returns
    -------
    list
        ``(class, note, cells)``; a class that was not clustered (too few images) has no cells
        and a ``note`` saying why.
    """
    rows = []
    for entry in clusters.get("classes", []):
        cells = [ClusterCell(entry["class"], i,
                             f"#{c['id']} · {c['size']} images ({c['share']:.0%})\n"
                             + enrichment_line(c),
                             _tooltip(entry["class"], c),
                             np.asarray(c["mean_map"], dtype=np.float32))
                 for i, c in enumerate(entry.get("clusters", []))]
        note = entry.get("note", "") or ("" if cells else "not clustered")
        rows.append((entry["class"], note, cells))
    return rows


def cluster_of(clusters: dict, cls: str, index: int) -> dict:
    """The ``index``-th cluster of class ``cls``."""
    entry = next(e for e in clusters["classes"] if e["class"] == cls)
    return entry["clusters"][index]


@dataclass(frozen=True)
class Exemplar:
    """A member shown for a cluster: its case, its file (when known) and a line about it."""

    case: str
    path: str
    text: str


def exemplars(cluster: dict) -> list[Exemplar]:
    """The cluster's exemplars: the members closest to its centre, then the most atypical.

    ``path`` is set when the audit kept identifiers; otherwise the view resolves the case as
    it does a table row (:func:`engine.audit.view_model.row_image`).
    """
    out = []
    for kind, word in (("central", "central"), ("atypical", "atypical")):
        for e in cluster.get("exemplars", {}).get(kind, []):
            out.append(Exemplar(e["case"], e.get("path", ""),
                                f"{e['case']} · {word} · {e['distance']:.3f}"))
    return out


def performance_table(performance: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the performance table: each group and its complement, with CIs."""
    head, *rows = table_rows(performance)
    return head, rows
