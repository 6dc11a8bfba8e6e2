"""Append-only storage of per-image audit results.

Layout under the output folder:

- ``run.json``: what the run is (dataset, model SHA-256, method, layer, parameters);
  ``--resume`` refuses to continue a different run.
- ``results.jsonl``: one JSON record per image, appended and flushed per batch.
- ``heatmaps/batch_NNNNNN.npy``: the batch's downsampled heatmaps, float16 (n, S, S), written
  (atomically) before the batch's records, which point to them by file and position.

A kill can leave a heatmap file without records (ignored, its images are redone) or a torn
last line (dropped on reading, truncated before appending), so resuming loses nothing and
duplicates nothing.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.core.atomic import write_atomic
from engine.core.errors import UsageError
from engine.core.jsonsafe import json_bytes

RESULTS = "results.jsonl"
HEADER = "run.json"
HEATMAPS = "heatmaps"


class ResultStore:
    """The per-image results of one audit run in one folder.

    Parameters
    ----------
    out_dir : Path
        The audit's output folder (created if needed).
    header : dict
        JSON-able description of the run; must match the stored one when resuming.
    resume : bool
        Continue the run already in ``out_dir``; otherwise earlier results there are removed.
    """

    def __init__(self, out_dir: str | Path, header: dict, *, resume: bool = False):
        self.dir = Path(out_dir)
        self.results = self.dir / RESULTS
        self.heat_dir = self.dir / HEATMAPS
        header_path = self.dir / HEADER
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if resume and header_path.is_file():
                stored = json.loads(header_path.read_text())
                current = json.loads(json_bytes(header))
                if stored != current:
                    diff = sorted(k for k in current.keys() | stored.keys()
                                  if stored.get(k) != current.get(k))
                    raise UsageError(
                        f"the run in this folder differs ({', '.join(diff)})",
                        path=self.dir,
                        fix="resume with the same dataset, model, method and layer, "
                        "or choose another --out",
                    )
                self._repair_tail()
            else:
                self.results.unlink(missing_ok=True)
                shutil.rmtree(self.heat_dir, ignore_errors=True)
                write_atomic(header_path, json_bytes(header))
            self.heat_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot write audit results ({exc.strerror or exc})",
                path=self.dir,
                fix="choose a writable --out folder",
            ) from None
        self._next_batch = 1 + max(
            (int(p.stem.split("_")[1]) for p in self.heat_dir.glob("batch_*.npy")), default=-1
        )

    def _repair_tail(self) -> None:
        """Cut a torn last line left by a kill mid-write, so appends start on a fresh line."""
        if not self.results.is_file():
            return
        data = self.results.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.results.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def done_keys(self) -> set[str]:
        """Return the keys of every image that already has a complete record."""
        return {rec["key"] for rec in self.records()}

    def keep_only(self, keys: set[str]) -> None:
        """Drop the stored records whose key is not in ``keys`` (images changed since).

        The results file is rewritten all-or-nothing; the dropped records' heatmaps stay in
        their batch files, unreferenced.
        """
        kept = [rec for rec in self.records() if rec["key"] in keys]
        if len(kept) < sum(1 for _ in self.records()):
            write_atomic(self.results, "".join(json.dumps(rec, allow_nan=True) + "\n"
                                               for rec in kept).encode("utf-8"))

    def append_batch(self, records: list[dict], heatmaps: np.ndarray | None) -> None:
        """Store one batch: its heatmaps first, then its records, flushed to disk.

        Parameters
        ----------
        records : list of dict
            JSON-able records with a unique ``key``; records with a heatmap carry
            ``"heat_index"`` (row in ``heatmaps``), replaced here by a ``"heat"`` reference.
        heatmaps : ndarray or None
            (n, S, S) maps for the records that have one.
        """
        if heatmaps is not None and len(heatmaps):
            name = f"batch_{self._next_batch:06d}.npy"
            self._next_batch += 1
            buf = io.BytesIO()
            np.save(buf, np.asarray(heatmaps, dtype=np.float16))
            write_atomic(self.heat_dir / name, buf.getvalue())
            for rec in records:
                if "heat_index" in rec:
                    rec["heat"] = [name, rec.pop("heat_index")]
        lines = "".join(json.dumps(rec, allow_nan=True) + "\n" for rec in records)
        with self.results.open("a", encoding="utf-8") as fh:
            # Flushed per batch: a killed process keeps every batch it finished.
            fh.write(lines)
            fh.flush()

    def records(self) -> Iterator[dict]:
        """Yield each image's record once, in the order stored; torn lines are skipped."""
        if not self.results.is_file():
            return
        seen: set[str] = set()
        with self.results.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if rec.get("key") in seen:
                    continue
                seen.add(rec["key"])
                yield rec

    def heatmaps(self) -> Iterator[tuple[dict, np.ndarray]]:
        """Yield ``(record, heatmap)`` per record with a heatmap, one batch file open at a time."""
        current_name, current = None, None
        for rec in self.records():
            ref = rec.get("heat")
            if not ref:
                continue
            name, index = ref
            if name != current_name:
                current_name = name
                current = np.load(self.heat_dir / name, mmap_mode="r")
            yield rec, np.asarray(current[index], dtype=np.float32)
