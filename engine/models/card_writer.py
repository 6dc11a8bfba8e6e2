"""Writing model cards: the one place a card's TOML is produced.

The GUI's card dialog and the demo-model scripts describe a card as a plain dict laid out like
the file (top-level keys, then one nested dict per ``[table]``) and call :func:`write_card`,
which quotes every string as TOML requires, checks the card as :func:`~engine.models.card.read_card`
would, and writes it all-or-nothing.

Values are written as follows: ``str`` as a TOML basic string, ``bool``, ``int``, ``float``
(``repr``), :class:`decimal.Decimal` exactly as given (so ``Decimal("0.9750")`` keeps its four
decimals), lists of those, and dicts as tables. ``None`` values are left out: TOML has no null.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from engine.core.atomic import write_atomic
from engine.core.errors import ModelError
from engine.models.card import ModelCard, card_from_data

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
            "\\": "\\\\"}


class CardExists(ModelError):
    """The card file is already there and replacing it was not asked for."""


def write_card(path: str | Path, fields: Mapping, *, header: str = "",
               comments: Mapping[str, str] | None = None, overwrite: bool = False) -> ModelCard:
    """Write a model card TOML file atomically.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file to write; relative file names in ``fields`` are relative to its folder.
    fields : Mapping
        The card: top-level keys (``name``, ``architecture``, ``weights``, ``classes``, ...) and
        one dict per table (``input``, ``architecture_args``, ``intended_use``, ...).
    header : str, optional
        Comment lines written at the top of the file.
    comments : Mapping of str to str, optional
        Comment lines written just above a key or table, by dotted name (``"layers.default"``).
    overwrite : bool
        Replace an existing file; by default an existing file is left alone.

    Returns
    -------
    ModelCard
        The card as :func:`~engine.models.card.read_card` reads the written file.

    Raises
    ------
    CardExists
        ``path`` exists and ``overwrite`` is False; nothing was written.
    ModelError
        The fields do not make a valid card (e.g. an architecture without weights).
    ExportError
        The file cannot be written; no partial file is left.
    TypeError
        A value has no TOML form (e.g. a list of dicts).
    """
    path = Path(path)
    text = card_toml(fields, header=header, comments=comments)
    card = card_from_data(path.resolve(), tomllib.loads(text))
    if path.exists() and not overwrite:
        raise CardExists("a model card is already there; nothing was written", path=path,
                         fix="choose another file name, or replace it (overwrite=True)")
    write_atomic(path, text.encode("utf-8"))
    return card


def card_toml(fields: Mapping, *, header: str = "",
              comments: Mapping[str, str] | None = None) -> str:
    """Return the TOML text of a card; see :func:`write_card` for the arguments.

    Raises
    ------
    ValueError
        A comment names a key or table that ``fields`` does not have.
    TypeError
        A value has no TOML form.
    """
    comments = dict(comments or {})
    lines = _comment(header)
    _table(lines, (), fields, comments)
    if comments:
        raise ValueError(f"comments for keys the card does not have: {', '.join(comments)}")
    return "\n".join(lines) + "\n"


def _table(lines: list[str], names: tuple[str, ...], table: Mapping, comments: dict) -> None:
    for key, value in table.items():
        if value is not None and not isinstance(value, Mapping):
            lines += _comment(comments.pop(".".join((*names, key)), ""))
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            inner = (*names, key)
            if lines:
                lines.append("")
            lines += _comment(comments.pop(".".join(inner), ""))
            lines.append(f"[{'.'.join(_key(k) for k in inner)}]")
            _table(lines, inner, value, comments)


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # Control characters must be escaped in a TOML basic string; everything else is written
    # as itself (the file is UTF-8), so a Windows path keeps its backslashes, doubled.
    return '"' + "".join(
        _ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
        for c in text
    ) + '"'


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # inf and nan are spelt as TOML spells them
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"a model card cannot hold {type(value).__name__} {value!r}")
