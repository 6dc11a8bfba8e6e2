"""Cancel tokens and progress callbacks shared by every long-running engine entry point."""

from __future__ import annotations

import threading
from collections.abc import Callable

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
