"""Which files count as images: what an open dialog offers, and which skipped files are problems.

A folder holds more than images: a manifest, a README, a DICOMDIR, a structured report. When
such a file cannot be shown it is only *skipped*. A file the user named, or one whose name says it
is an image, that cannot be shown has *failed*: that is a problem to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Suffixes of files that are meant to be images (DICOM files often have none at all).
IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp",
                            ""})
#: Glob patterns of image files, for file dialogs.
IMAGE_PATTERNS = tuple(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES) if suffix)
#: Reasons that say a readable DICOM object simply holds no image (SR, RT plans, ECG,
#: presentation states): skipped whatever its name.
NO_IMAGE_REASONS = ("holds no image",)

FAILED, SKIPPED = "failed", "skipped"


@dataclass(frozen=True)
class Problem:
    """One file that was not opened, and why.

    Attributes
    ----------
    path : Path
    reason : str
        The engine's message (with its fix).
    severity : str
        ``failed`` (an image that cannot be shown) or ``skipped`` (not an image).
    """

    path: Path
    reason: str
    severity: str


def looks_like_image(path: str | os.PathLike) -> bool:
    """Whether a file's name says it is an image (by its suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def classify(skipped: Iterable[tuple[str | os.PathLike, str]],
             named: Iterable[str | os.PathLike] = ()) -> list[Problem]:
    """Sort the files a ``StudyTree`` skipped into failures and plain skips.

    Parameters
    ----------
    skipped : iterable of (path, reason)
        ``StudyTree.skipped``.
    named : iterable of path
        The paths the user opened: a file among them that cannot be shown has failed, whatever
        its name.

    Returns
    -------
    list of Problem
        In the order given.
    """
    named_set = {str(Path(p)) for p in named}
    problems = []
    for path, reason in skipped:
        path = Path(path)
        no_image = any(text in reason for text in NO_IMAGE_REASONS)
        failed = not no_image and (str(path) in named_set or looks_like_image(path))
        problems.append(Problem(path, reason, FAILED if failed else SKIPPED))
    return problems
