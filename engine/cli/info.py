"""``python main.py info FILE...``: JSON describing each image file."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from engine.core.errors import LucidaError, UsageError


def register(subparsers) -> None:
    """Add the ``info`` sub-command."""
    p = subparsers.add_parser(
        "info",
        help="print JSON with modality, photometric, size, frames, window presets, transfer syntax",
        description=(
            "Print JSON describing image files: one object for one file, a list for several "
            "(folders are walked recursively). Nothing is decoded."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="DICOM or PNG/JPEG/TIFF/BMP files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the JSON; exit 1 if some of several files failed, 2 if the only one did."""
    from engine.studies.image import open_image
    from engine.studies.tree import expand_paths

    warnings.simplefilter("ignore")
    if len(args.files) == 1 and not Path(args.files[0]).is_dir():
        print(json.dumps(open_image(args.files[0]).info(), indent=2))
        return 0
    files, missing = expand_paths(args.files)
    if not files and missing:
        path, reason = missing[0]
        raise UsageError(reason, path=path, fix="check the path")
    entries: list[dict] = [{"path": str(p), "error": reason} for p, reason in missing]
    for path in files:
        try:
            entries.append(open_image(path).info())
        except LucidaError as exc:
            entries.append({"path": str(path), "error": exc.one_line()})
    print(json.dumps(entries, indent=2))
    failed = sum("error" in e for e in entries)
    if failed:
        print(f"{failed} of {len(entries)} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0
