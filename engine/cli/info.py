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
            "(folders are walked recursively). Nothing is decoded. A CT/MR series in a folder "
            "adds an entry of kind 'volume' with its geometry (or why it is not a volume); a "
            "NIfTI file is described as a volume."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="DICOM or PNG/JPEG/TIFF/BMP files, folders, NIfTI files")
    p.set_defaults(func=run)


def _series_volumes(folders: list[str]) -> list[dict]:
    """One entry per CT/MR series in ``folders``: its volume geometry, or why it has none."""
    from engine.studies.tree import open_paths

    if not folders:
        return []
    out = []
    tree = open_paths(folders)
    for patient in tree.patients:
        for study in patient.studies:
            for series in study.series:
                if series.volume is not None:
                    out.append(series.volume.info())
                elif series.volume_error:
                    out.append({"path": str(series.images[0].path.parent), "kind": "volume",
                                "series_instance_uid": series.uid,
                                "geometry_error": series.volume_error})
    return out


def run(args: argparse.Namespace) -> int:
    """Print the JSON; exit 1 if some of several files failed, 2 if the only one did."""
    from engine.studies.image import open_image
    from engine.studies.nifti import open_nifti
    from engine.studies.tree import expand_paths
    from engine.studies.volume import is_nifti

    def describe(path):
        return open_nifti(path).info() if is_nifti(path) else open_image(path).info()

    warnings.simplefilter("ignore")
    if len(args.files) == 1 and not Path(args.files[0]).is_dir():
        print(json.dumps(describe(args.files[0]), indent=2))
        return 0
    files, missing = expand_paths(args.files)
    if not files and missing:
        path, reason = missing[0]
        raise UsageError(reason, path=path, fix="check the path")
    entries: list[dict] = [{"path": str(p), "error": reason} for p, reason in missing]
    for path in files:
        try:
            entries.append(describe(path))
        except LucidaError as exc:
            entries.append({"path": str(path), "error": exc.one_line()})
    entries += _series_volumes([name for name in args.files if Path(name).is_dir()])
    print(json.dumps(entries, indent=2))
    failed = sum("error" in e for e in entries)
    if failed:
        print(f"{failed} of {len(entries)} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0
