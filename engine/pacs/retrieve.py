"""Bring a study (or one series) from a PACS node onto the disk: progress, cancel, resume.

Every instance is written to a hidden temporary file beside its final name and renamed into
place only once it is complete (:func:`engine.core.atomic.write_atomic`), and the study tree
never opens hidden files, so a cut connection or a cancel never leaves a half-received instance
where the tree would open it. The instances already on disk are skipped when the same retrieve
runs again, which is how an interrupted retrieve resumes.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.atomic import write_atomic
from engine.core.cancel import CancelToken, ProgressFn
from engine.pacs import connect
from engine.pacs.cache import StudyCache
from engine.pacs.config import Node
from engine.pacs.errors import PacsError
from engine.pacs.query import InstanceRef

#: Instances written to disk at once.
WRITERS = 4
_UID = re.compile(r"^[0-9][0-9.]{0,63}$")


def safe_name(uid: str) -> str:
    """A file-system name for a UID; anything not shaped like a UID is hashed (no ``..``)."""
    if _UID.match(uid) and ".." not in uid:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:32]


def instance_path(root: Path, ref: InstanceRef) -> Path:
    """Where one retrieved instance lives under ``root``."""
    return (root / safe_name(ref.study_uid) / safe_name(ref.series_uid)
            / f"{safe_name(ref.sop_uid)}.dcm")


@dataclass
class RetrieveReport:
    """What one retrieve did."""

    node: str
    study_uid: str
    folder: Path
    total: int
    received: int
    already: int
    seconds: float
    evicted: list[Path] = field(default_factory=list)

    def line(self) -> str:
        """One line for the CLI and the GUI's status bar."""
        rate = self.received / self.seconds if self.seconds > 0 and self.received else 0.0
        extra = f", {self.already} already here" if self.already else ""
        return (f"retrieved {self.received} of {self.total} instances from {self.node}{extra} "
                f"in {self.seconds:.1f} s ({rate:.1f} images/s) -> {self.folder}")


def _remove_stale_parts(study_dir: Path) -> None:
    # Left by a process that died mid-write; never renamed, never opened.
    if study_dir.is_dir():
        for part in study_dir.rglob(".*.part"):
            part.unlink(missing_ok=True)


def retrieve(
    node: Node,
    study_uid: str,
    out_dir: Path | str | None = None,
    *,
    series_uid: str | None = None,
    cache: StudyCache | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    on_instance: Callable[[Path], None] | None = None,
) -> RetrieveReport:
    """Retrieve a study, or one of its series, resuming whatever is already on disk.

    Parameters
    ----------
    node : Node
        The PACS node.
    study_uid : str
        Study Instance UID.
    out_dir : Path or str, optional
        Folder to retrieve into (``out_dir/<study>/<series>/<sop>.dcm``). By default the
        cache's folder, whose size limit is then enforced after the retrieve.
    series_uid : str, optional
        Only this series.
    cache : StudyCache, optional
        The cache to use when ``out_dir`` is not given.
    progress : callable, optional
        ``progress(fraction, message)`` after every instance.
    cancel : CancelToken, optional
        Checked after every instance; complete instances stay, so a rerun resumes.
    on_instance : callable, optional
        ``on_instance(path)`` once each new instance is in place (the GUI opens it).

    Returns
    -------
    RetrieveReport

    Raises
    ------
    PacsError
        If the node cannot be reached, refuses, drops the connection, has no such study, or
        sends fewer instances than it listed.
    Cancelled
        If cancelled.
    """
    if out_dir is None and cache is None:
        raise ValueError("retrieve needs out_dir or cache")
    root = Path(out_dir) if out_dir is not None else cache.folder
    report = progress or (lambda fraction, message="": None)
    start = time.perf_counter()
    conn = connect(node)
    try:
        refs = conn.find_instances(study_uid, series_uid)
        if not refs:
            what = f"series {series_uid} of study {study_uid}" if series_uid else \
                f"study {study_uid}"
            raise PacsError(f"has no instances of {what}", path=node.label,
                            fix=f"check the UID with `python main.py pacs find {node.name}`")
        study_dir = root / safe_name(study_uid)
        _remove_stale_parts(study_dir)
        wanted = [ref for ref in refs if not instance_path(root, ref).exists()]
        already = len(refs) - len(wanted)
        missing_by_series: dict[str, int] = {}
        for ref in wanted:
            missing_by_series[ref.series_uid] = missing_by_series.get(ref.series_uid, 0) + 1
        whole = frozenset(uid for uid, n in missing_by_series.items()
                          if n == sum(1 for r in refs if r.series_uid == uid))
        received = 0
        lock = threading.Lock()
        report(already / len(refs), f"{already} of {len(refs)} instances here")

        def write(ref: InstanceRef, data: bytes) -> None:
            nonlocal received
            path = write_atomic(instance_path(root, ref), data)
            with lock:  # reports stay in order, whichever writer finishes first
                received += 1
                done = min(already + received, len(refs))
                report(done / len(refs), f"{done} of {len(refs)} instances from {node.name}")
            if on_instance is not None:
                on_instance(path)

        # Each write waits for the disk (fsync) with the GIL released: a few at once overlap
        # those waits with each other and with the network.
        writer = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="lucida-write")
        writes: list[Future] = []

        def deliver(ref: InstanceRef, data: bytes) -> None:
            writes.append(writer.submit(write, ref, data))
            backlog = [f for f in writes if not f.done()]
            if len(backlog) > 2 * WRITERS:  # bound the instances held in memory
                backlog[0].result()
            for future in writes:
                if future.done() and future.exception() is not None:
                    future.result()

        try:
            conn.fetch(wanted, deliver, cancel=cancel, whole_series=whole)
        finally:
            writer.shutdown(wait=True)
        for future in writes:
            future.result()
    finally:
        conn.close()
    missing = [ref for ref in refs if not instance_path(root, ref).exists()]
    if missing:
        raise PacsError(
            f"sent {len(refs) - len(missing)} of {len(refs)} instances of study {study_uid}",
            path=node.label, fix="run the retrieve again to fetch the rest; check the PACS's log")
    evicted: list[Path] = []
    if out_dir is None and cache is not None:
        cache.touch(study_dir)
        evicted = cache.enforce(keep=study_dir)
    return RetrieveReport(node=node.name, study_uid=study_uid, folder=study_dir,
                          total=len(refs), received=received, already=already,
                          seconds=time.perf_counter() - start, evicted=evicted)
