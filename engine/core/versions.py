"""Installed versions of Lucida and of the libraries every result records."""

from __future__ import annotations

import platform
from importlib import metadata

#: Libraries whose versions every report records, by distribution name.
LIBRARIES = ("torch", "torchvision", "numpy", "pydicom", "pillow", "matplotlib", "reportlab")
#: Lucida's version when it runs from a source tree that was never installed (PEP 440 local).
UNINSTALLED = "0+unknown"


def package_version(dist: str, missing: str = "not installed") -> str:
    """Return the installed version of distribution ``dist``, or ``missing``.

    Parameters
    ----------
    dist : str
        Distribution name, e.g. ``"pydicom"``.
    missing : str
        What to return when the distribution is not installed.
    """
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return missing


def app_version() -> str:
    """Return Lucida's version from its package metadata (``0+unknown`` when not installed)."""
    return package_version("lucida", UNINSTALLED)


def library_versions() -> dict[str, str]:
    """Return Python's and each recorded library's version."""
    out = {"python": platform.python_version()}
    out.update({name: package_version(name) for name in LIBRARIES})
    return out
