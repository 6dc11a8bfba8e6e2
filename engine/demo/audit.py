"""The demo audit: both demo models on correlated and counterfactual phantoms, side by side.

In the correlated set the site-B marker goes with ``nodule`` 95% of the time; in the
counterfactual set it goes with ``normal``. A model that learned the marker instead of the
lesion puts its saliency on the marker and loses accuracy on the counterfactual set. The
demo audit itself is :func:`engine.audit.job.run_demo_audit`; the comparison of the two audits
is :mod:`engine.audit.compare`.
"""

from __future__ import annotations

import csv
from pathlib import Path

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
