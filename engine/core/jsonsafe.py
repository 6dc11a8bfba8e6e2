"""Values made safe for strict JSON: numpy types, tuples, paths and non-finite floats."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """Return ``obj`` with numpy values, tuples and non-finite floats made JSON-safe.

    Parameters
    ----------
    obj : object
        Nested dicts, lists, numbers, strings and numpy arrays or scalars.

    Returns
    -------
    object
        Plain Python: arrays become lists, NaN and infinities become None, dict keys become
        strings, and anything else that JSON cannot hold (a path, say) becomes its string.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def json_bytes(obj: Any, *, indent: int | None = 2) -> bytes:
    """Encode ``obj`` as strict, UTF-8, newline-terminated JSON after :func:`jsonable`.

    Parameters
    ----------
    obj : object
        What :func:`jsonable` accepts.
    indent : int, optional
        Indentation; None for one line.

    Returns
    -------
    bytes
        Key order kept, non-ASCII written as is.
    """
    text = json.dumps(jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")
