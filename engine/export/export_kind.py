"""Which kind of export a folder holds, recorded in its ``result.json`` under ``export``.

``{"kind": "research", "identifiers": "removed" | "kept"}`` for files written for research, or
``{"kind": "patient-study", "node": ..., "sent": true | false, ...}`` for objects filed into the
patient's study. The two are never confused: the GUI and scripts read this key.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.core.atomic import StagedFiles, write_atomic
from engine.core.errors import ExportError
from engine.core.jsonsafe import json_bytes


def record_export(folder: Path | str, record: dict) -> Path:
    """Set the ``export`` key of ``folder/result.json``, rewriting it all-or-nothing.

    Parameters
    ----------
    folder : Path or str
        A folder ``explain`` wrote.
    record : dict
        What was exported; must hold ``kind``.

    Returns
    -------
    Path
        The rewritten ``result.json``.

    Raises
    ------
    ExportError
        If ``result.json`` is missing or cannot be rewritten.
    """
    path = Path(folder) / "result.json"
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError("cannot read result.json to record the export", path=path,
                          fix="run explain again into this folder") from exc
    content["export"] = record
    return write_atomic(path, json_bytes(content))


def record_research(folder: Path | str, *, keep_identifiers: bool) -> Path:
    """Record in ``folder/result.json`` that it is a research export.

    Parameters
    ----------
    folder : Path or str
        A folder ``explain`` wrote.
    keep_identifiers : bool
        Whether identifiers were kept on purpose (``--keep-identifiers``).

    Returns
    -------
    Path
        The rewritten ``result.json``.
    """
    return record_export(folder, {"kind": "research",
                                  "identifiers": "kept" if keep_identifiers else "removed"})


def publish_research(folder: Path | str, files: list[tuple[str, bytes]], *,
                     keep_identifiers: bool) -> list[Path]:
    """Write research files beside ``folder/result.json`` together, and record the export.

    Parameters
    ----------
    folder : Path or str
        A folder ``explain`` wrote.
    files : list of (str, bytes)
        Named files, built before anything was written (so a failure writes none).
    keep_identifiers : bool
        Whether identifiers were kept on purpose.

    Returns
    -------
    list of Path
        The files written.
    """
    with StagedFiles(folder) as staged:
        for name, data in files:
            staged.add(name, data)
        written = staged.commit()
    record_research(folder, keep_identifiers=keep_identifiers)
    return written
