"""The display pipeline: modality values to the 8-bit RGB a clinical viewer shows.

The order is pydicom's (``pydicom.pixels.processing``): modality LUT or rescale, then VOI LUT or
window, then MONOCHROME1 inversion (which pydicom leaves to the viewer), then the presentation
LUT, then 8-bit RGB. pydicom's own functions do the modality LUT, VOI LUT sequence and palette
work. What pydicom lacks is added here: per-frame functional groups of enhanced multi-frame
objects, a robust window when a file carries none, inversion, and a fast path that turns a
window change into one table look-up instead of a pass of float arithmetic over the frame.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

#: Window functions of the VOI LUT module, plus ``LUT`` for a VOI LUT Sequence item.
WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID", "LUT")

#: Elements that decide how one frame's stored values become display values.
_FRAME_KEYWORDS = (
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "DoseGridScaling",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "WindowCenterWidthExplanation",
    "VOILUTSequence",
    "PresentationLUTShape",
    "PresentationLUTSequence",
)

#: Functional-group sequences of enhanced objects that override rescale and window per frame.
_GROUP_SEQUENCES = ("PixelValueTransformationSequence", "FrameVOILUTSequence")

#: Frames with at least this many pixels are split across threads for the final look-up.
_PARALLEL_PIXELS = 1 << 20
#: Rows converted at a time, so the grey block stays in cache between its four passes.
_BLOCK_ROWS = 64

_pool: ThreadPoolExecutor | None = None


def frame_dataset(ds: Dataset, frame: int) -> Dataset:
    """Return the elements that govern one frame's display, functional groups applied.

    Enhanced multi-frame objects carry rescale and window values in the shared and per-frame
    functional groups rather than at the top level, where pydicom's processing functions look.
    This builds a small dataset with the top-level values overridden by the shared group and then
    by the frame's own group, so those functions work unchanged.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The image's dataset.
    frame : int
        Zero-based frame index.

    Returns
    -------
    pydicom.dataset.Dataset
        A dataset holding only the display-related elements for `frame`.
    """
    out = Dataset()
    for keyword in _FRAME_KEYWORDS:
        if keyword in ds:
            out[keyword] = ds[keyword]
    groups = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and 0 <= frame < len(per_frame):
        groups.append(per_frame[frame])
    for group in groups:
        for name in _GROUP_SEQUENCES:
            seq = group.get(name)
            if seq:
                for elem in seq[0]:
                    out[elem.tag] = elem
    # LUT data stored as OW is decoded with the dataset's byte order.
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    implicit, little = ds.original_encoding
    if little is not None:
        out.set_original_encoding(implicit, little, None)
    return out


def modality_values(stored: np.ndarray, fds: Dataset, modality: str = "") -> np.ndarray:
    """Map stored values to modality units (Hounsfield, Gy, ...).

    Parameters
    ----------
    stored : numpy.ndarray
        Stored pixel values.
    fds : pydicom.dataset.Dataset
        The frame's display elements (see :func:`frame_dataset`).
    modality : str
        The image modality; RT dose grids are scaled by *Dose Grid Scaling*, which pydicom's
        modality LUT does not cover.

    Returns
    -------
    numpy.ndarray
        float32 modality values.
    """
    values = apply_modality_lut(stored, fds)
    if modality == "RTDOSE" and "RescaleSlope" not in fds and "ModalityLUTSequence" not in fds:
        scaling = fds.get("DoseGridScaling")
        if scaling is not None:
            values = values * float(scaling)
    return np.asarray(values, dtype=np.float32)


def window_unit(values: np.ndarray, center: float, width: float, function: str = "LINEAR"):
    """Apply a DICOM window and return display values in [0, 1].

    Follows PS3.3 C.11.2.1.2 (LINEAR) and C.11.2.1.3 (LINEAR_EXACT, SIGMOID), the same
    formulas as :func:`pydicom.pixels.apply_windowing`, but in float32 and normalised to [0, 1]
    instead of the stored bit range.

    Parameters
    ----------
    values : numpy.ndarray
        Modality values.
    center, width : float
        Window centre and width in modality units.
    function : str
        ``LINEAR``, ``LINEAR_EXACT`` or ``SIGMOID``.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape, in [0, 1].
    """
    x = np.asarray(values, dtype=np.float32)
    if function == "SIGMOID":
        out = np.multiply(x, np.float32(-4.0 / width), dtype=np.float32)
        out += np.float32(4.0 * center / width)
        with np.errstate(over="ignore"):  # far outside the window exp overflows to inf: 0
            np.exp(out, out=out)
        out += np.float32(1.0)
        return np.reciprocal(out, out=out)
    if function == "LINEAR":
        if width <= 1:
            # A LINEAR window of width 1 is a threshold at centre - 0.5.
            return (x > center - 0.5).astype(np.float32)
        center, width = center - 0.5, width - 1.0
    slope = np.float32(1.0 / width)
    out = np.multiply(x, slope, dtype=np.float32)
    out += np.float32(0.5 - center / width)
    return np.clip(out, 0.0, 1.0, out=out)


def voi_lut_unit(values: np.ndarray, fds: Dataset, index: int) -> np.ndarray:
    """Apply item `index` of the VOI LUT Sequence and return display values in [0, 1].

    Parameters
    ----------
    values : numpy.ndarray
        Modality values (rounded to integers, as the LUT is indexed by them).
    fds : pydicom.dataset.Dataset
        The frame's display elements, holding *VOI LUT Sequence*.
    index : int
        Which LUT of the sequence.

    Returns
    -------
    numpy.ndarray
        float32 array in [0, 1], scaled by the LUT's nominal bit depth.
    """
    item = fds.VOILUTSequence[index]
    bits = int(item.LUTDescriptor[2])
    ints = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
    mapped = apply_voi(ints, fds, index=index)
    return (mapped.astype(np.float32) / np.float32(2**bits - 1)).clip(0.0, 1.0)


def robust_window(values: np.ndarray, low: float = 0.5, high: float = 99.5):
    """Return a (centre, width) covering the central percentiles of `values`.

    Used when a grey image carries no window. Percentiles rather than the extremes keep a few
    hot or dead pixels, or a burned-in label, from flattening the contrast. A strided sample of
    about 250 000 pixels keeps this fast on large radiographs.

    Parameters
    ----------
    values : numpy.ndarray
        Modality values of one frame.
    low, high : float
        Percentiles that become black and white.

    Returns
    -------
    tuple of float
        ``(center, width)`` for a ``LINEAR_EXACT`` window; width is at least a tiny positive
        number so a constant image still renders (mid grey).
    """
    sample = values_sample(values)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return lo, 1.0
    return (lo + hi) / 2.0, hi - lo


def values_sample(values: np.ndarray, target: int = 1 << 18) -> np.ndarray:
    """Return a strided sample of about `target` values from a 2-D frame, flattened."""
    if values.ndim < 2 or values.size <= target:
        return np.asarray(values).ravel()
    step = max(1, math.ceil(math.sqrt(values.shape[0] * values.shape[1] / target)))
    return np.asarray(values[::step, ::step]).ravel()


def presentation_table(fds: Dataset) -> np.ndarray | None:
    """Return a 256-entry uint8 table for a *Presentation LUT Sequence*, or None if absent.

    The table maps the 8-bit output of the VOI stage to 8-bit P-values; the LUT's input range is
    the full VOI output range, per PS3.3 C.11.6.
    """
    seq = fds.get("PresentationLUTSequence")
    if not seq:
        return None
    item = seq[0]
    entries, _first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 2**16
    data = item.LUTData
    raw = np.frombuffer(data, dtype="<u2") if isinstance(data, bytes | bytearray) else data
    lut = np.asarray(raw, dtype=np.float64).ravel()[:entries]
    if lut.size == 0:
        return None
    positions = np.rint(np.arange(256) * (lut.size - 1) / 255).astype(np.int64)
    return np.rint(lut[positions] * 255.0 / (2**bits - 1)).clip(0, 255).astype(np.uint8)


def is_inverted(fds: Dataset) -> bool:
    """Whether low values display white: MONOCHROME1, or a Presentation LUT Shape of INVERSE.

    The DX and MG IODs pair MONOCHROME1 with an INVERSE presentation shape; both describe the
    same single inversion, so they are not applied twice.
    """
    photometric = str(fds.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(fds.get("PresentationLUTShape", "")).strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def unit_to_table(unit: np.ndarray, invert: bool, presentation: np.ndarray | None) -> np.ndarray:
    """Turn display values in [0, 1] into uint8, inverting and applying a presentation table."""
    scaled = np.asarray(unit, dtype=np.float32) * np.float32(255.0)
    if invert:
        scaled = np.float32(255.0) - scaled
    grey = (scaled + np.float32(0.5)).clip(0, 255).astype(np.uint8)
    if presentation is not None:
        grey = presentation[grey]
    return grey


def grey_table_to_rgb(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Look every pixel's index up in a grey table and return contiguous uint8 (H, W, 3).

    This gather is the whole cost of a window change on integer data. It runs in blocks of rows
    small enough to stay in cache (one grey gather, then three channel writes), and large frames
    are split across a small thread pool, as numpy releases the GIL in both steps.

    Parameters
    ----------
    table : numpy.ndarray
        uint8 table, one entry per possible index value.
    index : numpy.ndarray
        Unsigned integer (H, W) indices into `table`.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W, 3) with equal channels.
    """
    table = np.asarray(table, dtype=np.uint8)
    out = np.empty((*index.shape, 3), dtype=np.uint8)
    rows = index.shape[0] if index.ndim else 0

    def convert(first: int, last: int) -> None:
        for top in range(first, last, _BLOCK_ROWS):
            block = slice(top, min(top + _BLOCK_ROWS, last))
            grey = np.take(table, index[block])
            target = out[block]
            target[..., 0] = grey
            target[..., 1] = grey
            target[..., 2] = grey

    workers = min(4, os.cpu_count() or 1)
    if index.size < _PARALLEL_PIXELS or workers < 2 or index.ndim != 2:
        convert(0, rows)
        return out
    bounds = np.linspace(0, rows, workers + 1).astype(int)
    parts = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    list(_thread_pool(workers).map(lambda part: convert(*part), parts))
    return out


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lucida-display")
    return _pool


