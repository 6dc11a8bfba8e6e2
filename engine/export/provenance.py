"""What a report records about how it was made: versions, method titles, timestamps."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform

from engine.core.errors import LucidaError

#: Libraries whose versions every report records, by distribution name.
LIBRARIES = ("torch", "torchvision", "numpy", "pydicom", "pillow", "matplotlib", "reportlab")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def app_version() -> str:
    """Return Lucida's version, from the installed package metadata."""
    return _version("lucida")


def library_versions() -> dict[str, str]:
    """Return Python's and each recorded library's version."""
    out = {"python": platform.python_version()}
    out.update({name: _version(name) for name in LIBRARIES})
    return out


def timestamp() -> str:
    """Return the current time as ISO 8601 with the UTC offset, to the second."""
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def method_title(name: str) -> str:
    """Return an explainer's display title (``gradcam`` -> ``Grad-CAM``), or its name.

    Parameters
    ----------
    name : str
        Registry key of the explainer.

    Returns
    -------
    str
        The registered title; the key itself when the registry does not know it.
    """
    try:
        from engine.explain.registry import registry

        return str(registry().get(name).title)
    except (ImportError, LucidaError, KeyError, AttributeError):
        return name
