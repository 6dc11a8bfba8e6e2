"""The engine bridge: worker threads own all engine work and report back with queued signals.

Widgets call ``submit(kind, fn, ...)``; ``fn(progress, cancel, on_partial)`` runs on a worker
thread, with its token current (:func:`engine.core.cancel.cancel_scope`), so the file reads deep
inside pydicom or Pillow stop when the job is cancelled. A new job of a kind supersedes the
stale one of the same kind (a queued one is dropped, a running one is cancelled), so clicking
through methods never piles up work. Results, partial
results, progress, errors and cancellations come back as signals carrying the job id; since the
receivers live on the GUI thread, Qt queues them there.

Background jobs (frame prefetch, thumbnails, a bias audit) run only while no other job waits.
When one arrives, the running background job is preempted at its next cancel check and queued
again, to run from the start once the queue is free; such jobs are written to pick up where they
stopped (decoded frames stay decoded, an audit resumes its finished batches).

The window uses :class:`EngineWorkers`: reading files runs on a thread of its own, so a long
read never holds up an explanation, and all torch work stays on the other one.

An unexpected exception (a bug, not bad input) comes back as one line that says where its
traceback was logged (:mod:`engine.core.log`).
"""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal

from engine.core.cancel import Cancelled, CancelToken, cancel_scope
from engine.core.errors import LucidaError
from engine.core.log import internal_error_line

#: Progress is forwarded at most this often, so a fast loop cannot flood the GUI thread.
PROGRESS_INTERVAL_S = 0.05
#: Nice value of the worker thread (higher is lower priority).
WORKER_NICE = 10
#: Longest time the GUI thread waits for the interpreter lock while the worker computes.
SWITCH_INTERVAL_S = 0.001
#: Kinds of job that read files (a study, a frame): :class:`EngineWorkers` runs them apart.
READ_KINDS = frozenset({"open", "frame"})
#: Job ids, unique across every worker of the process (a window's two threads share a router).
_IDS = itertools.count(1)


@dataclass
class Job:
    """One unit of work for the worker thread."""

    id: int
    kind: str
    fn: Callable
    background: bool = False
    cancel: CancelToken = field(default_factory=CancelToken)
    #: Set when the token was cancelled only to make room for other work.
    preempted: bool = False


class QtEngineWorker(QThread):
    """The single thread that runs every engine call of the GUI.

    Signals
    -------
    sig_started(int id, str kind)
    sig_progress(int id, float fraction, str message)
    sig_partial(int id, object value)
    sig_finished(int id, str kind, object result)
    sig_failed(int id, str kind, str one_line)
    sig_cancelled(int id, str kind)
    sig_idle()
        Nothing left to run.
    """

    sig_started = Signal(int, str)
    sig_progress = Signal(int, float, str)
    sig_partial = Signal(int, object)
    sig_finished = Signal(int, str, object)
    sig_failed = Signal(int, str, str)
    sig_cancelled = Signal(int, str)
    sig_idle = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        _WORKERS.add(self)
        # The GUI thread enters Python for every event handler and slot; while torch works
        # here it waits for the GIL up to the switch interval each time. 5 ms (the default)
        # adds up to visible stalls when a grid of viewers lays itself out; 1 ms does not.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._lock = threading.Condition()
        self._queue: list[Job] = []
        self._running: Job | None = None
        self._stopping = False
        self._cores_shared = False

    # -- GUI-thread API -------------------------------------------------------------------
    def submit(self, kind: str, fn: Callable, background: bool = False) -> int:
        """Queue ``fn(progress, cancel, on_partial)``, superseding older jobs of ``kind``.

        Parameters
        ----------
        kind : str
            Jobs of one kind supersede each other.
        fn : callable
            The work, run on the worker thread.
        background : bool
            Run only while nothing else waits, and yield to any other job (see the module
            docstring); ``fn`` must then be safe to run again from the start.

        Returns
        -------
        int
            The job id the signals will carry.
        """
        job = Job(next(_IDS), kind, fn, background)
        with self._lock:
            dropped = [j for j in self._queue if j.kind == kind]
            for stale in dropped:
                self._queue.remove(stale)
            running = self._running
            if running is not None and running.kind == kind:
                running.preempted = False
                running.cancel.cancel()
            elif running is not None and running.background and not background:
                running.preempted = True
                running.cancel.cancel()
            self._queue.append(job)
            self._lock.notify()
        # Announced outside the lock: a receiver may call back into the worker (even stop it).
        for stale in dropped:
            self.sig_cancelled.emit(stale.id, stale.kind)
        if not self.isRunning():
            self._stopping = False  # a stopped worker starts again for new work
            self.start()
        return job.id

    def cancel(self, kind: str | None = None) -> None:
        """Cancel the running job and drop queued ones (of ``kind`` only, if given)."""
        with self._lock:
            dropped = [j for j in self._queue if kind is None or j.kind == kind]
            for stale in dropped:
                self._queue.remove(stale)
            if self._running is not None and (kind is None or self._running.kind == kind):
                self._running.preempted = False
                self._running.cancel.cancel()
        for stale in dropped:
            self.sig_cancelled.emit(stale.id, stale.kind)

    def busy(self) -> bool:
        """Whether a job is running or queued."""
        with self._lock:
            return self._running is not None or bool(self._queue)

    def stop(self, timeout_ms: int = 30000) -> None:
        """Cancel everything and end the thread (called when the window closes).

        A job notices the cancel at its next check; one inside a long library call (decoding
        a series, say) finishes that call first. The wait is long enough for that, because Qt
        aborts the whole process if a thread object is destroyed while its thread still runs.
        """
        with self._lock:
            self._stopping = True
            self._queue.clear()
            if self._running is not None:
                self._running.cancel.cancel()
            self._lock.notify()
        self.wait(timeout_ms)

    # -- worker thread --------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - QThread entry point
        # Lower this thread's scheduling priority (Linux nice values are per thread), so on a
        # busy machine the GUI thread gets the core first and torch takes what is left.
        if hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
            except OSError:
                pass  # not permitted here: run at normal priority
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._running = self._next_job()
            self._run_job(job)
            with self._lock:
                self._running = None
                idle = not self._queue
            if idle:
                self.sig_idle.emit()

    def _next_job(self) -> Job:
        """Pop the first foreground job, else the first background one (lock held)."""
        index = next((i for i, j in enumerate(self._queue) if not j.background), 0)
        return self._queue.pop(index)

    def _requeue(self, job: Job) -> bool:
        """Queue a preempted job again with a fresh token; False if it was cancelled since."""
        with self._lock:
            if not job.preempted or self._stopping or any(j.kind == job.kind
                                                          for j in self._queue):
                return False
            job.preempted = False
            job.cancel = CancelToken()
            self._queue.append(job)
            return True

    def _share_cores(self) -> None:
        """Leave one core to the GUI thread so painting keeps up while torch computes.

        Only once torch is loaded (by the first engine job): importing it here would make
        jobs that never touch torch wait seconds.
        """
        torch = sys.modules.get("torch")
        # The other worker thread may be importing torch right now: wait until it is done.
        importing = getattr(getattr(torch, "__spec__", None), "_initializing", False)
        if torch is not None and not importing and not self._cores_shared:
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
            self._cores_shared = True

    def _run_job(self, job: Job) -> None:
        last = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            now = time.monotonic()
            if fraction >= 1.0 or now - last[0] >= PROGRESS_INTERVAL_S:
                last[0] = now
                self.sig_progress.emit(job.id, float(fraction), str(message))

        def on_partial(value) -> None:
            self.sig_partial.emit(job.id, value)

        self.sig_started.emit(job.id, job.kind)
        self._share_cores()
        try:
            job.cancel.check()
            with cancel_scope(job.cancel):
                result = job.fn(progress, job.cancel, on_partial)
        except Cancelled:
            if not self._requeue(job):
                self.sig_cancelled.emit(job.id, job.kind)
        except LucidaError as exc:
            self.sig_failed.emit(job.id, job.kind, exc.one_line())
        except Exception as exc:  # noqa: BLE001 - the app must survive any engine failure
            self.sig_failed.emit(job.id, job.kind, internal_error_line(exc, f"{job.kind} job"))
        else:
            if job.cancel.cancelled and not job.preempted:
                self.sig_cancelled.emit(job.id, job.kind)
            else:
                self.sig_finished.emit(job.id, job.kind, result)


