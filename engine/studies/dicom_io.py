"""Reading DICOM files: the header checked up front, then one frame's pixel data on request.

:func:`read_header` reads and checks everything but the pixel data (deferred when large), so a
file that cannot be displayed fails when it is opened, with one line naming the file and the
fix; :func:`decode_frame` decodes one frame through pydicom's pixel plugins.

pydicom reads any bytes "by force", a 2 GB file of zeros as hundreds of millions of empty
elements, for minutes. So the first bytes are looked at before pydicom: a file whose data set
cannot start there (see :func:`could_be_dicom`) is refused at once. Every read goes through
:class:`engine.core.reading.CancellableFile`, deferred pixel data included, so the read of a
large file stops when its work is cancelled.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from engine.core.errors import NotAnImage, StudyError, UsageError
from engine.core.native_stderr import captured_stderr
from engine.core.reading import CancellableFile
from engine.studies.calibration import dataset_spacing
from engine.studies.codecs import check_decoder, unsupported_error
from engine.studies.decode_errors import TRUNCATED_FIX, reraise_fatal, short_reason

#: Photometric interpretations Lucida displays; anything else is refused with a clear line.
GREY_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")
COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: Media Storage Directory Storage: a DICOMDIR.
DICOMDIR_SOP = "1.2.840.10008.1.3.10"
#: Elements that say a file read by force really is DICOM.
_KNOWN = frozenset({"SOPClassUID", "Modality", "StudyInstanceUID", "Rows", "PatientID"})
#: What pydicom warns when a file ends inside an element it is reading.
_EOF_WARNING = "End of file reached"


class DicomdirIndex(NotAnImage):
    """A DICOMDIR: an index of a file-set, not an image; ``dataset`` holds its records."""

    def __init__(self, path: Path, dataset) -> None:
        super().__init__(
            "is a DICOMDIR index, not an image",
            path=path,
            fix="open the DICOMDIR or its folder as a study: its images are listed",
        )
        self.dataset = dataset
#: Bytes looked at before pydicom reads a file: the preamble, and the file meta group after it.
HEAD_BYTES = 4096
#: Value representations: two letters that say an element is encoded with explicit VR.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
#: Explicit VRs whose length takes 4 bytes, after 2 reserved ones.
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_UNDEFINED = 0xFFFFFFFF
#: Groups no data set starts with: items and their delimiters.
_NO_START_GROUPS = frozenset({0xFFFE, 0xFFFF})
#: Deflated Explicit VR Little Endian: the data set after the meta group is compressed.
_DEFLATED = b"1.2.840.10008.1.2.1.99"
#: Pixel data above this size stays on disk until a frame is decoded.
_DEFER_SIZE = "256 KB"
#: Refuse headers that claim absurd sizes (mostly corruption) before anything is allocated.
_MAX_DECODED_BYTES = 8 << 30


def read_header(path: Path) -> dict[str, Any]:
    """Read a DICOM file's header and check that its pixel data can be displayed.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    dict
        The keyword arguments of :class:`engine.studies.image.Image` (``kind`` is
        ``"dicom"``; ``dataset`` holds the header with the pixel data possibly deferred).

    Raises
    ------
    NotAnImage
        The file holds no image (SR, RT Plan, ECG, presentation state, a non-DICOM file).
    DicomdirIndex
        The file is a DICOMDIR; the exception carries its dataset.
    StudyError
        The file cannot be read as DICOM, is truncated, or its image header is invalid.
    CodecError
        No installed plugin decodes its transfer syntax.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        size = os.path.getsize(path)
    except OSError as exc:
        raise StudyError(
            f"cannot be read ({exc.strerror or exc})", path=path, fix="check permissions"
        ) from None
    if not could_be_dicom(head, size):
        raise _not_dicom(path)
    ds, keywords, ended_early = _read(path, defer_size=_DEFER_SIZE)
    if ended_early:
        raise _truncated(path, ended_early)
    meta = getattr(ds, "file_meta", None)
    if str(ds.get("SOPClassUID") or (meta or {}).get("MediaStorageSOPClassUID") or "") == (
        DICOMDIR_SOP
    ):
        raise DicomdirIndex(path, ds)
    pixel_keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if pixel_keyword is None and not _KNOWN.intersection(keywords):
        raise _not_dicom(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _image_header(path, ds, pixel_keyword)
    except (StudyError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001 - invalid header values raise many types
        raise StudyError(
            f"has an invalid image header ({short_reason(exc)})", path=path, fix=TRUNCATED_FIX
        ) from None


def could_be_dicom(head: bytes, size: int) -> bool:
    """Whether a file's first bytes can begin a DICOM file (with or without its preamble).

    A Part 10 file has ``DICM`` after a 128-byte preamble and an element there; a file
    without one (an ACR-NEMA file, a bare data set) starts with an element. An element starts
    with a tag DICOM allows first, in any of its encodings, and a length that fits in the file.
    A file of zeros starts with ``(0000,0000)`` of length 0, which no encoder writes.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (:data:`HEAD_BYTES` of them, or the whole file).
    size : int
        The file's size in bytes.

    Returns
    -------
    bool
    """
    if head[128:132] == b"DICM":
        start = _dataset_start(head)
        return _element_at(head, 132, size) and (
            start is None or start >= min(size, len(head)) or _element_at(head, start, size)
        )
    return _element_at(head, 0, size)


def _dataset_start(head: bytes) -> int | None:
    """Where the (uncompressed) data set starts after a meta group that states its length.

    None when the meta group does not state it, or says the data set is deflated.
    """
    if head[132:138] != b"\x02\x00\x00\x00UL" or len(head) < 144:
        return None
    start = 144 + struct.unpack("<L", head[140:144])[0]
    return None if _DEFLATED in head[132:start] else start


def _element_at(head: bytes, offset: int, size: int) -> bool:
    """Whether a data element that fits in the file starts at ``offset``, in any encoding."""
    raw = head[offset:offset + 12]
    if len(raw) < 8:
        return False
    for endian in "<>":
        group, element = struct.unpack(endian + "HH", raw[:4])
        vr = raw[4:6]
        if vr in _VRS:
            long_form = vr in _LONG_VRS
            if long_form and len(raw) < 12:
                continue
            length = struct.unpack(endian + ("L" if long_form else "H"),
                                   raw[8:12] if long_form else raw[6:8])[0]
            header = 12 if long_form else 8
        elif endian == "<":  # implicit VR is little endian only
            length, header = struct.unpack("<L", raw[4:8])[0], 8
        else:
            continue
        if group in _NO_START_GROUPS or (group == 0 and (element, length) != (0, 4)):
            continue  # group 0 is a command set: it starts with its 4-byte group length
        if length == _UNDEFINED or offset + header + length <= size:
            return True
    return False


def _read(path: Path, **options) -> tuple[Any, list[str], tuple | bool]:
    """Read a file with pydicom; also say whether it ended inside an element.

    pydicom reads a file that ends early without an error: it warns when it ran out of bytes
    looking for a delimiter (and may then return an empty dataset: an encapsulated pixel data
    element without its end delimiter loses every element read), and silently keeps a last
    value that is shorter than its length says.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with CancellableFile(path) as fh:
                ds = pydicom.dcmread(fh, force=True, **options)
            if ds.buffer is fh:  # (a deflated data set's buffer is its unzipped bytes)
                # Deferred elements are read again through CancellableFile, by file name.
                ds.buffer = None
            cut = _cut_value(path, ds)
            # Touch every top-level element now, so corrupt values fail here, not later; but
            # not the pixel data, which stays on disk (iterating the data set would read it).
            keywords = [ds[tag].keyword for tag in ds.keys() if tag.group != 0x7FE0]
    except BaseException as exc:  # noqa: BLE001 - pydicom raises many types on corrupt bytes
        reraise_fatal(exc)
        raise StudyError(
            f"cannot be read as DICOM ({short_reason(exc)})", path=path, fix=TRUNCATED_FIX
        ) from None
    ended_early = cut or any(_EOF_WARNING in str(w.message) for w in caught)
    return ds, keywords, ended_early


def _cut_value(path: Path, ds) -> tuple[int, int, int] | None:
    """``(tag, bytes present, length)`` when the last element is shorter than it says."""
    if not len(ds):
        return None
    elem = ds.get_item(max(ds.keys()), keep_deferred=True)
    if not isinstance(elem, RawDataElement) or elem.length == 0xFFFFFFFF:
        return None
    if elem.value is None:  # deferred: still on disk
        present = max(0, os.path.getsize(path) - elem.value_tell)
    elif isinstance(elem.value, bytes | bytearray):
        present = len(elem.value)
    else:
        return None
    return (int(elem.tag), present, elem.length) if present < elem.length else None


def _not_dicom(path: Path) -> NotAnImage:
    return NotAnImage(
        "is not a DICOM or image file",
        path=path,
        fix="open DICOM files or PNG, JPEG, TIFF or BMP images",
    )


def _truncated(path: Path, cut: tuple | bool) -> StudyError:
    """Say where a file that ends early was cut: in its pixel data, or before it.

    Bytes that are not DICOM at all (a text file read by force) also "end early"; those are
    not a DICOM file, not a truncated one.
    """
    header, keywords, header_cut = _read(path, stop_before_pixels=True)
    if not _KNOWN.intersection(keywords):
        return _not_dicom(path)
    if not header_cut and "Rows" in header and "Columns" in header:
        how = "the file ends before its pixel data does"
        if isinstance(cut, tuple) and cut[0] >> 16 == 0x7FE0:
            how = f"{cut[1]} of {cut[2]} bytes"
        return StudyError(f"pixel data is truncated ({how})", path=path, fix=TRUNCATED_FIX)
    return StudyError(
        "is truncated (the file ends inside its DICOM header)", path=path, fix=TRUNCATED_FIX
    )


def _image_header(path: Path, ds, pixel_keyword: str | None) -> dict[str, Any]:
    sop = str(ds.get("SOPClassUID", "") or "")
    kind = UID(sop).name if sop else str(ds.get("Modality") or "object")
    if pixel_keyword is None and (
        "Image Storage" in kind or all(k in ds for k in ("Rows", "Columns", "BitsAllocated"))
    ):
        # An image object, or an image header, without its pixels: the file stops early.
        raise StudyError(
            f"pixel data is missing from this {kind} (the file is truncated)",
            path=path,
            fix=TRUNCATED_FIX,
        )
    if pixel_keyword is None:
        raise NotAnImage(
            f"holds no image ({kind} has no pixel data)",
            path=path,
            fix="open an image object; this one has nothing to display",
        )
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        value = ds.get(keyword)
        if not isinstance(value, int) or value <= 0:
            raise StudyError(
                f"has no valid {keyword} for its pixel data", path=path, fix=TRUNCATED_FIX
            )
    samples = int(ds.get("SamplesPerPixel") or 1)
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if not photometric:
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
        ds.PhotometricInterpretation = photometric
    if photometric not in GREY_PHOTOMETRICS + COLOUR_PHOTOMETRICS:
        raise StudyError(
            f"photometric interpretation {photometric!r} is not supported",
            path=path,
            fix="convert the image to MONOCHROME2, RGB or YBR_FULL (e.g. gdcmconv or dcmconv)",
        )
    is_color = photometric in COLOUR_PHOTOMETRICS
    if samples not in (1, 3) or (samples == 3) != (is_color and photometric != "PALETTE COLOR"):
        raise StudyError(
            f"Samples per Pixel {samples} does not fit {photometric}", path=path, fix=TRUNCATED_FIX
        )
    frames = ds.get("NumberOfFrames")
    try:
        n_frames = max(1, int(frames)) if frames not in (None, "") else 1
    except (TypeError, ValueError):
        n_frames = 1
    rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
    if rows * cols * samples * n_frames * bits / 8 > _MAX_DECODED_BYTES:
        raise StudyError(
            f"claims {n_frames} frame(s) of {rows}x{cols}, too large to display",
            path=path,
            fix=TRUNCATED_FIX,
        )
    syntax = transfer_syntax(ds)
    if pixel_keyword == "PixelData":
        check_decoder(path, syntax)
        if not syntax.is_compressed and photometric != "YBR_FULL_422":
            expected = math.ceil(rows * cols * samples * n_frames * bits / 8)
            available = _stored_length(path, ds)
            if available is not None and available < expected:
                raise StudyError(
                    f"pixel data is truncated ({available} of {expected} bytes)",
                    path=path,
                    fix=TRUNCATED_FIX,
                )
    details = {
        "transfer_syntax": syntax.name,
        "transfer_syntax_uid": str(syntax),
        "sop_class": UID(sop).name if sop else "",
        "bits_allocated": bits,
        "bits_stored": int(ds.get("BitsStored") or bits),
        "signed": bool(ds.get("PixelRepresentation") or 0),
        "series_description": str(ds.get("SeriesDescription") or ""),
        "pixel_spacing": _spacing_info(ds),
    }
    return {
        "path": path,
        "kind": "dicom",
        "n_frames": n_frames,
        "shape": (rows, cols),
        "is_color": is_color,
        "photometric": photometric,
        "modality": str(ds.get("Modality") or "OT").strip() or "OT",
        "dataset": ds,
        "details": details,
    }


def _spacing_info(ds) -> dict | None:
    """The pixel size ``info`` reports: row and column mm and where they come from, or None.

    None when the file states no usable size (absent, or ``0\\0`` and the like): lengths on
    it are in pixels.
    """
    spacing = dataset_spacing(ds)
    if not spacing.known:
        return None
    return {"row_mm": spacing.row_mm, "column_mm": spacing.col_mm, "source": spacing.source}


def transfer_syntax(ds) -> UID:
    """The dataset's transfer syntax, inferred from how it was read when the meta lacks it."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(str(syntax))
    implicit, little = ds.original_encoding
    syntax = (
        ExplicitVRBigEndian
        if little is False
        else ImplicitVRLittleEndian
        if implicit
        else ExplicitVRLittleEndian
    )
    ds.ensure_file_meta()
    ds.file_meta.TransferSyntaxUID = syntax
    return syntax


def _stored_length(path: Path, ds) -> int | None:
    """Bytes of native pixel data actually present, without loading deferred data."""
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    if isinstance(elem, RawDataElement) and elem.value is None:
        if elem.length == 0xFFFFFFFF:
            return None
        return max(0, min(elem.length, os.path.getsize(path) - elem.value_tell))
    value = elem.value
    return len(value) if isinstance(value, bytes | bytearray) else None


def decode_frame(ds, path: Path, frame: int, shape: tuple[int, int]):
    """Decode one frame's pixel data as stored (palette indices, YBR converted to RGB).

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The header :func:`read_header` returned.
    path : Path
        The file, for messages.
    frame : int
        Zero-based frame index.
    shape : (int, int)
        The (rows, columns) the header promises.

    Returns
    -------
    numpy.ndarray
        (rows, columns) or (rows, columns, 3).

    Raises
    ------
    CodecError
        The installed plugins all refuse this variant of the transfer syntax.
    StudyError
        The data is corrupt or decodes to another size.
    """
    syntax = transfer_syntax(ds)
    try:
        # Compressed data goes through native decoders, which print to the process's stderr
        # (a Rust panic prints a backtrace) before they raise: the user gets our line only.
        quiet = captured_stderr() if syntax.is_compressed else nullcontext()
        with warnings.catch_warnings(), quiet:
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=frame)
    except BaseException as exc:  # noqa: BLE001 - decoders raise many types on corrupt data
        reraise_fatal(exc)
        missing = unsupported_error(exc, path, syntax)
        if missing is not None:
            raise missing from None
        raise StudyError(
            f"frame {frame} cannot be decoded ({short_reason(exc)})", path=path, fix=TRUNCATED_FIX
        ) from None
    if arr.shape[:2] != tuple(shape):
        raise StudyError(
            f"frame {frame} decoded to {arr.shape[:2]}, not {tuple(shape)}",
            path=path,
            fix=TRUNCATED_FIX,
        )
    return arr

