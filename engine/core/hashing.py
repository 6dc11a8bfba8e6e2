"""File digests that identify models and images in results and review files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.core.cancel import CancelToken, current_token

#: Bytes hashed between two cancel checks.
_CHUNK = 1 << 20


def sha256_file(path: str | Path, cancel: CancelToken | None = None) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks.

    Parameters
    ----------
    path : str or Path
        The file.
    cancel : CancelToken, optional
        Checked between chunks, so hashing a large file stops when its work is cancelled;
        defaults to the thread's current token (:func:`engine.core.cancel.cancel_scope`).

    Raises
    ------
    engine.core.cancel.Cancelled
        The token was cancelled while the file was read.
    """
    token = cancel or current_token()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            if token is not None:
                token.check()
            digest.update(chunk)
    return digest.hexdigest()