def colour_to_uint8(rgb: np.ndarray, bits: int) -> np.ndarray:
    """Scale colour samples of `bits` bits to uint8 (H, W, 3)."""
    if rgb.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(rgb)
    scale = np.float32(255.0 / (2.0 ** max(1, bits) - 1))
    out = rgb.astype(np.float32) * scale + np.float32(0.5)
    return np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))


#: The palette colour LUT elements :func:`palette_rgb` reads.
_PALETTE_KEYWORDS = tuple(
    f"{colour}PaletteColorLookupTable{part}"
    for colour in ("Red", "Green", "Blue", "Alpha")
    for part in ("Descriptor", "Data")
)


def palette_rgb(indices: np.ndarray, ds: Dataset, little_endian: bool) -> np.ndarray:
    """Look palette indices up in the file's colour LUTs, read in the file's byte order.

    pydicom keeps LUT Data (OW) as the file's raw bytes and reads 16-bit entries in the
    machine's byte order, so on a big endian file every entry comes out byte-swapped (a red
    of 0xFF00 becomes 0x00FF: nearly black). The entries are swapped back first.

    Parameters
    ----------
    indices : numpy.ndarray
        Stored pixel values (palette indices).
    ds : pydicom.dataset.Dataset
        The image's dataset, with its Palette Color Lookup Table module.
    little_endian : bool
        The byte order of the file's transfer syntax.

    Returns
    -------
    numpy.ndarray
        (..., 3) or (..., 4) uint8 or uint16, as :func:`pydicom.pixels.apply_color_lut`.
    """
    if little_endian or "RedPaletteColorLookupTableData" not in ds:
        return apply_color_lut(indices, ds)
    entries = int(ds.RedPaletteColorLookupTableDescriptor[0]) or 2**16
    native = Dataset()
    for keyword in _PALETTE_KEYWORDS:
        if keyword not in ds:
            continue
        value = ds[keyword].value
        if keyword.endswith("Data") and isinstance(value, bytes) and len(value) == 2 * entries:
            value = np.frombuffer(value, dtype=">u2").astype("<u2").tobytes()
        setattr(native, keyword, value)
    return apply_color_lut(indices, native)
