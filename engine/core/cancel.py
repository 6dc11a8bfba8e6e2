"""Cancel tokens and progress callbacks shared by every long-running engine entry point.

A token is passed explicitly to the entry points that loop. Work that reads files deep inside a
library (pydicom's deferred reads, Pillow's decoders, a content hash) cannot be handed one, so a
caller also makes its token *current* for the thread with :func:`cancel_scope`; those reads then
check :func:`current_token` (see :class:`engine.core.reading.CancellableFile`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``progress(fraction, message)`` with ``fraction`` in [0, 1].
ProgressFn = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised inside engine work when its cancel token has been set."""


class CancelToken:
    """A thread-safe flag that long-running work polls between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work holding this token to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` has been called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the token has been cancelled."""
        if self._event.is_set():
            raise Cancelled()


def no_progress(fraction: float, message: str = "") -> None:
    """A progress callback that ignores its reports."""


#: The token of the work running on this thread (each thread has its own context).
_CURRENT: ContextVar[CancelToken | None] = ContextVar("lucida_cancel", default=None)


@contextmanager
def cancel_scope(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the current one of this thread while the block runs.

    Parameters
    ----------
    token : CancelToken
        Checked by every cancellable read made inside the block.
    """
    reset = _CURRENT.set(token)
    try:
        yield token
    finally:
        _CURRENT.reset(reset)


def current_token() -> CancelToken | None:
    """Return the token of the innermost :func:`cancel_scope` of this thread, or None."""
    return _CURRENT.get()
