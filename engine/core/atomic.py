"""All-or-nothing file writes: a failed export leaves no half-written file behind.

Every output is first written in full to a hidden temporary file in the target folder, flushed
to disk, and only then renamed over its final name with :func:`os.replace`, which is atomic on
one file system. A reader therefore sees either the old file, or the complete new one.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from engine.core.errors import ExportError

# mkstemp creates files readable by their owner only; finished files get the mode an ordinary
# write would give them. The umask can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK

_FIXES = {
    errno.ENOSPC: "free some disk space or choose another folder",
    errno.EDQUOT: "free some disk space or choose another folder",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "choose a folder on a writable disk",
    errno.ENOTDIR: "choose a folder, not a file, as the output",
}


def export_error(exc: OSError, path: Path | str, action: str) -> ExportError:
    """Turn an operating-system error into a one-line :class:`ExportError`.

    Parameters
    ----------
    exc : OSError
        The error raised while writing.
    path : Path or str
        The file or folder being written.
    action : str
        What was being done, e.g. ``"cannot write"``.

    Returns
    -------
    ExportError
        Says what failed, why (the system's reason) and what to do about it.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _FIXES.get(exc.errno or 0, "check the output folder and try again")
    return ExportError(f"{action} ({reason}); nothing was written", path=path, fix=fix)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class StagedFiles:
    """Files staged in their target folder and published together, or not at all.

    Use as a context manager: files added with :meth:`add` stay hidden temporaries until
    :meth:`commit`; leaving the block without committing (an error, a cancel) removes them.

    Parameters
    ----------
    out_dir : Path or str
        The folder the files go to; created if missing.

    Raises
    ------
    ExportError
        If the folder cannot be created.
    """

    def __init__(self, out_dir: Path | str) -> None:
        self.out_dir = Path(out_dir)
        self._staged: list[tuple[Path, Path]] = []
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ExportError(
                "the output path is not a folder; nothing was written",
                path=self.out_dir,
                fix="choose a folder, not a file, as the output",
            )
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise export_error(exc, self.out_dir, "cannot create the output folder") from exc

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()

    def add(self, name: str, data: bytes) -> Path:
        """Write ``data`` to a hidden temporary file that will become ``out_dir/name``.

        Parameters
        ----------
        name : str
            The final file name (no folders).
        data : bytes
            The complete file contents.

        Returns
        -------
        Path
            The final path the file will have after :meth:`commit`.

        Raises
        ------
        ExportError
            If the temporary file cannot be written in full; it is removed first.
        """
        final = self.out_dir / name
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.out_dir)
        except OSError as exc:
            raise export_error(exc, final, "cannot write") from exc
        tmp_path = Path(tmp)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, _FILE_MODE)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            tmp_path.unlink(missing_ok=True)
            raise export_error(exc, final, "cannot write") from exc
        self._staged.append((tmp_path, final))
        return final

    def commit(self) -> list[Path]:
        """Rename every staged file to its final name.

        Returns
        -------
        list of Path
            The files written, in the order they were added.

        Raises
        ------
        ExportError
            If a rename fails; files not yet renamed are removed.
        """
        done: list[Path] = []
        while self._staged:
            tmp, final = self._staged[0]
            try:
                os.replace(tmp, final)
            except OSError as exc:
                self.discard()
                raise export_error(exc, final, "cannot write") from exc
            self._staged.pop(0)
            done.append(final)
        return done

    def discard(self) -> None:
        """Remove every staged temporary file that has not been committed."""
        for tmp, _final in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()


def write_atomic(path: Path | str, data: bytes) -> Path:
    """Write one file all-or-nothing.

    Parameters
    ----------
    path : Path or str
        Final file path; its folder is created if missing.
    data : bytes
        The complete file contents.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ExportError
        If the file cannot be written; no partial file is left.
    """
    path = Path(path)
    with StagedFiles(path.parent) as staged:
        staged.add(path.name, data)
        return staged.commit()[0]
