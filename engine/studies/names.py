"""People's names as DICOM stores them (``DOE^JOHN``), written the way a person reads them."""

from __future__ import annotations


def person_name(value: object) -> str:
    """Write a DICOM Person Name (PN) for a reader: ``DOE^JOHN^A^DR^JR`` -> ``DOE, JOHN A``.

    PN components are family, given, middle, prefix and suffix, separated by ``^``; only the
    alphabetic group (before the first ``=``) is used. The family name comes first, as lists
    of patients sort by it, then a comma and the given and middle names; prefix and suffix
    are left out.

    Parameters
    ----------
    value : object
        A ``pydicom`` ``PersonName``, a string, or None.

    Returns
    -------
    str
        The readable name; ``""`` for an empty or missing one.
    """
    text = "" if value is None else str(value).split("=", 1)[0]
    parts = [p.strip() for p in text.split("^")]
    family = parts[0] if parts else ""
    given = " ".join(p for p in parts[1:3] if p)
    if family and given:
        return f"{family}, {given}"
    return family or given
