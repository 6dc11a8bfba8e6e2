"""What an audit writes: audit.json, audit.csv, mean heatmaps and report.pdf.

Every file is built in memory and published all-or-nothing (:mod:`engine.core.atomic`), so a
failed or interrupted write never leaves a half-written audit next to the results.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.audit.aggregate import aggregate, contrasts, flag_reason, mean_heatmaps
from engine.audit.discovery import CLUSTERS_JSON, CLUSTERS_PNG, discover, report_section
from engine.audit.identifiers import scrub_paths
from engine.audit.manifest import BORDER_ROLE, Manifest, RowProblem
from engine.audit.measures import region_shares
from engine.audit.performance import RELIABILITY_PNG, performance_outputs, summary_lines, table_rows
from engine.audit.store import ResultStore
from engine.core.atomic import StagedFiles
from engine.core.errors import ExportError
from engine.core.jsonsafe import json_bytes, jsonable
from engine.core.pseudonym import Pseudonyms

MEAN_DIR = "mean_heatmaps"
GRID_NAME = "grid.png"


def _safe(name: str) -> str:
    """Return a file-name-safe version of a class or group label."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _image_shape(path: Path) -> tuple[int, int] | None:
    """(rows, columns) of an image from its header alone, or None when it cannot be read."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return im.size[1], im.size[0]
    except OSError:
        pass
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return int(ds.Rows), int(ds.Columns)
    except (OSError, AttributeError, ValueError, pydicom.errors.InvalidDicomError):
        return None


def _mask_fraction(path: Path) -> float | None:
    """Fraction of a mask file's pixels that are set, or None when it cannot be read."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return float((np.asarray(im.convert("L")) > 0).mean())
    except OSError:
        return None


def area_fractions(dataset: Manifest) -> dict[int, dict[str, float]]:
    """Return, per manifest row, the fraction of the image each of its roles covers.

    It is the share a uniform map would put on each role (so an enrichment of 1.0 means
    "as much saliency as the region's size"); an unreadable image has no entry.
    """
    out = {}
    for row in dataset.rows:
        shape = _image_shape(row.path)
        if shape is None:
            continue
        fracs = region_shares(np.ones(shape), row.boxes, border=BORDER_ROLE)
        for role, mask in row.masks.items():
            if role not in row.boxes and (frac := _mask_fraction(mask)) is not None:
                fracs[role] = frac
        out[row.index] = fracs
    return out


def problem_key(problem: RowProblem) -> str:
    """The name key of a manifest row that was rejected before it could be read."""
    return f"problem:{problem.line}:{problem.path}"


def case_names(store: ResultStore, dataset: Manifest) -> dict[str, str]:
    """Per-export pseudonyms (``case-001``...) for every record key and rejected row.

    Names follow the manifest's order; two rows with the same content (digest) share a name.
    The same store and dataset always give the same names.
    """
    items = [(rec["row"], rec["key"], rec.get("digest")) for rec in store.records()]
    items += [(p.line - 2, problem_key(p), None) for p in dataset.problems]
    names, pseudonyms = {}, Pseudonyms()
    for _, key, digest in sorted(items, key=lambda item: item[0]):
        names[key] = pseudonyms.name(digest or key)
    return names


def _problem_entry(problem: RowProblem, dataset: Manifest, names: dict[str, str],
                   keep_identifiers: bool) -> dict:
    """A rejected manifest row as ``audit.json`` lists it (its path only if kept)."""
    entry = {"case": names[problem_key(problem)]}
    if keep_identifiers:
        return {**entry, "path": problem.path, "reason": problem.one_line()}
    written = Path(problem.path)
    quoted = [written, Path(dataset.source).parent / written] if problem.path else []
    return {**entry, "reason": scrub_paths(problem.one_line(), quoted)}


def summarise_run(store: ResultStore, dataset: Manifest, model, header: dict,
                  names: dict[str, str] | None = None) -> dict:
    """Return the audit.json content for the results stored so far.

    The keys ``n``, ``model``, ``method``, ``layer``, ``accuracy``, ``roi_share`` and
    ``flagged`` follow the documented schema; ``classes``, ``classification`` (per-class recall
    and confusion, overall and per group), ``verdicts``, ``errors`` and ``dataset`` add detail.
    Images are named by ``names`` (:func:`case_names` when None); paths are listed only when
    the run kept identifiers.
    """
    names = case_names(store, dataset) if names is None else names
    keep = header["identifiers"] == "kept"
    agg = aggregate(store.records(), model.classes, dataset.roles, names)
    problems = [_problem_entry(p, dataset, names, keep) for p in dataset.problems]
    return jsonable(
        {
            "n": agg["n"],
            "model": {"name": model.name, "sha256": model.sha256},
            "method": header["method"],
            "layer": header["layer"],
            "accuracy": agg["accuracy"],
            "roi_share": agg["roi_share"],
            "flagged": agg["flagged"],
            "classes": list(model.classes),
            "classification": agg["classification"],
            "verdicts": agg["verdicts"],
            "errors": problems + agg["errors"],
            "dataset": {**header["dataset"], "rows": len(dataset.rows)
                        + len(dataset.problems)},
            "identifiers": header["identifiers"],
            "params": header["params"],
            "target": header["target"],
            # Enrichment (share over area) and each group against the rest, per role.
            "roi_contrast": contrasts(store.records(), dataset.roles, area_fractions(dataset)),
        }
    )


