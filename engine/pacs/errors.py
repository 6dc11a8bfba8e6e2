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

    @classmethod
    def some_of(cls, where: str, failed: dict[str, str], stored: list[str], total: int, *,
                path: str | None = None, fix: str | None = None) -> StoreRejected:
        """The error for a store that the PACS refused for some of its instances.

        Parameters
        ----------
        where : str
            The node as the user knows it (its address or URL), to start the message.
        failed : dict of str to str
            SOP Instance UID -> status code of each refused instance.
        stored : list of str
            SOP Instance UIDs the PACS confirmed.
        total : int
            How many instances the store sent.
        path, fix
            As for :class:`~engine.core.errors.LucidaError`.

        Returns
        -------
        StoreRejected
            With the message ``"<where> rejected k of n instances (<uid> <code>, ...)"``.
        """
        codes = ", ".join(f"{uid} {code}" for uid, code in failed.items())
        return cls(f"{where} rejected {len(failed)} of {total} instances ({codes})",
                   codes=failed, stored=stored, path=path, fix=fix)


class PacsUnreachable(PacsError):
    """A connection fault (refused, timed out, dropped): worth retrying with back-off."""
