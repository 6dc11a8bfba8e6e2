"""Reading files so that a cancel reaches the read: large reads go in chunks, each checked.

pydicom and Pillow read through any object with ``read``, ``seek`` and ``tell``.
:class:`CancellableFile` is such an object: it checks its cancel token (or the thread's current
one, see :func:`engine.core.cancel.cancel_scope`) before each read, and splits a large read into
chunks, so cancelling the read of a 2 GB pixel data element stops within one chunk.
"""

from __future__ import annotations

import os

from engine.core.cancel import CancelToken, current_token

#: Largest single read between two cancel checks.
CHUNK_BYTES = 8 << 20


class CancellableFile:
    """A binary file opened for reading whose reads can be cancelled.

    pydicom re-opens a file for a deferred element with ``type(file)(filename, "rb")``, so the
    constructor takes that form and the re-opened file is cancellable too.

    Parameters
    ----------
    path : str or PathLike
        The file.
    mode : str
        Only ``"rb"``.
    cancel : CancelToken, optional
        Checked before each read; defaults to the thread's current token at the time of the
        read.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "rb", *,
                 cancel: CancelToken | None = None) -> None:
        if mode != "rb":
            raise ValueError(f"CancellableFile only reads ('rb'), not {mode!r}")
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close() or the with block
        self._cancel = cancel
        self.name = os.fspath(path)

    def __repr__(self) -> str:
        # Readers put the file in their messages (Pillow: "cannot identify image file
        # %r"): the file's name reads as it would for a path, never an object's address.
        return repr(self.name)

    def _check(self) -> None:
        token = self._cancel or current_token()
        if token is not None:
            token.check()

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all to the end when negative), checking for a cancel."""
        self._check()
        if size is not None and 0 <= size <= CHUNK_BYTES:
            return self._fh.read(size)
        chunks = []
        left = -1 if size is None or size < 0 else size
        while left != 0:
            chunk = self._fh.read(CHUNK_BYTES if left < 0 else min(left, CHUNK_BYTES))
            if not chunk:
                break
            chunks.append(chunk)
            left = left if left < 0 else left - len(chunk)
            self._check()
        return b"".join(chunks)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (Pillow's text-based formats read headers so), checking for a cancel."""
        self._check()
        return self._fh.readline(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` (see :meth:`io.IOBase.seek`)."""
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        """Return the current position."""
        return self._fh.tell()

    def readable(self) -> bool:
        """Always True: the file is open for reading."""
        return True

    def seekable(self) -> bool:
        """Always True: a regular file."""
        return True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._fh.closed

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> CancellableFile:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

