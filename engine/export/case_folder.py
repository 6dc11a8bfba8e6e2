"""The folder an export suggests for a case: a pseudonym, never a file name."""

from __future__ import annotations

from pathlib import Path

from engine.core.pseudonym import Pseudonyms

__all__ = ["free_case_folder"]


def free_case_folder(root: Path) -> str:
    """The first pseudonym (``case-001``, ``case-002``...) with no folder under ``root`` yet.

    The suggested folder names no file: a file name often names the patient. It is also one
    no earlier export used, so an export does not replace another case's files.

    Parameters
    ----------
    root : Path
        The folder the case folder goes under.

    Returns
    -------
    str
        The folder's name.
    """
    names = Pseudonyms()
    number = 0
    while True:
        number += 1
        name = names.name(number)
        if not (root / name).exists():
            return name
