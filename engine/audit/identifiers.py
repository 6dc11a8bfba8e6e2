"""What an audit's records and outputs call an image: its content, not its file.

Records are keyed on the manifest row and the image's content digest (a SHA-256 of the file:
not an identifier), so ``--resume`` finds finished images by content, and de-identified
outputs hold no file name, folder or patient name. Error lines that quote a path have it
replaced by :data:`PLACEHOLDER`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: What a path quoted in an error line becomes in de-identified records and outputs.
PLACEHOLDER = "<image>"


def record_key(row_index: int, digest: str | None) -> str:
    """The key an image's record is stored under: its manifest row and its content digest.

    An image changed on disk since it was audited gets another key (so a resumed run redoes
    it); one that cannot be read has no digest and keeps its ``unreadable`` key.
    """
    return f"{row_index}:{digest or 'unreadable'}"


def scrub_paths(text: str, paths: Iterable[str | Path]) -> str:
    """``text`` with every spelling of ``paths`` (as given, resolved, file name) replaced.

    Parameters
    ----------
    text : str
        An error line that may quote a file.
    paths : iterable of str or Path
        The files it may quote (the image, its masks).

    Returns
    -------
    str
        The line with each path, and each file name, replaced by :data:`PLACEHOLDER`.
    """
    spellings: set[str] = set()
    for path in paths:
        p = Path(path)
        spellings |= {str(path), str(p), p.as_posix(), str(p.resolve()), p.name}
    # Longest first, so a full path goes whole before its file name is looked for.
    for spelling in sorted((s for s in spellings if s not in ("", ".")), key=len, reverse=True):
        text = text.replace(spelling, PLACEHOLDER)
    return text
