"""Per-export pseudonyms: what de-identified outputs call a case instead of its file name.

One :class:`Pseudonyms` lives for one export (an ``explain`` run, an audit, a report). It hands
``case-001``, ``case-002``... to cases in the order they are first named, so outputs stay
readable and ordered without carrying a file name, a folder or a UID. Two exports of the same
case may give it different pseudonyms: that is the point.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Pseudonyms"]


class Pseudonyms:
    """Stable ``case-NNN`` names for the cases of one export.

    Parameters
    ----------
    prefix : str
        What each name starts with.
    width : int
        Least number of digits (``case-001`` for 3).
    """

    def __init__(self, prefix: str = "case", width: int = 3) -> None:
        self.prefix = prefix
        self.width = width
        self._names: dict[Hashable, str] = {}

    def name(self, key: Hashable) -> str:
        """The pseudonym of ``key`` (a :class:`engine.core.case.ContentId`, a record id...).

        The same key gets the same name for the life of this object.
        """
        if key not in self._names:
            self._names[key] = f"{self.prefix}-{len(self._names) + 1:0{self.width}d}"
        return self._names[key]

    def __len__(self) -> int:
        return len(self._names)
