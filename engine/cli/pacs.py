"""``python main.py pacs echo|find|get``: talk to the PACS nodes of the node file.

Nodes are read from ``~/.config/lucida/pacs.toml`` (or ``$LUCIDA_PACS_CONFIG``, or
``--config``); the README's PACS section shows the format.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``pacs`` sub-command and its ``echo``, ``find`` and ``get`` actions."""
    p = subparsers.add_parser(
        "pacs", help="query and retrieve studies from a PACS (DICOMweb or DIMSE)",
        description="Talk to the PACS nodes named in ~/.config/lucida/pacs.toml "
        "(or $LUCIDA_PACS_CONFIG). Exit codes: 0 success, 2 bad input or a PACS fault, "
        "130 cancelled.",
    )
    actions = p.add_subparsers(dest="pacs_action", required=True, metavar="ACTION")

    def common(parser) -> None:
        parser.add_argument("node", metavar="NODE", help="a node name from the node file")
        parser.add_argument("--config", metavar="FILE", help="the node file to read instead")

    echo = actions.add_parser("echo", help="check a node answers (C-ECHO, or a QIDO search)")
    common(echo)
    echo.set_defaults(func=run_echo)

    find = actions.add_parser("find", help="search studies, or the series of one study")
    common(find)
    find.add_argument("--patient-id", default="", metavar="ID")
    find.add_argument("--patient-name", default="", metavar="NAME",
                      help="DICOM wildcards allowed, e.g. 'DOE^*'")
    find.add_argument("--accession", default="", metavar="NUMBER")
    find.add_argument("--modality", default="", metavar="M", help="e.g. CT, MR, CR")
    find.add_argument("--date", default="", metavar="FROM-TO",
                      help="YYYYMMDD-YYYYMMDD; either end may be left open")
    find.add_argument("--study", metavar="UID", help="list this study's series instead")
    find.add_argument("--json", action="store_true", help="print JSON instead of a table")
    find.set_defaults(func=run_find)

    get = actions.add_parser("get", help="retrieve a study or one series (resumable)")
    common(get)
    get.add_argument("study", metavar="STUDY_UID")
    get.add_argument("--series", metavar="UID", help="only this series")
    get.add_argument("--out", metavar="DIR",
                     help="folder to retrieve into (default: the cache, with its size limit)")
    get.set_defaults(func=run_get)


def _node(args):
    from engine.pacs.config import load_config

    config = load_config(args.config)
    return config, config.node(args.node)


def run_echo(args) -> int:
    """``pacs echo NODE``."""
    from engine.pacs import connect

    _config, node = _node(args)
    start = time.perf_counter()
    conn = connect(node)
    try:
        conn.echo()
    finally:
        conn.close()
    ms = (time.perf_counter() - start) * 1000.0
    print(f"{node.name}: answered ({node.protocol} {node.address}, {ms:.0f} ms)")
    return 0


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def run_find(args) -> int:
    """``pacs find NODE [filters] [--study UID] [--json]``."""
    from engine.pacs import connect
    from engine.pacs.query import StudyQuery, parse_date_range

    _config, node = _node(args)
    conn = connect(node)
    try:
        if args.study:
            series = conn.find_series(args.study)
            if args.json:
                print(json.dumps([s.as_dict() for s in series], indent=2))
            else:
                rows = [[s.series_uid, s.modality, "" if s.number is None else str(s.number),
                         s.description, "" if s.instance_count is None
                         else str(s.instance_count)] for s in series]
                print(_table(rows, ["SERIES UID", "MODALITY", "NUMBER", "DESCRIPTION",
                                    "INSTANCES"]))
            return 0
        query = StudyQuery(patient_id=args.patient_id, patient_name=args.patient_name,
                           accession=args.accession, modality=args.modality,
                           date=parse_date_range(args.date) if args.date else "")
        studies = conn.find_studies(query)
    finally:
        conn.close()
    if args.json:
        print(json.dumps([s.as_dict() for s in studies], indent=2))
    else:
        rows = [[s.patient_id, s.patient_name, s.date, "\\".join(s.modalities),
                 "" if s.series_count is None else str(s.series_count), s.description,
                 s.study_uid] for s in studies]
        print(_table(rows, ["PATIENT ID", "NAME", "DATE", "MODALITY", "SERIES",
                            "DESCRIPTION", "STUDY UID"]))
    return 0


class _Progress:
    """Progress on stderr: one updating line on a terminal, a line per tenth otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.tty:
            print(f"\r{fraction * 100:5.1f}%  {message}", end="", file=sys.stderr, flush=True)
            return
        tenth = int(fraction * 10)
        if tenth > self.shown:
            self.shown = tenth
            print(f"{fraction * 100:5.1f}%  {message}", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def run_get(args) -> int:
    """``pacs get NODE STUDY_UID [--series UID] [--out DIR]``."""
    from engine.core.cancel import Cancelled, CancelToken
    from engine.pacs.cache import StudyCache
    from engine.pacs.retrieve import retrieve, safe_name

    config, node = _node(args)
    cache = None if args.out else StudyCache.from_config(config)
    root = Path(args.out) if args.out else cache.folder
    cancel = CancelToken()
    progress = _Progress()
    try:
        report = retrieve(node, args.study, args.out, series_uid=args.series, cache=cache,
                          progress=progress, cancel=cancel)
    except (KeyboardInterrupt, Cancelled):
        cancel.cancel()
        progress.end()
        print(f"cancelled: the instances received so far are kept in "
              f"{root / safe_name(args.study)}; run the same command to resume",
              file=sys.stderr)
        return 130
    except BaseException:
        progress.end()  # the error line starts on a line of its own
        raise
    progress.end()
    print(report.line())
    return 0
