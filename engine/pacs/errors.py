"""The one-line errors of talking to a PACS: which node, what happened, what to do."""

from __future__ import annotations

from engine.core.errors import LucidaError


class PacsError(LucidaError):
    """A PACS node that cannot be configured, reached, or that refused a request."""


class StoreRejected(PacsError):
    """A store the PACS answered with a failure status.

    Parameters
    ----------
    message, path, fix
        As for :class:`~engine.core.errors.LucidaError`.
    codes : dict of str to str
        SOP Instance UID -> status code the PACS gave (``0xA700``, ``HTTP 409``, ...).
    stored : list of str
        SOP Instance UIDs the PACS confirmed before or besides the rejection.
    """

    def __init__(self, message: str, *, codes: dict[str, str], stored: list[str],
                 path: str | None = None, fix: str | None = None) -> None:
        self.codes = dict(codes)
        self.stored = list(stored)
        super().__init__(message, path=path, fix=fix)


class PacsUnreachable(PacsError):
    """A connection fault (refused, timed out, dropped): worth retrying with back-off."""