def audit_csv(store: ResultStore, dataset: Manifest, classes: Sequence[str],
              names: dict[str, str], keep_identifiers: bool = False) -> bytes:
    """Return audit.csv: one row per image (failed images carry their error).

    Images are named by their ``case`` pseudonym and content ``digest``; the ``path`` column
    is there only with ``keep_identifiers``.
    """
    roles = [*dataset.roles, BORDER_ROLE]
    cols = ["case", *(["path"] if keep_identifiers else []), "digest", "row", "label", "pred",
            "correct", *[f"score_{c}" for c in classes], *dataset.group_columns,
            *[f"share_{r}" for r in roles], "outside_body", "flag", "intended_use", "error"]
    with io.StringIO(newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for p in dataset.problems:
            entry = _problem_entry(p, dataset, names, keep_identifiers)
            reason = entry.pop("reason")
            writer.writerow({**entry, "row": p.line - 2 if p.line else "", "error": reason})
        for rec in store.records():
            row = {"case": names[rec["key"]], "digest": rec.get("digest") or "",
                   "row": rec["row"]}
            if keep_identifiers:
                row["path"] = rec["path"]
            if "error" in rec:
                row["error"] = rec["error"]
                writer.writerow(row)
                continue
            row.update(label=rec["label"] or "", pred=rec["pred_name"])
            if rec["label_index"] is not None:
                row["correct"] = int(rec["label_index"] == rec["pred"])
            row.update({f"score_{c}": f"{s:.4f}" for c, s in zip(classes, rec["scores"],
                                                                strict=True)})
            row.update(rec["groups"])
            for r in roles:
                share = rec["shares"].get(r)
                row[f"share_{r}"] = "" if share is None else f"{share:.4f}"
            outside = rec.get("outside_body")
            row["outside_body"] = "" if outside is None else f"{outside:.4f}"
            row["flag"] = flag_reason(rec["shares"]) or ""
            use = rec.get("intended_use") or {}
            # The badge line on a mismatch, else the status (match, or unknown without a card).
            row["intended_use"] = use.get("message", "") if use.get("status") == "mismatch" \
                else use.get("status", "")
            writer.writerow(row)
        return fh.getvalue().encode("utf-8")


def heat_rgb(heat: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """Colour a 0..1 map with a colormap, as (H, W, 3) uint8."""
    from engine.explain.colour import colormap_lut

    peak = float(np.nanmax(heat)) if heat.size else 0.0
    scaled = np.nan_to_num(heat / peak if peak > 0 else heat)
    return colormap_lut(cmap)[np.clip((scaled * 255).round(), 0, 255).astype(np.uint8)]


def grid_figure(cells: dict[tuple[str, str], tuple[np.ndarray, int]], title: str = ""):
    """Return a matplotlib Figure: classes as rows, groups as columns, each mean heatmap."""
    from matplotlib.figure import Figure

    classes = sorted({c for c, _ in cells})
    groups = sorted({g for _, g in cells}, key=lambda g: (g != "all", g))
    fig = Figure(figsize=(1.6 * len(groups) + 0.6, 1.7 * len(classes) + 0.5), dpi=110)
    axes = fig.subplots(len(classes), len(groups), squeeze=False)
    for i, cls in enumerate(classes):
        for j, g in enumerate(groups):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (cls, g) in cells:
                heat, count = cells[(cls, g)]
                ax.imshow(heat_rgb(heat))
                ax.set_title(f"{g} (n={count})", fontsize=7)
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(cls, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def mean_heatmap_pngs(store: ResultStore, classes: Sequence[str], size: int,
                      title: str = "") -> dict[str, bytes]:
    """Return the mean-heatmap files: one PNG per (class, group) and ``grid.png``, by name."""
    from PIL import Image as PILImage

    cells = mean_heatmaps(store.heatmaps(), classes, (size, size))
    files = {}
    for (cls, group), (heat, _) in cells.items():
        big = PILImage.fromarray(heat_rgb(heat)).resize((256, 256), PILImage.BILINEAR)
        files[f"{_safe(cls)}__{_safe(group)}.png"] = _png(big.save)
    if cells:
        files[GRID_NAME] = _png(grid_figure(cells, title).savefig)
    return files


def _png(save) -> bytes:
    """Return what ``save(buffer, format="png")`` writes."""
    buf = io.BytesIO()
    save(buf, format="png")
    return buf.getvalue()


def _bar_chart(entries: list[tuple[str, float, float, float]], ylabel: str, title: str):
    """Return PNG bytes of a bar chart with CI whiskers; entries are (label, mean, lo, hi)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 2.6), dpi=110)
    ax = fig.subplots()
    labels = [e[0] for e in entries]
    means = np.array([e[1] for e in entries], dtype=float)
    lo = np.array([e[2] for e in entries], dtype=float)
    hi = np.array([e[3] for e in entries], dtype=float)
    yerr = np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)])
    ax.bar(range(len(entries)), np.nan_to_num(means), yerr=yerr, capsize=3, color="#4C72B0")
    ax.set_xticks(range(len(entries)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    # Fit the axis to the bars and whiskers: a 2% share on a 0–100% axis does not show.
    top = float(np.nanmax(np.concatenate([means, hi]))) if entries else float("nan")
    ax.set_ylim(0, min(1.0, 1.2 * top) if np.isfinite(top) and top > 0 else 1.0)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig.savefig)


def audit_pdf(audit: dict, grid_png: bytes | None, reliability_png: bytes | None = None,
              discovery: list | None = None) -> bytes:
    """Return report.pdf: summary, verdicts, charts, tables, performance by group (with the
    reliability diagram), the mean-heatmap grid, ``discovery`` (the discovered clusters'
    section, reportlab flowables) and flags."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Image,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    story = [
        Paragraph("Lucida bias audit", styles["Title"]),
        Paragraph(escape(
            f"Model {audit['model']['name']} (sha256 {audit['model']['sha256'][:12]}…), "
            f"method {audit['method']}, layer {audit['layer']}, {audit['n']} images, "
            f"{len(audit['errors'])} skipped."), styles["Normal"]),
        Spacer(1, 0.3 * cm),
    ]
    acc = audit["accuracy"]
    if acc["overall"] is not None:
        story.append(Paragraph(f"Accuracy {acc['overall']:.1%} overall.", styles["Normal"]))
    story.append(Paragraph("Verdicts", styles["Heading2"]))
    for line in audit["verdicts"] or ["No group columns to compare."]:
        story.append(Paragraph(escape(line.replace("`", "")), styles["Normal"]))

    def chart(png: bytes):
        return Image(io.BytesIO(png), width=16 * cm, height=6.4 * cm)

    for role, entry in audit["roi_share"].items():
        bars = [("all", entry["mean"], *entry["ci95"])]
        bars += [(g, s["mean"], *s["ci95"]) for g, s in entry["by_group"].items()]
        bars += [(f"class {c}", s["mean"], *s["ci95"]) for c, s in entry["by_class"].items()]
        bars = [tuple(np.nan if v is None else v for v in b) for b in bars]
        story.append(chart(_bar_chart(bars, "share of saliency", f"Saliency on {role}")))
    if acc["by_group"]:
        bars = [(g, np.nan if a is None else a, np.nan, np.nan) for g, a in acc["by_group"].items()]
        if acc["overall"] is not None:
            bars.insert(0, ("all", acc["overall"], np.nan, np.nan))
        story.append(chart(_bar_chart(bars, "accuracy", "Accuracy per group")))
        rows = [["group", "accuracy", *[f"recall {c}" for c in audit["classes"]]]]
        for g, s in audit["classification"]["by_group"].items():
            rows.append([g, _fmt(s["accuracy"]), *[_fmt(s["recall"][c]) for c in audit["classes"]]])
        story.append(_table(rows, colors, TableStyle))
    perf = audit.get("performance") or {}
    if perf.get("n"):
        boot, point = perf["bootstrap"], perf["operating_point"]
        story.append(Paragraph("Performance by group", styles["Heading2"]))
        story.append(Paragraph(escape(
            f"One-vs-rest per class at the operating point ({point['rule']}"
            + (f" {point['threshold']:g}" if "threshold" in point else "") + "); "
            f"ECE with {perf['calibration']['bins']} equal-width bins; 95% percentile "
            f"bootstrap CI, {boot['resamples']} resamples by {boot['unit']}."), styles["Normal"]))
        for line in summary_lines(perf):
            story.append(Paragraph(escape(line), styles["Normal"]))
        story.append(_table(table_rows(perf), colors, TableStyle))
        if reliability_png is not None:
            story.append(Image(io.BytesIO(reliability_png), width=16 * cm, height=8 * cm,
                               kind="proportional"))
    story.append(Paragraph("Saliency share by group (95% bootstrap CI)", styles["Heading2"]))
    rows = [["role", "group", "n", "mean", "CI 95%"]]
    for role, entry in audit["roi_share"].items():
        for g, s in [("all", entry), *entry["by_group"].items()]:
            rows.append([role, g, str(s["n"]), _fmt(s["mean"]),
                         f"{_fmt(s['ci95'][0])}–{_fmt(s['ci95'][1])}"])
    story.append(_table(rows, colors, TableStyle))
    if grid_png is not None:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(grid_png)) as im:
            w, h = im.size
        story.append(Paragraph("Mean heatmaps (class × group)", styles["Heading2"]))
        scale = min(17 * cm / w, 20 * cm / h)
        story.append(Image(io.BytesIO(grid_png), width=w * scale, height=h * scale))
    story += discovery or []
    story.append(Paragraph(f"Flagged images ({len(audit['flagged'])})", styles["Heading2"]))
    for item in audit["flagged"][:40]:
        name = item.get("path", item["case"])
        story.append(Paragraph(escape(f"{name}: {item['reason'].replace('`', '')}"),
                               styles["Code"]))
    if audit["errors"]:
        story.append(Paragraph(f"Skipped ({len(audit['errors'])})", styles["Heading2"]))
        for item in audit["errors"][:40]:
            name = item.get("path", item["case"])
            story.append(Paragraph(escape(f"{name}: {item['reason']}"), styles["Code"]))
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, title="Lucida bias audit").build(story)
    return buf.getvalue()


