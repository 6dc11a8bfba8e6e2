"""Frames are decoded on the worker, never by the viewer: the one asked for first, then the rest.

When an image is shown, its frame is decoded by a foreground job. A multi-frame image then gets
a background job that decodes the frames after it, in playing order, within a memory budget; it
yields to any other work and resumes where it stopped. The viewer draws only decoded frames, so
stepping and cine cost the GUI thread a window look-up, not a decode.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from engine.core.case import content_of
from engine.core.errors import LucidaError

#: Decoded pixels (stored values plus modality values) kept ahead of the viewer, per image.
PREFETCH_BYTES = 384 << 20
#: Pause between prefetched frames, so the GUI thread is never starved of the locks.
YIELD_S = 0.003
#: Bytes per pixel of one decoded grey frame: stored values (up to 4) and float32 modality.
_GREY_BYTES = 8
#: Bytes per pixel of one decoded colour frame.
_COLOUR_BYTES = 3


def decode_frame(image, frame: int) -> None:
    """Decode one frame into the image's cache, with everything the viewer reads from it.

    Runs on the worker: the window and the modality values are computed here, so drawing and
    the pixel readout on the GUI thread are look-ups.
    """
    image.modality_frame(frame)
    content_of(image, frame)  # the case identity hashes the file here, not on the GUI thread
    if not image.is_color:
        image.default_window_for(frame)


def prefetch_order(n_frames: int, start: int, frame_bytes: int,
                   budget: int = PREFETCH_BYTES) -> list[int]:
    """The frames to decode ahead of ``start``, in playing order, within ``budget`` bytes.

    Parameters
    ----------
    n_frames : int
        Frames of the image.
    start : int
        The frame on screen (not included).
    frame_bytes : int
        Decoded size of one frame.
    budget : int
        Bytes the prefetched frames may take.

    Returns
    -------
    list of int
    """
    count = min(n_frames - 1, max(0, budget // max(frame_bytes, 1)))
    return [(start + k) % n_frames for k in range(1, count + 1)]


class FrameLoader(QObject):
    """Tracks which frames of the shown image are decoded and asks the worker for the others.

    Parameters
    ----------
    jobs : gui.jobs.JobRouter
    tag : callable
        Returns the current image tag ``(token, None)``: answers for another image are dropped.

    Signals
    -------
    sig_ready(int frame)
        A frame of the current image is decoded.
    sig_failed(str one_line)
        The frame asked for cannot be decoded (the image cannot be shown).
    """

    sig_ready = Signal(int)
    sig_failed = Signal(str)

    def __init__(self, jobs, tag, parent=None) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self._tag = tag
        self.image = None
        self._decoded: set[int] = set()
        self._wanted: int | None = None

    def show(self, image) -> None:
        """Start on a new image: nothing of it is decoded until :meth:`request` asks."""
        self.image = image
        self._decoded = set()
        self._wanted = None

    def show_decoded(self, image) -> None:
        """Start on an image decoded elsewhere (a volume, with its planes): its frame is ready."""
        self.show(image)
        self._decoded = {0}

    def forget(self) -> None:
        """No image is shown any more."""
        self.image = None
        self._decoded = set()

    def is_ready(self, frame: int) -> bool:
        """Whether ``frame`` of the current image is decoded."""
        return frame in self._decoded

    def decoded_count(self) -> int:
        """How many frames of the current image are decoded."""
        return len(self._decoded)

    def request(self, frame: int) -> None:
        """Ask for ``frame`` now (a foreground job that supersedes the previous request)."""
        image = self.image
        if image is None or frame in self._decoded or frame == self._wanted:
            return
        self._wanted = frame

        def run(_progress, _cancel, _partial):
            decode_frame(image, frame)
            return frame

        self._jobs.submit("frame", run, tag=self._tag(), on_done=self._decoded_one,
                          on_failed=self._failed, on_cancelled=self._cancelled)

    def _decoded_one(self, frame: int, _context: dict) -> None:
        self._wanted = None
        self._decoded.add(frame)
        self.sig_ready.emit(frame)
        if self.image is not None and self.image.n_frames > 1:
            self._prefetch(frame)

    def _failed(self, text: str, _context: dict) -> None:
        self._wanted = None
        self.sig_failed.emit(text)

    def _cancelled(self, _context: dict) -> None:
        self._wanted = None

    def _prefetch(self, start: int) -> None:
        image = self.image
        rows, cols = image.shape
        frame_bytes = rows * cols * (_COLOUR_BYTES if image.is_color else _GREY_BYTES)
        todo = [f for f in prefetch_order(image.n_frames, start, frame_bytes)
                if f not in self._decoded]
        if not todo:
            return

        def run(progress, cancel, on_partial):
            # Preempted and run again from the start: frames decoded before are cache hits.
            for n, frame in enumerate(todo):
                cancel.check()
                try:
                    decode_frame(image, frame)
                except LucidaError:
                    continue  # stepping onto this frame asks for it again and shows why
                on_partial(frame)
                progress((n + 1) / len(todo), "")
                # Decoders hold the interpreter lock and the image's lock while they run;
                # a pause between frames lets the GUI thread take both and draw.
                time.sleep(YIELD_S)
            return len(todo)

        self._jobs.submit("prefetch", run, tag=self._tag(), background=True,
                          on_partial=self._prefetched)

    def _prefetched(self, frame: int, _context: dict) -> None:
        if frame not in self._decoded:
            self._decoded.add(frame)
            self.sig_ready.emit(frame)
