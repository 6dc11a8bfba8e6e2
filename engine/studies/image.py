"""One displayable image, DICOM or raster, with its display and model-input pipelines.

:func:`open_image` reads the header and checks that the pixel data can be decoded; frames are
decoded on first use and cached, so a window change only re-runs a table look-up over the
cached stored values (see :mod:`engine.studies.display`).
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.case import ContentId, array_digest
from engine.core.errors import StudyError, UsageError
from engine.core.hashing import sha256_file
from engine.studies import dicom_io, display, raster
from engine.studies.decode_errors import TRUNCATED_FIX, reraise_fatal, short_reason
from engine.studies.windows import WindowPreset, read_presets

#: Keywords :meth:`Image.identifiers` reports (removed by de-identifying exports).
IDENTIFIER_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "InstitutionName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)

#: The window a CT opens at when the file carries none: soft tissue, in Hounsfield units.
SOFT_TISSUE = WindowPreset(40.0, 400.0, "soft tissue", "LINEAR")
#: Decoded frames kept per image; the least recently used go first.
_CACHE_BYTES = 768 << 20


@dataclass
class _Frame:
    """One decoded frame and what its window changes reuse."""

    raw: np.ndarray  # grey: stored values (H, W); colour: uint8 RGB (H, W, 3)
    fds: Any = None  # pydicom Dataset with the frame's display elements (DICOM only)
    index: np.ndarray | None = None  # unsigned view of 8/16-bit stored values for table look-ups
    domain: np.ndarray | None = None  # float32 modality value of every index value
    modality: np.ndarray | None = None  # float32 modality values, made on first request
    presentation: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        extra = 0 if self.modality is None else self.modality.nbytes
        return self.raw.nbytes + extra


class Image:
    """One displayable image; build it with :func:`open_image`.

    Attributes
    ----------
    path : Path
    kind : str
        ``"dicom"`` or ``"raster"``.
    n_frames : int
    shape : tuple of int
        ``(rows, cols)``.
    is_color : bool
    photometric : str
        As stored in the file (raster: ``MONOCHROME2`` or ``RGB``).
    modality : str
        DICOM modality, ``"OT"`` for raster files.
    dataset : pydicom.dataset.Dataset or None
        The DICOM header (pixel data may be deferred); None for raster files.
    """

    def __init__(
        self,
        *,
        path: Path,
        kind: str,
        n_frames: int,
        shape: tuple[int, int],
        is_color: bool,
        photometric: str,
        modality: str,
        dataset: Any,
        details: dict[str, Any],
    ) -> None:
        self.path = path
        self.kind = kind
        self.n_frames = n_frames
        self.shape = shape
        self.is_color = is_color
        self.photometric = photometric
        self.modality = modality
        self.dataset = dataset
        self._details = details
        self._frames: OrderedDict[int, _Frame] = OrderedDict()
        self._defaults: dict[int, WindowPreset | None] = {}
        self._fallback: WindowPreset | None = None
        #: Set by the study tree: the window the images of one series share without presets.
        self.series_window: SeriesWindow | None = None
        self._domains: dict[tuple, np.ndarray] = {}
        self._lock = threading.RLock()
        self._digest: str | None = None

    def __repr__(self) -> str:
        return (
            f"Image({str(self.path)!r}, {self.kind}, {self.modality}, {self.photometric}, "
            f"{self.shape[0]}x{self.shape[1]}, frames={self.n_frames})"
        )

    # -- windows -----------------------------------------------------------------------------

    @property
    def presets(self) -> list[WindowPreset]:
        """Every window the file carries for frame 0, the file's default first."""
        return self.presets_for(0)

    def presets_for(self, frame: int) -> list[WindowPreset]:
        """Every window the file carries for `frame` (enhanced objects differ per frame)."""
        self._check_frame(frame)
        if self.kind != "dicom" or self.is_color:
            return []
        return self._run(frame, lambda: read_presets(display.frame_dataset(self.dataset, frame)))

    @property
    def default_window(self) -> WindowPreset | None:
        """What :meth:`render` uses for frame 0 by default; None for colour images."""
        return self.default_window_for(0)

    def default_window_for(self, frame: int) -> WindowPreset | None:
        """The window `frame` opens at.

        The file's first preset for the frame; without one, one window for the whole image:
        soft tissue (40/400 HU) for CT, the full range for 8-bit pictures, else a robust window
        over frames sampled across the image, or across its series when it belongs to one
        (:class:`SeriesWindow`). Only a file that gives its frames windows of their own
        (enhanced multi-frame objects) changes window from frame to frame, so neither cine nor
        stepping through a series flickers.

        Returns None for colour images, which are shown as stored.
        """
        if self.is_color:
            return None
        with self._lock:
            if frame not in self._defaults:
                presets = self.presets_for(frame)
                self._defaults[frame] = presets[0] if presets else self._image_window()
            return self._defaults[frame]

    def _image_window(self) -> WindowPreset:
        """The fallback window, shared by every frame without a preset of its own."""
        if self._fallback is None:
            if self.modality == "CT" and self.kind == "dicom":
                self._fallback = SOFT_TISSUE
            elif self.kind == "raster" and self._details.get("bits") == 8:
                # 8-bit pictures are shown as stored: 0 black, 255 white.
                self._fallback = WindowPreset(127.5, 255.0, "full range", "LINEAR_EXACT")
            elif self.series_window is not None:
                self._fallback = self.series_window.window()
            else:
                self._fallback = self.data_window()
        return self._fallback

    def data_window(self) -> WindowPreset:
        """A robust window over the first, middle and last frames (see :meth:`auto_window`)."""
        return self._robust_window(sorted({0, self.n_frames // 2, self.n_frames - 1}))

    def auto_window(self, frame: int = 0) -> WindowPreset:
        """A window spanning the 0.5th to 99.5th percentile of the frame's modality values."""
        return self._robust_window([frame])

    def _robust_window(self, frames: list[int]) -> WindowPreset:
        samples = []
        for frame in frames:
            state = self._frame(frame)
            if state.index is not None:
                samples.append(state.domain[display.values_sample(state.index)])
            else:
                samples.append(display.values_sample(self.modality_frame(frame)))
        center, width = display.robust_window(np.concatenate(samples))
        return WindowPreset(center, width, "auto", "LINEAR_EXACT")

    # -- pixels ------------------------------------------------------------------------------

    def modality_frame(self, frame: int = 0) -> np.ndarray:
        """Modality values of one frame, decoded once and cached.

        Returns
        -------
        numpy.ndarray
            float32 (H, W) in modality units (HU, Gy, ...), or uint8 (H, W, 3) RGB for colour
            images. Read-only: it is shared with later calls.
        """
        state = self._frame(frame)
        if self.is_color:
            return state.raw
        with self._lock:
            if state.modality is None:
                if state.index is not None:
                    values = np.take(state.domain, state.index)
                elif state.fds is not None:
                    values = self._run(
                        frame, display.modality_values, state.raw, state.fds, self.modality
                    )
                else:
                    values = state.raw.astype(np.float32)
                values.flags.writeable = False
                state.modality = values
            return state.modality

    def render(
        self,
        frame: int = 0,
        window: WindowPreset | tuple[float, float] | None = None,
        invert: bool = False,
    ) -> np.ndarray:
        """Return the frame as the viewer shows it.

        Parameters
        ----------
        frame : int
            Zero-based frame index.
        window : WindowPreset or (center, width), optional
            Defaults to :meth:`default_window_for` the frame; ignored for colour images.
        invert : bool
            Invert on top of the file's own polarity (MONOCHROME1 is already shown inverted).

        Returns
        -------
        numpy.ndarray
            uint8 (H, W, 3), C-contiguous.
        """
        state = self._frame(frame)
        if self.is_color:
            return 255 - state.raw if invert else state.raw.copy()
        preset = self._resolve_window(frame, window)
        inverted = self._inverted(state) != bool(invert)
        if state.index is not None:
            unit = self._unit(frame, state, state.domain, preset)
            table = display.unit_to_table(unit, inverted, state.presentation)
            return display.grey_table_to_rgb(table, state.index)
        unit = self._unit(frame, state, self.modality_frame(frame), preset)
        grey = display.unit_to_table(unit, inverted, state.presentation)
        return display.grey_table_to_rgb(np.arange(256, dtype=np.uint8), grey)

    def model_input(
        self, frame: int = 0, window: str | tuple[float, float] | WindowPreset = "default"
    ) -> np.ndarray:
        """Return the frame as a model sees it, independent of the viewer's window.

        Parameters
        ----------
        frame : int
            Zero-based frame index.
        window : {"default", "minmax"} or (center, width) or WindowPreset
            ``default`` is :meth:`default_window_for` the frame; ``minmax`` stretches the frame's
            own range; a pair is a LINEAR window in modality units.

        Returns
        -------
        numpy.ndarray
            float32 in [0, 1]: (H, W) for grey, bright meaning dense whatever the file's
            polarity (MONOCHROME1 is inverted), or (H, W, 3) RGB for colour.
        """
        state = self._frame(frame)
        if self.is_color:
            return state.raw.astype(np.float32) / np.float32(255.0)
        if isinstance(window, str) and window == "minmax":
            values = self.modality_frame(frame)
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
            scale = np.float32(1.0 / (hi - lo)) if hi > lo else np.float32(0.0)
            unit = np.nan_to_num((values - np.float32(lo)) * scale).clip(0.0, 1.0)
        else:
            preset = self._resolve_window(frame, None if window == "default" else window)
            if state.index is not None:
                unit = np.take(self._unit(frame, state, state.domain, preset), state.index)
            else:
                unit = self._unit(frame, state, self.modality_frame(frame), preset)
        if self._inverted(state):
            unit = np.float32(1.0) - unit
        return np.ascontiguousarray(unit, dtype=np.float32)

    # -- description -------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What ``main.py info`` prints for this file (no pixel data is decoded)."""
        presets = [
            {"name": p.name, "center": p.center, "width": p.width, "function": p.function}
            for p in self.presets
        ]
        return {
            "path": str(self.path),
            "kind": self.kind,
            "modality": self.modality,
            "photometric": self.photometric,
            "rows": self.shape[0],
            "columns": self.shape[1],
            "frames": self.n_frames,
            "is_color": self.is_color,
            **self._details,
            "window_presets": presets,
        }

    def identifiers(self) -> dict[str, str]:
        """Patient and study identifiers, ``''`` where absent (always for raster files)."""
        ds = self.dataset
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for keyword in IDENTIFIER_KEYWORDS:
                try:
                    value = ds.get(keyword, "") if ds is not None else ""
                except Exception:  # noqa: BLE001 - a corrupt element must not hide the others
                    value = ""
                out[keyword] = "" if value is None else str(value)
        return out

    def content_id(self, frame: int = 0) -> ContentId:
        """What this frame is, by content: the case identity's first part.

        A DICOM instance is named by its SOP Instance UID and frame, a raster file by its
        bytes; both carry the SHA-256 of the file as read, so a file changed on disk since it
        was opened, or a copy elsewhere with other content, is another case. An image whose
        file is gone is named by its pixel values. Computed once, on first use.
        """
        self._check_frame(frame)
        with self._lock:
            if self._digest is None:
                try:
                    self._digest = sha256_file(self.path)
                except OSError:
                    self._digest = array_digest(self.modality_frame(0))
        uid = ""
        if self.dataset is not None:
            uid = str(self.dataset.get("SOPInstanceUID", "") or "")
        kind = "instance" if self.kind == "dicom" else "file"
        return ContentId(kind=kind, digest=self._digest, uid=uid, frame=int(frame))

    # -- internals ---------------------------------------------------------------------------

    def _check_frame(self, frame: int) -> None:
        if isinstance(frame, bool) or not isinstance(frame, int | np.integer):
            raise UsageError(f"frame must be an integer, not {frame!r}", path=self.path)
        if not 0 <= frame < self.n_frames:
            raise UsageError(
                f"frame {frame} is out of range; the image has {self.n_frames} frame(s)",
                path=self.path,
                fix=f"pass a frame from 0 to {self.n_frames - 1}",
            )

    def _resolve_window(self, frame: int, window) -> WindowPreset:
        if window is None:
            preset = self.default_window_for(frame)
            assert preset is not None  # grey images always have one
            return preset
        if isinstance(window, WindowPreset):
            preset = window
        else:
            try:
                center, width = (float(v) for v in window)
            except (TypeError, ValueError):
                raise UsageError(
                    f"window must be (center, width), not {window!r}",
                    path=self.path,
                    fix="pass --window CENTER,WIDTH, e.g. --window 40,400",
                ) from None
            preset = WindowPreset(center, width, "custom", "LINEAR")
        if preset.function not in display.WINDOW_FUNCTIONS:
            raise UsageError(
                f"unknown window function {preset.function!r}",
                path=self.path,
                fix=f"use one of {', '.join(display.WINDOW_FUNCTIONS)}",
            )
        if preset.function == "LUT":
            count = len(self._frame(frame).fds.get("VOILUTSequence") or [])
            if preset.lut_index is None or not 0 <= preset.lut_index < count:
                raise UsageError(f"the image has no VOI LUT {preset.lut_index}", path=self.path)
        elif not (math.isfinite(preset.center) and math.isfinite(preset.width)) or (
            preset.width <= 0
        ):
            raise UsageError(
                f"window ({preset.center}, {preset.width}) needs a finite centre and width > 0",
                path=self.path,
                fix="pass --window CENTER,WIDTH with WIDTH > 0",
            )
        return preset

    def _unit(self, frame: int, state: _Frame, values: np.ndarray, preset: WindowPreset):
        if preset.function == "LUT":
            return self._run(frame, display.voi_lut_unit, values, state.fds, preset.lut_index)
        return display.window_unit(values, preset.center, preset.width, preset.function)

    def _inverted(self, state: _Frame) -> bool:
        return state.fds is not None and display.is_inverted(state.fds)

    def _run(self, frame: int, func, *args):
        """Call a pydicom-backed step, turning its failures on bad data into StudyError."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return func(*args)
        except (StudyError, UsageError):
            raise
        except BaseException as exc:  # noqa: BLE001 - corrupt values surface as many types
            reraise_fatal(exc)
            raise StudyError(
                f"frame {frame} cannot be displayed ({short_reason(exc)})",
                path=self.path,
                fix="the file's display values (LUTs, rescale) are invalid; export it again",
            ) from None

    def _frame(self, frame: int) -> _Frame:
        self._check_frame(frame)
        with self._lock:
            state = self._frames.get(frame)
            if state is not None:
                self._frames.move_to_end(frame)
                return state
            state = self._decode(frame)
            self._frames[frame] = state
            while len(self._frames) > 1 and sum(f.nbytes for f in self._frames.values()) > (
                _CACHE_BYTES
            ):
                self._frames.popitem(last=False)
            return state

    def _decode(self, frame: int) -> _Frame:
        if self.kind == "raster":
            return self._raster_frame(raster.read_frame(self.path, frame, self.is_color))
        arr = dicom_io.decode_frame(self.dataset, self.path, frame, self.shape)
        ds = self.dataset
        if self.is_color:
            if self.photometric == "PALETTE COLOR":
                little = dicom_io.transfer_syntax(ds).is_little_endian
                rgb = self._run(frame, display.palette_rgb, arr, ds, little)
                bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
            else:
                rgb, bits = arr, int(ds.get("BitsStored") or ds.BitsAllocated)
            if rgb.ndim != 3 or rgb.shape[-1] != 3:
                raise StudyError(
                    f"frame {frame} decoded to shape {rgb.shape}, not colour",
                    path=self.path,
                    fix=TRUNCATED_FIX,
                )
            return _Frame(raw=display.colour_to_uint8(rgb, bits))
        if arr.ndim != 2:
            raise StudyError(
                f"frame {frame} decoded to shape {arr.shape}, not a grey image",
                path=self.path,
                fix="check Samples per Pixel and Photometric Interpretation in the header",
            )
        fds = self._run(frame, display.frame_dataset, ds, frame)
        state = _Frame(raw=arr, fds=fds)
        state.presentation = self._run(frame, display.presentation_table, fds)
        self._attach_index(state, fds, frame)
        return state

    def _raster_frame(self, arr: np.ndarray) -> _Frame:
        state = _Frame(raw=arr)
        if not self.is_color:
            self._attach_index(state, None)
        return state

    def _seed_frame(self, frame: int, arr: np.ndarray) -> None:
        """Cache a raster frame decoded while the file was open for its header."""
        with self._lock:
            self._frames[frame] = self._raster_frame(arr)

    def _attach_index(self, state: _Frame, fds, frame: int = 0) -> None:
        """Set up the table look-up for 8- and 16-bit integer frames."""
        raw = state.raw
        if raw.dtype.kind not in "iu" or raw.dtype.itemsize > 2:
            return
        unsigned = np.dtype(f"u{raw.dtype.itemsize}")
        raw = np.ascontiguousarray(raw).astype(raw.dtype.newbyteorder("="), copy=False)
        state.raw = raw
        state.index = raw.view(unsigned)
        key = (raw.dtype.str, _modality_key(fds))
        domain = self._domains.get(key)
        if domain is None:
            stored = np.arange(2 ** (8 * raw.dtype.itemsize), dtype=unsigned).view(raw.dtype)
            if fds is None:
                domain = stored.astype(np.float32)
            else:
                domain = self._run(frame, display.modality_values, stored, fds, self.modality)
            self._domains[key] = domain
        state.domain = domain


class SeriesWindow:
    """One fallback window for every image of a series, so stepping through it does not flicker.

    It is the robust window of the series' middle image, worked out once, when the first image
    without a preset of its own is shown.

    Parameters
    ----------
    images : list of Image
        The series, in display order.
    """

    def __init__(self, images: list[Image]) -> None:
        self._middle = images[len(images) // 2]
        self._window: WindowPreset | None = None
        self._lock = threading.Lock()

    def window(self) -> WindowPreset:
        """The shared window (decodes the middle image's frames the first time)."""
        with self._lock:
            if self._window is None:
                self._window = self._middle.data_window()
            return self._window


def _modality_key(fds) -> tuple:
    if fds is None:
        return ()
    lut = fds.get("ModalityLUTSequence")
    lut_key = None if not lut else (tuple(lut[0].get("LUTDescriptor", ())), id(lut[0]))
    return (
        str(fds.get("RescaleSlope")),
        str(fds.get("RescaleIntercept")),
        str(fds.get("DoseGridScaling")),
        lut_key,
    )


def open_image(path: str | os.PathLike, *, decode: bool = False) -> Image:
    """Open a DICOM or raster (PNG, JPEG, TIFF, BMP) file for display.

    The header is read and checked now; frames are decoded on first use, or with ``decode``
    the first frame now.

    Parameters
    ----------
    path : str or PathLike
        The file.
    decode : bool
        Decode the first frame now, for a caller that uses the pixels at once (a raster file
        is then read in one pass instead of two).

    Returns
    -------
    Image

    Raises
    ------
    StudyError
        The file is missing, unreadable, truncated, corrupt, holds no image, or uses a
        photometric interpretation Lucida does not display.
    CodecError
        The pixel data is compressed with a transfer syntax no installed plugin decodes; the
        message names the pip package to install.
    """
    path = Path(path)
    if not path.exists():
        raise StudyError("no such file", path=path, fix="check the path")
    if path.is_dir():
        raise StudyError(
            "is a folder", path=path, fix="open it as a study (GUI) or pass the files inside it"
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise StudyError(
            f"cannot be read ({exc.strerror or exc})", path=path, fix="check permissions"
        ) from None
    if len(head) < 132 or head[128:132] != b"DICM":
        if raster.is_raster(head):
            return raster.open_raster(path, Image, decode=decode)
    image = Image(**dicom_io.read_header(path))
    if decode:
        image._frame(0)
    return image
