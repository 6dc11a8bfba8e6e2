"""The JSON sidecar: everything the report shows, machine-readable (``result.json``, extended)."""

from __future__ import annotations

import json


def sidecar_json(content: dict) -> bytes:
    """Encode report content as UTF-8 JSON.

    Parameters
    ----------
    content : dict
        What :func:`engine.export.content.build_content` returns.

    Returns
    -------
    bytes
        Indented, key order kept, non-ASCII written as is (UTF-8), newline-terminated.
    """
    return (json.dumps(content, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()
