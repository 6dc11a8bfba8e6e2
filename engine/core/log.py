"""The log of internal errors: full tracebacks in a rotating file in the user's data folder.

The user sees one line for any failure. An internal error (a bug, not bad input) also leaves its
traceback here, so it can be attached to a bug report; the line says where the file is. The
window (Help ▸ Show log) and the command line write to the same file.

Nothing secret reaches the file: passwords in URLs, bearer tokens, ``password=``/``token=``
values and every secret registered with :func:`remember_secret` (a PACS node's token, read
from the environment) are replaced by ``***`` before a record is written.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import threading
from pathlib import Path

#: Environment variable naming the data folder (tests point it at a temporary folder).
DATA_DIR_ENV = "LUCIDA_DATA_DIR"
#: The logger every part of Lucida logs under.
LOGGER_NAME = "lucida"
#: Size of the log file before it rotates, and how many old files are kept.
MAX_BYTES = 1 << 20
BACKUPS = 3
#: The words a one-line error uses to point at the log (the window recognises them).
TRACEBACK_NOTE = "the traceback is in"

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
_SCRUBS = (
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),
    # Authorization: Bearer abc / Basic abc
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), r"\1\2***"),
    # password=abc, token: abc, "api_key": "abc"
    (re.compile(r"(?i)\b(password|passwd|token|secret|api_key|authorization)"
                r"(['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&)]+"), r"\1\2***"),
)
_secrets: set[str] = set()
_lock = threading.Lock()
_handler: logging.Handler | None = None


def user_data_dir() -> Path:
    """Return Lucida's per-user data folder (it need not exist).

    ``$LUCIDA_DATA_DIR`` if set; else ``%APPDATA%/lucida`` on Windows,
    ``~/Library/Application Support/lucida`` on macOS and ``$XDG_DATA_HOME/lucida``
    (``~/.local/share/lucida``) elsewhere.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "lucida"


def log_path() -> Path:
    """Return the log file: ``<data folder>/logs/lucida.log``."""
    return user_data_dir() / "logs" / "lucida.log"


def remember_secret(value: str) -> str:
    """Never write ``value`` to the log; return it unchanged (for use inline)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)
    return value


def scrub(text: str) -> str:
    """Return ``text`` with credentials replaced by ``***``."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class _ScrubbingFormatter(logging.Formatter):
    """Formats a record, traceback included, then removes credentials from the text."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def setup_logging() -> Path | None:
    """Send Lucida's log records to the rotating log file; return its path.

    Idempotent; when the data folder changed (``$LUCIDA_DATA_DIR``), the file follows it.

    Returns
    -------
    Path or None
        The log file, or None when it cannot be written (a read-only home, say): errors are
        then still shown, only not logged.
    """
    global _handler
    path = log_path()
    with _lock:
        if _handler is not None and Path(_handler.baseFilename) == path:
            return path
        logger = logging.getLogger(LOGGER_NAME)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        except OSError:
            return None
        handler.setFormatter(_ScrubbingFormatter(_FORMAT))
        if _handler is not None:
            logger.removeHandler(_handler)
            _handler.close()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        _handler = handler
        return path


def log_traceback(exc: BaseException, where: str) -> str:
    """Log ``exc`` with its traceback; return where the log says so, for a one-line message.

    Parameters
    ----------
    exc : BaseException
        The unexpected exception (its ``__traceback__`` is logged).
    where : str
        What was running, e.g. ``explain job`` or ``command info``.

    Returns
    -------
    str
        ``the traceback is in PATH``, or ``""`` when the log cannot be written.
    """
    path = setup_logging()
    logging.getLogger(LOGGER_NAME).error(
        "internal error in %s", where, exc_info=(type(exc), exc, exc.__traceback__))
    return f"{TRACEBACK_NOTE} {path}" if path is not None else ""


def internal_error_line(exc: BaseException, where: str) -> str:
    """Log ``exc`` (see :func:`log_traceback`) and return the one line the user sees.

    Returns
    -------
    str
        ``internal error (Type: message); the traceback is in PATH``, on one line, with any
        credentials scrubbed.
    """
    note = log_traceback(exc, where)
    line = " ".join(f"internal error ({type(exc).__name__}: {exc})".split())
    return scrub(f"{line}; {note}" if note else line)
