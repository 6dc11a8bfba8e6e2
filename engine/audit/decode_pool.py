"""Decode processes that read and preprocess audit batches while the model runs.

Reading a batch (file reads, PNG or DICOM decode, windowing, resizing, the intended-use check)
is mostly Python and holds the interpreter lock, so a decode thread cannot overlap it with the
model pass: the two take turns, and each torch operation of the model pass can wait for the
lock to come back. Separate processes overlap for real.

The processes run this module (``python -m engine.audit.decode_pool``) and talk over their
standard input and output. They are not ``multiprocessing`` children: its spawn and fork-server
children re-import the parent's ``__main__`` script, which re-runs audits started from scripts
and notebooks without a main guard, and fork is unsafe in a process with threads (Qt, torch).

The processes serve every audit of one Python process: they start on first use, stay for the
next audit (a start costs seconds: torch is imported) and stop after :data:`IDLE_S` without
one, at exit, or with :func:`close`.
Until a process reports ready, and for any batch of one that dies, the audit decodes in its own
process, so results never depend on them: every batch goes through the same
:func:`engine.audit.loading.load_batch`.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.audit.loading import InputRecipe, LoadedBatch, load_batch
from engine.audit.manifest import AuditRow

#: Batches handed to each process ahead of the one the model needs now.
AHEAD = 2
#: Most decode processes chosen automatically, whatever the machine has.
AUTO_MAX = 4
#: Seconds without an audit after which the processes stop (each holds torch, ~300 MiB).
IDLE_S = 120.0
_READY = "ready"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def auto_processes() -> int:
    """Decode processes to use when not told: one per CPU the model pass leaves, at least 1."""
    return max(1, min(AUTO_MAX, (os.cpu_count() or 1) - 1))


class _Process:
    """One decode process, its replies read by a thread into a queue."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The child must import this engine, even when it was put on sys.path by a script.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.audit.decode_pool"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        self.ready = threading.Event()
        self.dead = False
        self.replies: queue.Queue = queue.Queue()
        self.in_flight = 0  # batches of the current audit not yet received
        threading.Thread(target=self._read, name="audit-decode-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                message = pickle.load(self.proc.stdout)
                if message == _READY:
                    self.ready.set()
                else:
                    self.replies.put(message)
        except (EOFError, OSError, pickle.UnpicklingError, AttributeError, ImportError):
            pass
        self.dead = True
        self.replies.put(None)

    @property
    def usable(self) -> bool:
        return self.ready.is_set() and not self.dead

    def send(self, token: tuple, rows: Sequence[AuditRow], recipe: InputRecipe) -> bool:
        """Ask for one batch; False when the process is gone."""
        try:
            pickle.dump((token, list(rows), recipe), self.proc.stdin, pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self.dead = True
            return False
        self.in_flight += 1
        return True

    def receive(self, token: tuple) -> LoadedBatch | None:
        """The batch asked for with ``token``; None when the process died first.

        Replies to an earlier, abandoned audit (a cancelled one) come first and are dropped.
        """
        while True:
            message = self.replies.get()
            if message is None:
                self.replies.put(None)  # for every later caller too
                return None
            got, loaded = message
            if got == token:
                self.in_flight -= 1
                return loaded if isinstance(loaded, LoadedBatch) else None

    def close(self) -> None:
        """End the process: it exits when its input closes; one that hangs is killed."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class _Pool:
    """The decode processes of this Python process; one audit uses them at a time."""

    def __init__(self) -> None:
        self.processes: list[_Process] = []
        self.lock = threading.Lock()
        self.runs = itertools.count()
        self.idle: threading.Timer | None = None

    def release(self) -> None:
        """End a use of the processes; they stop after :data:`IDLE_S` unless used again."""
        if self.idle is not None:
            self.idle.cancel()
        self.idle = threading.Timer(IDLE_S, self._stop_idle)
        self.idle.daemon = True
        self.idle.start()
        self.lock.release()

    def _stop_idle(self) -> None:
        if self.lock.acquire(blocking=False):
            try:
                self.resize(0)
            finally:
                self.lock.release()

    def resize(self, n: int) -> list[_Process]:
        """Keep ``n`` live processes (starting the missing ones); return them."""
        for proc in [p for p in self.processes if p.dead]:
            proc.close()
            self.processes.remove(proc)
        while len(self.processes) < n:
            try:
                self.processes.append(_Process())
            except OSError:
                break
        while len(self.processes) > n:
            self.processes.pop().close()
        return list(self.processes)

    def close(self) -> None:
        # At exit an audit thread may still hold the lock; its processes go all the same.
        held = self.lock.acquire(timeout=5)
        try:
            self.resize(0)
        finally:
            if held:
                self.lock.release()


_POOL = _Pool()
atexit.register(_POOL.close)


def close() -> None:
    """Stop the decode processes (the next audit starts new ones)."""
    _POOL.close()


def wait_ready(processes: int, timeout: float = 60.0) -> bool:
    """Start ``processes`` decode processes if needed and wait until they can take work.

    Audits never wait for them (they decode in-process until the processes are ready); tests
    and benchmarks that measure the processes do. Returns whether all are ready.
    """
    _POOL.lock.acquire()
    try:
        started = _POOL.resize(processes)
    finally:
        _POOL.release()
    return all(p.ready.wait(timeout) and not p.dead for p in started) and len(started) == processes


def process_ids() -> list[int]:
    """Process ids of the live decode processes."""
    return [p.proc.pid for p in _POOL.processes if not p.dead]


def decoded(batches: Sequence[Sequence[AuditRow]], recipe: InputRecipe,
            processes: int | None = None, counts: dict | None = None) -> Iterator[LoadedBatch]:
    """Yield :func:`~engine.audit.loading.load_batch` of each batch, in order.

    Parameters
    ----------
    batches : sequence of sequence of AuditRow
        The audit's batches.
    recipe : InputRecipe
        How to turn an image into the model's input.
    processes : int, optional
        Decode processes; None picks :func:`auto_processes`, 0 decodes every batch in this
        process. Another audit running in this process at the same time decodes in-process.
    counts : dict, optional
        Filled with ``{"processes": n, "here": m}``, the batches decoded by each side so far.

    Yields
    ------
    LoadedBatch
        One per batch, exactly what ``load_batch`` returns for it here.
    """
    n = auto_processes() if processes is None else max(0, int(processes))
    counts = {} if counts is None else counts
    counts.update(processes=0, here=0)
    if n == 0 or len(batches) < 2 or getattr(sys, "frozen", False) \
            or not _POOL.lock.acquire(blocking=False):
        for rows in batches:
            counts["here"] += 1
            yield load_batch(rows, recipe)
        return
    try:
        run = next(_POOL.runs)
        pool = _POOL.resize(n)
        for proc in pool:
            proc.in_flight = 0  # an abandoned audit's replies are dropped as they come
        owner: dict[int, _Process] = {}
        sent = 0  # every batch below this one was given to a process or decoded here
        for i, rows in enumerate(batches):
            # Keep the ready processes AHEAD batches ahead; batch i itself is only ever
            # waited for if a process already has it.
            sent = max(sent, i + 1)
            while sent < len(batches):
                ready = [p for p in pool if p.usable and p.in_flight < AHEAD]
                if not ready:
                    break
                proc = min(ready, key=lambda p: p.in_flight)
                if proc.send((run, sent), batches[sent], recipe):
                    owner[sent] = proc
                sent += 1
            proc = owner.pop(i, None)
            loaded = proc.receive((run, i)) if proc is not None else None
            counts["here" if loaded is None else "processes"] += 1
            yield loaded if loaded is not None else load_batch(rows, recipe)
    finally:
        _POOL.release()


def serve(stdin, stdout) -> None:
    """Decode batches read from ``stdin`` and write them to ``stdout`` until ``stdin`` ends."""
    import torch
    from PIL import Image as PILImage

    import engine.studies.image  # noqa: F401 - imported before "ready", not in the first batch

    # One thread each: the processes are the parallelism, and the model pass keeps its CPUs.
    torch.set_num_threads(1)
    PILImage.init()
    pickle.dump(_READY, stdout)
    stdout.flush()
    while True:
        try:
            token, rows, recipe = pickle.load(stdin)
        except EOFError:
            return
        try:
            reply = load_batch(rows, recipe)
        except Exception as exc:  # noqa: BLE001 - the audit decodes this batch itself
            reply = f"{type(exc).__name__}: {exc}"
        pickle.dump((token, reply), stdout, pickle.HIGHEST_PROTOCOL)
        stdout.flush()


def _main() -> None:
    # The parent ends this process by closing its input; Ctrl+C is the parent's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies own the real standard output; anything a library prints goes to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, channel)


if __name__ == "__main__":
    _main()
