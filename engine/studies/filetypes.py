"""Which files count as images: what an open dialog offers, and which skipped files are problems.

A folder holds more than images: a manifest, a README, a DICOMDIR, a structured report. When
such a file cannot be shown it is only *skipped*. A file the user named, or one whose name says it
is an image, that cannot be shown has *failed*: that is a problem to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from engine.studies.tree import FAILED, SKIPPED, FileProblem

__all__ = ["FAILED", "IMAGE_PATTERNS", "IMAGE_SUFFIXES", "SKIPPED", "classify",
           "looks_like_image"]

#: Suffixes of files that are meant to be images (DICOM files often have none at all).
IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp",
                            ""})
#: Glob patterns of image files, for file dialogs.
IMAGE_PATTERNS = tuple(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES) if suffix)
#: Reasons that say a readable DICOM object holds no image (SR, RT plans, ECG, presentation
#: states): skipped whatever its name. (The engine raises ``NotAnImage`` for these and for
#: files that are not DICOM at all; only the reason tells them apart.)
NO_IMAGE_REASONS = ("holds no image",)


def looks_like_image(path: str | os.PathLike) -> bool:
    """Whether a file's name says it is an image (by its suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def classify(problems: Iterable[FileProblem],
             named: Iterable[str | os.PathLike] = ()) -> list[FileProblem]:
    """Decide which of the files a ``StudyTree`` did not open are failures.

    The tree already calls an image it cannot read *failed* and a file that holds no image
    *skipped*. Two skipped files still fail here: a file the user named (they meant to open
    it), and one whose name says it is an image but that is not DICOM at all (a ``.dcm`` full
    of garbage is broken, not a README). A readable DICOM object without pixels (a structured
    report, an RT plan) stays skipped whatever its name.

    Parameters
    ----------
    problems : iterable of FileProblem
        ``StudyTree.problems``.
    named : iterable of path
        The paths the user opened.

    Returns
    -------
    list of FileProblem
        In the order given, each with its final kind.
    """
    named_set = {str(Path(p)) for p in named}
    out = []
    for problem in problems:
        kind = problem.kind
        if kind == SKIPPED and not any(text in problem.reason for text in NO_IMAGE_REASONS):
            if str(problem.path) in named_set or looks_like_image(problem.path):
                kind = FAILED
        out.append(problem if kind == problem.kind else replace(problem, kind=kind))
    return out
