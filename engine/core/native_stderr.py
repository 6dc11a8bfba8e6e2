"""Keep what native code prints to the process's stderr away from the user.

Decoder plugins written in Rust or C++ print to file descriptor 2 directly (a Rust panic
prints its message and a backtrace before it becomes a Python exception), where Python's
``sys.stderr`` redirection cannot reach. :func:`captured_stderr` points descriptor 2 at a
temporary file for the length of a call, so a failure reaches the user as Lucida's one line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Descriptor 2 belongs to the whole process: one capture at a time.
_LOCK = threading.Lock()


@dataclass
class Captured:
    """What was written to descriptor 2 during a capture (filled in when it ends)."""

    text: str = ""


@contextmanager
def captured_stderr(replay_on_success: bool = True) -> Iterator[Captured]:
    """Capture everything written to file descriptor 2 while the block runs.

    Parameters
    ----------
    replay_on_success : bool
        Write the captured text to the real stderr when the block ends without an error;
        when it raises, the text is only kept in the yielded :class:`Captured`.

    Yields
    ------
    Captured
        Its ``text`` holds the captured output once the block has ended.

    Notes
    -----
    Other threads that write to stderr during the block are captured too, and are dropped
    with the rest if the block fails.
    """
    captured = Captured()
    with _LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield captured
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")
            if captured.text and replay_on_success and not failed:
                sys.stderr.write(captured.text)
                sys.stderr.flush()