def _fmt(x) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.1%}"


def _table(rows, colors, table_style):
    from reportlab.platypus import Table

    table = Table(rows, repeatRows=1)
    table.setStyle(table_style([
        ("FONTSIZE", (0, 0), (-1, -1), 7),
        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ]))
    return table


def write_outputs(store: ResultStore, dataset: Manifest, model, header: dict,
                  out_dir: str | Path, *, pdf: bool = True, engine: dict | None = None,
                  names: dict[str, str] | None = None, clusters: int | None = None) -> dict:
    """Write audit.json, audit.csv, performance.json/.csv, reliability.png, mean_heatmaps/,
    clusters.json, clusters.png and (optionally) report.pdf.

    ``clusters`` is the number of clusters per class of :mod:`engine.audit.discovery` (by
    default the eigengap decides).

    ``engine`` (which engine ran the audit: local or Ray, its version and worker count) is
    recorded in audit.json. Images are named by ``names`` (record key to pseudonym;
    :func:`case_names` when None), and by their paths too only when the run (``header``) kept
    identifiers.

    Returns
    -------
    dict
        The audit.json content.

    Raises
    ------
    ExportError
        If a file cannot be written.
    """
    out = Path(out_dir)
    try:
        names = case_names(store, dataset) if names is None else names
        audit = summarise_run(store, dataset, model, header, names)
        if engine is not None:
            audit["engine"] = dict(engine)
        perf, perf_files = performance_outputs(store.records(), dataset, model)
        # audit.json carries the table; performance.json the reliability curves too.
        audit["performance"] = {k: v for k, v in perf.items() if k != "reliability"}
        heatmaps = mean_heatmap_pngs(store, model.classes, header["heat_size"],
                                     title=f"{model.name} · {header['method']}")
        found = discover(store, model.classes, names, k=clusters,
                         keep_identifiers=header["identifiers"] == "kept",
                         title=f"{model.name} · {header['method']} · clusters")
        files = {"audit.json": json_bytes(audit),
                 "audit.csv": audit_csv(store, dataset, model.classes, names,
                                        header["identifiers"] == "kept"), **perf_files,
                 CLUSTERS_JSON: json_bytes(found.clusters)}
        if found.figure is not None:
            files[CLUSTERS_PNG] = found.figure
        if pdf:
            files["report.pdf"] = audit_pdf(audit, heatmaps.get(GRID_NAME),
                                            perf_files.get(RELIABILITY_PNG),
                                            report_section(found.clusters, found.figure))
    except OSError as exc:
        raise ExportError(f"cannot write the audit ({exc})", path=out,
                          fix="choose a writable --out folder") from None
    with StagedFiles(out / MEAN_DIR) as staged:
        for name, data in heatmaps.items():
            staged.add(name, data)
        staged.commit()
    with StagedFiles(out) as staged:
        for name, data in files.items():
            staged.add(name, data)
        staged.commit()
    return audit
