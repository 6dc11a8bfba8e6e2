"""``python main.py demo-data``: synthetic chest phantoms (DICOM + PNG), or with ``--3d`` chest CT
volumes (DICOM series + NIfTI), and a manifest."""

from __future__ import annotations

from pathlib import Path

from engine.core.errors import UsageError
from engine.demo.files import write_demo_set
from engine.demo.phantoms import CORRELATED

NAME = "demo-data"


def register(subparsers) -> None:
    """Add the ``demo-data`` sub-command."""
    p = subparsers.add_parser(
        NAME,
        help="write synthetic chest phantoms with ground-truth boxes and manifest.csv",
        description="Write deterministic synthetic chest radiographs (DICOM and PNG) and "
        "manifest.csv with columns path,label,site,lesion_box,marker_box. Site B images carry "
        "a marker token; by default it goes with 'nodule' in 95% of images.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=40, help="number of images (default 40)")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    p.add_argument(
        "--marker-rate", type=float, default=CORRELATED,
        help="P(marker | nodule); P(marker | normal) is 1 minus it (default 0.95; 0.5 = "
        "independent)",
    )
    p.add_argument(
        "--counterfactual", action="store_true",
        help="reverse the marker's correlation with the label (P(marker | nodule) = 1 - rate)",
    )
    p.add_argument("--format", choices=("mixed", "dicom", "png"), default="mixed",
                   help="mixed: every fourth image PNG, the rest DICOM (default)")
    p.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    p.add_argument("--3d", dest="volumes", action="store_true",
                   help="write synthetic chest CT volumes instead: one DICOM series folder "
                   "(a file per slice, in no slice order) and one NIfTI file per volume, in "
                   "HU, with a nodule in about half; --size is the slice matrix (128: "
                   "2.8 mm pixels, 512: 0.7 mm), slices are 2.5 mm apart")
    p.add_argument("--slices", type=int, default=64, help="slices per volume with --3d")
    p.add_argument("--concepts", action="store_true",
                   help="also write OUT/concepts/: marker/ (phantoms that all carry the marker) "
                   "and random_00 ... random_09/ (phantoms as drawn), the example folders of "
                   "`python main.py tcav`")
    p.set_defaults(func=run)


def run(args) -> int:
    """Write the phantoms (or volumes); print the manifest path; return 0."""
    if args.volumes:
        from engine.demo.volumes import write_volume_set

        print(write_volume_set(args.out, args.n, args.seed, size=args.size, slices=args.slices))
        return 0
    if not 0.0 <= args.marker_rate <= 1.0:
        raise UsageError(f"--marker-rate {args.marker_rate} is not a probability",
                         fix="use a value between 0 and 1")
    rate = 1.0 - args.marker_rate if args.counterfactual else args.marker_rate
    manifest = write_demo_set(
        args.out, args.n, args.seed, marker_given_nodule=rate, fmt=args.format, size=args.size
    )
    print(manifest)
    if args.concepts:
        from engine.demo.concepts import write_concepts

        print(write_concepts(args.out / "concepts"))
    return 0
