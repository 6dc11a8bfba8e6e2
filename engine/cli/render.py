"""``python main.py render FILE --out OUT.png``: the image exactly as the viewer shows it."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from engine.core.errors import UsageError


def register(subparsers) -> None:
    """Add the ``render`` sub-command."""
    p = subparsers.add_parser(
        "render",
        help="write the image as the viewer shows it by default",
        description=(
            "Write one frame as 8-bit RGB, through the same display pipeline as the viewer: "
            "modality LUT, VOI LUT or window, MONOCHROME1 inversion, presentation LUT."
        ),
    )
    p.add_argument("file", metavar="FILE", help="DICOM or PNG/JPEG/TIFF/BMP file")
    p.add_argument("--out", required=True, metavar="OUT", help="output .png/.jpg/.tif/.bmp")
    p.add_argument("--frame", type=int, default=0, metavar="N", help="zero-based frame (default 0)")
    p.add_argument(
        "--window", metavar="C,W", help="window centre and width in modality units, e.g. 40,400"
    )
    p.add_argument("--invert", action="store_true", help="invert the grey scale")
    p.set_defaults(func=run)


def parse_window(text: str | None) -> tuple[float, float] | None:
    """Parse ``C,W`` into ``(center, width)``; raise UsageError on anything else."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--window {text!r} is not CENTER,WIDTH", fix="pass e.g. --window 40,400"
        ) from None
    if not width > 0:
        raise UsageError(
            f"--window width {width} must be positive", fix="pass e.g. --window 40,400"
        )
    return center, width


def run(args: argparse.Namespace) -> int:
    """Render one frame and write it; 0 on success."""
    import io

    from PIL import Image as PILImage

    from engine.core.atomic import write_atomic
    from engine.studies.image import open_image

    warnings.simplefilter("ignore")
    window = parse_window(args.window)
    out = Path(args.out)
    PILImage.init()
    image_format = PILImage.EXTENSION.get(out.suffix.lower())
    if image_format is None:
        raise UsageError(
            f"unknown image format {out.suffix or '(no suffix)'!r}",
            path=out,
            fix="end the output name in .png, .jpg, .tif or .bmp",
        )
    image = open_image(args.file)
    rgb = image.render(args.frame, window=window, invert=args.invert)
    buffer = io.BytesIO()
    try:
        PILImage.fromarray(rgb).save(buffer, format=image_format)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(
            f"cannot encode the image as {image_format} ({exc})",
            path=out,
            fix="end the output name in .png, .jpg, .tif or .bmp",
        ) from None
    # Written in full to a temporary file and renamed, so a failed write leaves nothing behind.
    write_atomic(out, buffer.getvalue())
    return 0
