"""What a report records about how it was made: method titles and timestamps.

Versions come from :mod:`engine.core.versions`.
"""

from __future__ import annotations

import datetime as _dt

from engine.core.errors import LucidaError


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
