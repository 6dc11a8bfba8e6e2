"""Every byte view of an exported file where a patient identifier could hide."""

from __future__ import annotations

import base64
import functools
import re
import struct
import zlib
from pathlib import Path


def png_views(data: bytes) -> list[bytes]:
    """The PNG itself plus every text chunk, decompressed where compressed."""
    views = [data]
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"zTXt":
            views.append(zlib.decompress(body.split(b"\0", 1)[1][1:]))
        elif kind == b"iTXt":
            keyword, rest = body.split(b"\0", 1)
            compressed, rest = rest[0], rest[2:]
            text = rest.split(b"\0", 2)[2]
            views.append(zlib.decompress(text) if compressed else text)
        pos += 12 + length
    return views


def pdf_views(path: Path) -> list[bytes]:
    """The raw PDF, every stream decoded, the extracted text and the metadata, re-encoded."""
    from pypdf import PdfReader

    data = path.read_bytes()
    reader = PdfReader(path)
    views = [data]
    for num in range(1, int(reader.trailer["/Size"])):
        obj = reader.get_object(num)
        if hasattr(obj, "get_data"):
            views.append(obj.get_data())
    text = "\n".join(page.extract_text() for page in reader.pages)
    meta = "\n".join(str(v) for v in (reader.metadata or {}).values())
    for value in (text, meta):
        views += [value.encode("utf-8"), value.encode("utf-16-le"), value.encode("utf-16-be")]
    return views


def html_views(data: bytes) -> list[bytes]:
    """The page plus every embedded data-URI image and its PNG text chunks."""
    views = [data]
    for match in re.finditer(rb"data:image/png;base64,([A-Za-z0-9+/=]+)", data):
        views += png_views(base64.b64decode(match.group(1)))
    return views


@functools.lru_cache(maxsize=32)
def file_views(path: Path) -> tuple[bytes, ...]:
    """All byte views of one exported file, by its type (cached: exports are not rewritten)."""
    return tuple(_views(path))


def _views(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".pdf":
        return pdf_views(path)
    if path.suffix == ".png":
        return png_views(data)
    if path.suffix == ".html":
        return html_views(data)
    return [data]


def needles(value: str) -> list[bytes]:
    """An identifier as it could be stored: UTF-8, UTF-16 either way, ``^`` as spaces."""
    forms = {value, value.replace("^", " ")}
    return [f.encode(enc) for f in forms for enc in ("utf-8", "utf-16-le", "utf-16-be")]


def found(path: Path, value: str) -> bool:
    """Whether ``value`` occurs in any byte view of ``path``."""
    return any(n in view for view in file_views(path) for n in needles(value))
