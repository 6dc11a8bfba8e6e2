"""Was a received instance cut short? A half-received instance must never pass for one.

A multipart WADO-RS answer cut in the middle of a part reads, to a multipart parser, as a
shorter last part, and pydicom reads the shortened file without a word: the element that was
being received keeps the length its header declared, with fewer bytes behind it.
:func:`is_whole` looks for exactly that, in the elements as read (before any conversion), and in
the fragments of encapsulated pixel data.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_PIXELS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _fragments_whole(value: bytes, little_endian: bool) -> bool:
    # Encapsulated pixel data: items (FFFE,E000) each announcing their length.
    head = struct.Struct("<HHL" if little_endian else ">HHL")
    offset = 0
    while offset + 8 <= len(value):
        group, element, length = head.unpack_from(value, offset)
        if (group << 16 | element) != _ITEM:
            return True  # not an item: past the fragments (the delimiter was consumed)
        offset += 8 + length
    return offset == len(value)


def is_whole(ds: Dataset) -> bool:
    """Whether every top-level element of a data set read from bytes got all its bytes.

    Parameters
    ----------
    ds : pydicom.Dataset
        As pydicom read it (elements not yet converted are checked against their header).

    Returns
    -------
    bool
        False when an element holds fewer bytes than its header declared, encapsulated
        pixel data ends inside a fragment, an image has no pixel data, or the instance has
        no SOP Instance UID.
    """
    if "SOPInstanceUID" not in ds:
        return False  # pydicom gives up on some cut files and returns an empty data set
    image = "Rows" in ds or "Image Storage" in UID(str(ds.get("SOPClassUID", ""))).name
    if image and not any(k in ds for k in _PIXELS):
        return False  # an image whose pixels never came
    little = getattr(ds, "is_little_endian", True)
    if little is None:
        little = True
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)
        if not isinstance(elem, RawDataElement):
            continue
        value = elem.value or b""
        if elem.length == _UNDEFINED:
            if tag == 0x7FE00010 and not _fragments_whole(value, little):
                return False
        elif len(value) < elem.length:
            return False
    return True