class EngineWorkers(QObject):
    """The window's two worker threads: one reads files, the other does everything else.

    A read of a huge or slow file then never makes an explanation wait. Each thread keeps the
    rules of :class:`QtEngineWorker` among its own jobs (superseding, background jobs); the
    signals of both arrive here, on the GUI thread, with ids unique across the two.

    Signals
    -------
    The same as :class:`QtEngineWorker`; ``sig_idle`` once neither thread has work left.
    """

    sig_started = Signal(int, str)
    sig_progress = Signal(int, float, str)
    sig_partial = Signal(int, object)
    sig_finished = Signal(int, str, object)
    sig_failed = Signal(int, str, str)
    sig_cancelled = Signal(int, str)
    sig_idle = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.reader = QtEngineWorker(self)
        # The reader never computes with torch, so it never touches torch's thread settings
        # (torch may be half-imported by the compute thread at that very moment).
        self.reader._cores_shared = True
        self.compute = QtEngineWorker(self)
        for lane in (self.reader, self.compute):
            for name in ("sig_started", "sig_progress", "sig_partial", "sig_finished",
                         "sig_failed", "sig_cancelled"):
                getattr(lane, name).connect(getattr(self, name))
            lane.sig_idle.connect(self._lane_idle)

    def _lane(self, kind: str) -> QtEngineWorker:
        return self.reader if kind in READ_KINDS else self.compute

    def submit(self, kind: str, fn: Callable, background: bool = False) -> int:
        """Queue ``fn`` on the thread for ``kind`` (see :meth:`QtEngineWorker.submit`)."""
        return self._lane(kind).submit(kind, fn, background)

    def cancel(self, kind: str | None = None) -> None:
        """Cancel running and queued work (of ``kind`` only, if given) on both threads."""
        for lane in (self.reader, self.compute) if kind is None else (self._lane(kind),):
            lane.cancel(kind)

    def busy(self) -> bool:
        """Whether a job is running or queued on either thread."""
        return self.reader.busy() or self.compute.busy()

    def isRunning(self) -> bool:  # noqa: N802 - the name QThread gives it
        """Whether either thread is running."""
        return self.reader.isRunning() or self.compute.isRunning()

    def stop(self, timeout_ms: int = 30000) -> None:
        """Cancel everything and end both threads (see :meth:`QtEngineWorker.stop`)."""
        self.reader.stop(timeout_ms)
        self.compute.stop(timeout_ms)

    def _lane_idle(self) -> None:
        if not self.busy():
            self.sig_idle.emit()


#: Every worker made in this process: one whose window was never closed must still be stopped
#: before the interpreter destroys it, or Qt aborts the process.
_WORKERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    for worker in list(_WORKERS):
        if worker.isRunning():
            worker.stop()
