"""The job router: every piece of engine work the window asks for, and where its answer goes.

Controllers call :meth:`JobRouter.submit` with the work and the handlers of its outcome. The
router sends the work to the window's workers (:class:`gui.worker.EngineWorkers`: file reads
on one thread, the rest on another), keeps the status bar's
message and progress up to date, and hands each answer to its handler only while it still
matters:

- a job of a kind that a newer job of the same kind superseded is dropped;
- a job tagged with the view it was asked for (see :meth:`JobRouter.submit`) is dropped when
  that view is gone: another image is shown, or, for frame-tagged jobs, another frame. So a map,
  a prediction or metrics that arrive for an image no longer shown never reach the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

#: Status-bar text while a job of a kind runs.
MESSAGES = {
    "startup": "Loading explainers…",
    "open": "Opening files…",
    "thumbs": "Drawing thumbnails…",
    "frame": "Decoding…",
    "prefetch": "Decoding frames…",
    "model": "Loading model…",
    "use": "Checking the model's intended use…",
    "explain": "Explaining…",
    "volume": "Resampling the volume in patient space…",
    "metrics": "Computing trust metrics…",
    "audit": "Running the bias audit…",
}
#: Kinds whose progress the status bar does not show (they run quietly in the background).
QUIET = ("thumbs", "prefetch", "use", "frame", "reference", "audit", "volume-map")

#: A view tag: (image token, frame), with frame None when any frame of the image will do.
Tag = tuple[int, int | None]


@dataclass
class _Pending:
    kind: str
    tag: Tag | None
    on_done: Callable | None
    on_failed: Callable | None
    on_partial: Callable | None
    on_progress: Callable | None
    on_cancelled: Callable | None
    context: dict = field(default_factory=dict)


class JobRouter(QObject):
    """Routes work to the worker and its outcome back to the handler that asked for it.

    Parameters
    ----------
    worker : EngineWorkers or QtEngineWorker
        Where the work runs.
    current_tag : callable
        Returns the view tag shown now, ``(image token, frame)``.
    parent : QObject, optional

    Signals
    -------
    sig_status(str message)
        What the status bar should say.
    sig_progress(float fraction)
        Progress of the visible job, or -1 when no visible job runs.
    sig_failed(str one_line)
        A current job failed and it had no failure handler of its own.
    """

    sig_status = Signal(str)
    sig_progress = Signal(float)
    sig_failed = Signal(str)

    def __init__(self, worker, current_tag: Callable[[], Tag], parent=None) -> None:
        super().__init__(parent)
        self.worker = worker
        self._current_tag = current_tag
        self._pending: dict[int, _Pending] = {}
        self._latest: dict[str, int] = {}
        worker.sig_started.connect(self._started)
        worker.sig_progress.connect(self._progress)
        worker.sig_partial.connect(self._partial)
        worker.sig_finished.connect(self._finished)
        worker.sig_failed.connect(self._failed)
        worker.sig_cancelled.connect(self._cancelled)
        worker.sig_idle.connect(lambda: self.sig_progress.emit(-1.0))
        self._visible: set[int] = set()  # jobs whose progress the status bar shows

    # -- asking ---------------------------------------------------------------------------
    def submit(self, kind: str, fn: Callable, *, tag: Tag | None = None,
               on_done: Callable | None = None, on_failed: Callable | None = None,
               on_partial: Callable | None = None, on_progress: Callable | None = None,
               on_cancelled: Callable | None = None, background: bool = False,
               **context) -> int:
        """Run ``fn(progress, cancel, on_partial)`` on the worker.

        Parameters
        ----------
        kind : str
            A newer job of the same kind supersedes this one.
        fn : callable
            The work; it runs on the worker thread and must not touch widgets.
        tag : (int, int or None), optional
            The view this job is for: its outcome is dropped once that view is gone.
        on_done, on_failed, on_partial, on_progress, on_cancelled : callable, optional
            ``on_done(result, context)``, ``on_failed(one_line, context)``,
            ``on_partial(value, context)``, ``on_progress(fraction, message, context)``,
            ``on_cancelled(context)``. Without ``on_failed`` a failure is announced through
            ``sig_failed``.
        background : bool
            See :meth:`gui.worker.QtEngineWorker.submit`.
        **context
            Stored with the job and handed to every handler.

        Returns
        -------
        int
            The job id.
        """
        job_id = self.worker.submit(kind, fn, background=background)
        self._pending[job_id] = _Pending(kind, tag, on_done, on_failed, on_partial, on_progress,
                                         on_cancelled, {"kind": kind, "tag": tag, **context})
        self._latest[kind] = job_id
        return job_id

    def latest(self, kind: str) -> int | None:
        """Return the id of the newest job of ``kind`` (finished or not)."""
        return self._latest.get(kind)

    def is_pending(self, kind: str) -> bool:
        """Whether the newest job of ``kind`` has not reported its outcome yet."""
        return self._latest.get(kind) in self._pending

    def cancel(self, kind: str | None = None) -> None:
        """Cancel running and queued work (of ``kind`` only, if given)."""
        self.worker.cancel(kind)

    # -- answers --------------------------------------------------------------------------
    def _live(self, job_id: int) -> _Pending | None:
        """The job's record while its outcome still matters, else None."""
        pending = self._pending.get(job_id)
        if pending is None or self._latest.get(pending.kind) != job_id:
            return None
        if pending.tag is not None:
            token, frame = self._current_tag()
            if pending.tag[0] != token or pending.tag[1] not in (None, frame):
                return None
        return pending

    def live_context(self, kind: str) -> dict | None:
        """The context of the newest job of ``kind`` whose outcome still matters, or None."""
        job_id = self._latest.get(kind)
        pending = None if job_id is None else self._live(job_id)
        return None if pending is None else pending.context

    def _started(self, job_id: int, kind: str) -> None:
        if kind not in QUIET and self._live(job_id) is not None:
            self._visible.add(job_id)
            self.sig_status.emit(MESSAGES.get(kind, "Working…"))
            self.sig_progress.emit(0.0)

    def _over(self, job_id: int) -> _Pending | None:
        """Forget a job that reported its outcome; return its record if it still matters."""
        pending = self._live(job_id)
        self._pending.pop(job_id, None)
        if job_id in self._visible:
            self._visible.discard(job_id)
            if not self._visible:
                self.sig_progress.emit(-1.0)  # background work runs on without a bar
        return pending

    def _progress(self, job_id: int, fraction: float, text: str) -> None:
        pending = self._live(job_id)
        if pending is None:
            return
        if pending.kind not in QUIET:
            self.sig_progress.emit(fraction)
            if text:
                self.sig_status.emit(text)
        if pending.on_progress is not None:
            pending.on_progress(fraction, text, pending.context)

    def _partial(self, job_id: int, value) -> None:
        pending = self._live(job_id)
        if pending is not None and pending.on_partial is not None:
            pending.on_partial(value, pending.context)

    def _finished(self, job_id: int, _kind: str, result) -> None:
        pending = self._over(job_id)
        if pending is not None and pending.on_done is not None:
            pending.on_done(result, pending.context)

    def _failed(self, job_id: int, _kind: str, text: str) -> None:
        pending = self._over(job_id)
        if pending is None:
            return
        if pending.on_failed is not None:
            pending.on_failed(text, pending.context)
        else:
            self.sig_failed.emit(text)

    def _cancelled(self, job_id: int, _kind: str) -> None:
        pending = self._over(job_id)
        if pending is None:
            return
        if pending.kind not in QUIET:
            self.sig_status.emit("Cancelled")
        if pending.on_cancelled is not None:
            pending.on_cancelled(pending.context)
