"""The local retrieve cache: studies kept by UID, least recently used evicted past a size limit.

Layout: ``<folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``. A study
folder's modification time records its last use; :meth:`StudyCache.enforce` removes whole
studies, oldest first, until the cache fits its limit, never the study in use.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.pacs.config import PacsConfig

#: Environment variable naming the cache folder (overrides ``[cache] folder``).
CACHE_ENV = "LUCIDA_PACS_CACHE"
#: Environment variable giving the size limit in MB (overrides ``[cache] max_mb``).
CACHE_MB_ENV = "LUCIDA_PACS_CACHE_MB"


def _folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


class StudyCache:
    """Studies retrieved from PACS nodes, under a size limit.

    Parameters
    ----------
    folder : Path
        Where the studies live.
    max_bytes : int
        The size limit.
    """

    def __init__(self, folder: Path | str, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)

    @classmethod
    def from_config(cls, config: PacsConfig) -> StudyCache:
        """The cache the node file and environment describe.

        Folder: ``$LUCIDA_PACS_CACHE``, else ``[cache] folder``, else
        ``$XDG_CACHE_HOME/lucida/pacs`` (``~/.cache/lucida/pacs``). Limit:
        ``$LUCIDA_PACS_CACHE_MB``, else ``[cache] max_mb``.
        """
        folder = os.environ.get(CACHE_ENV) or config.cache_folder
        if not folder:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            folder = Path(base) / "lucida" / "pacs"
        try:
            max_mb = float(os.environ.get(CACHE_MB_ENV) or config.cache_max_mb)
        except ValueError:
            max_mb = config.cache_max_mb
        return cls(Path(folder).expanduser(), int(max_mb * 1024 * 1024))

    def studies(self) -> list[Path]:
        """Study folders, least recently used first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(found, key=lambda p: p.stat().st_mtime)

    def usage(self) -> int:
        """Bytes the cache holds."""
        return sum(_folder_size(p) for p in self.studies())

    def touch(self, study_dir: Path) -> None:
        """Record that a study was just used."""
        if study_dir.is_dir():
            os.utime(study_dir)

    def enforce(self, keep: Path | None = None) -> list[Path]:
        """Evict least recently used studies until the cache fits its limit.

        Parameters
        ----------
        keep : Path, optional
            A study folder never evicted (the one just retrieved or open).

        Returns
        -------
        list of Path
            The study folders removed.
        """
        sizes = [(p, _folder_size(p)) for p in self.studies()]
        total = sum(size for _, size in sizes)
        removed: list[Path] = []
        for path, size in sizes:
            if total <= self.max_bytes:
                break
            if keep is not None and path.resolve() == keep.resolve():
                continue
            shutil.rmtree(path, ignore_errors=True)
            total -= size
            removed.append(path)
        return removed
