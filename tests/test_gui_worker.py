"""The engine bridge: one worker thread, superseding requests, cancel, one-line errors."""

from __future__ import annotations

import threading

import pytest

from engine.core.errors import StudyError
from gui.worker import QtEngineWorker


@pytest.fixture
def worker(qtbot):
    w = QtEngineWorker()
    yield w
    w.stop()


def _record(worker):
    events = []
    worker.sig_finished.connect(lambda i, k, r: events.append(("done", i, r)))
    worker.sig_failed.connect(lambda i, k, t: events.append(("failed", i, t)))
    worker.sig_cancelled.connect(lambda i, k: events.append(("cancelled", i)))
    return events


def test_new_request_supersedes_the_running_and_queued_ones(worker, qtbot):
    events = _record(worker)
    started = threading.Event()
    threads = []

    def slow(progress, cancel, partial):
        threads.append(threading.current_thread())
        started.set()
        while True:
            cancel.check()
            progress(0.5, "waiting")
            threading.Event().wait(0.005)

    first = worker.submit("explain", slow)
    assert started.wait(5)
    second = worker.submit("explain", lambda p, c, o: "stale")
    third = worker.submit("explain", lambda p, c, o: (threads.append(threading.current_thread())
                                                       or "fresh"))
    qtbot.waitUntil(lambda: ("done", third, "fresh") in events, timeout=5000)
    assert ("cancelled", first) in events
    assert ("cancelled", second) in events
    assert not any(e[0] == "done" and e[1] == second for e in events)
    # Both jobs ran on the same worker thread, not the GUI thread.
    assert threads[0] is threads[1] is not threading.main_thread()


def test_other_kinds_are_not_superseded(worker, qtbot):
    events = _record(worker)
    a = worker.submit("open", lambda p, c, o: "opened")
    b = worker.submit("model", lambda p, c, o: "loaded")
    qtbot.waitUntil(lambda: len(events) == 2, timeout=5000)
    assert events == [("done", a, "opened"), ("done", b, "loaded")]


def test_cancel_stops_a_running_job(worker, qtbot):
    events = _record(worker)
    started = threading.Event()

    def forever(progress, cancel, partial):
        started.set()
        while True:
            cancel.check()
            threading.Event().wait(0.005)

    job = worker.submit("explain", forever)
    assert started.wait(5)
    worker.cancel()
    qtbot.waitUntil(lambda: ("cancelled", job) in events, timeout=2000)


def test_errors_come_back_as_one_line(worker, qtbot):
    events = _record(worker)

    def bad(progress, cancel, partial):
        raise StudyError("not a DICOM file", path="x.dcm", fix="open a .dcm file")

    def broken(progress, cancel, partial):
        raise RuntimeError("boom\nwith a second line")

    a = worker.submit("open", bad)
    b = worker.submit("model", broken)
    qtbot.waitUntil(lambda: len(events) == 2, timeout=5000)
    assert events[0] == ("failed", a, "x.dcm: not a DICOM file. Fix: open a .dcm file")
    assert events[1][:2] == ("failed", b) and "RuntimeError" in events[1][2]
    assert "\n" not in events[1][2]
    # The thread survived both failures.
    c = worker.submit("open", lambda p, cc, o: 42)
    qtbot.waitUntil(lambda: ("done", c, 42) in events, timeout=5000)


def test_partial_results_and_progress_arrive(worker, qtbot):
    partials, progress = [], []
    worker.sig_partial.connect(lambda i, v: partials.append(v))
    worker.sig_progress.connect(lambda i, f, m: progress.append(f))

    def job(prog, cancel, on_partial):
        for n in range(3):
            on_partial(n)
        prog(1.0, "done")
        return "ok"

    with qtbot.waitSignal(worker.sig_finished, timeout=5000):
        worker.submit("explain", job)
    qtbot.waitUntil(lambda: progress == [1.0], timeout=2000)
    assert partials == [0, 1, 2]


def test_background_work_yields_to_other_work_and_resumes(worker, qtbot):
    events = _record(worker)
    order = []
    runs = []
    started = threading.Event()

    def background(progress, cancel, partial):
        runs.append(len(order))
        started.set()
        for _step in range(200):
            cancel.check()
            threading.Event().wait(0.005)
        order.append("background done")
        return "background"

    slow = worker.submit("prefetch", background, background=True)
    assert started.wait(5)
    quick = worker.submit("explain", lambda p, c, o: order.append("foreground") or "foreground")
    qtbot.waitUntil(lambda: ("done", slow, "background") in events, timeout=10_000)
    assert ("done", quick, "foreground") in events
    # The foreground job ran in between: the background one was preempted, then ran again.
    assert order.index("foreground") < order.index("background done")
    assert len(runs) == 2 and not any(e[0] == "cancelled" for e in events)


def test_a_waiting_background_job_runs_after_the_foreground_ones(worker, qtbot):
    events = _record(worker)
    gate = threading.Event()
    first = worker.submit("open", lambda p, c, o: gate.wait(5) and "opened")
    later = worker.submit("thumbs", lambda p, c, o: "thumbs", background=True)
    model = worker.submit("model", lambda p, c, o: "model")
    gate.set()
    qtbot.waitUntil(lambda: len(events) == 3, timeout=5000)
    assert [e[1] for e in events] == [first, model, later]
