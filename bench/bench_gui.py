"""GUI responsiveness on a real window (offscreen, on a 1440 × 900 virtual screen).

- heartbeat stalls during Score-CAM, in the single viewer and in a compare grid of every layer;
- the largest stall while a 14-cell compare grid is built (maps from the cache), goal < 50 ms;
- the largest stall while stepping through the frames of a 120-frame multi-frame DICOM (JPEG
  2000, 512 × 512), right after it opens (frames still being decoded on the worker) and once
  prefetched, goal < 50 ms;
- layer click to repaint.

Peers measured in the same run:
- stalls: the same Score-CAM run on the GUI thread (what a viewer without a worker does);
- frames: decoding and drawing each frame on the GUI thread (what a viewer that decodes does);
- layer click: the same layer fetched through the worker and the engine's capture cache.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from smoke import sized  # noqa: E402

HEARTBEAT_MS = 10
STALL_GOAL_MS = 50.0
REPAINT_GOAL_MS = 50.0
CLICKS = sized(20, 4)
#: Frames of the multi-frame DICOM stepped through, their size, and the time between steps.
FRAMES = sized(120, 6)
FRAME_SIZE = sized(512, 64)
STEP_MS = 15
#: Score-CAM's mode in the stall runs (exact scores every channel: minutes in smoke mode).
SCORECAM_MODE = sized("exact", "fast")
#: The virtual screen of the run (the window never exceeds its screen).
SCREEN = (1440, 900)


def _virtual_screen() -> None:
    """Run on Qt's offscreen platform with a desktop-sized screen (its default is 800 × 800)."""
    if os.environ.get("QT_QPA_PLATFORM", "offscreen") != "offscreen":
        return
    config = Path(tempfile.mkdtemp()) / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "bench", "x": 0, "y": 0,
                                               "width": SCREEN[0], "height": SCREEN[1],
                                               "logicalDpi": 96, "dpr": 1}]}))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"


def _pump(app, until, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("the GUI did not reach the expected state in time")
        app.processEvents()
        time.sleep(0.001)


class Heartbeat:
    """A QTimer whose largest gap between ticks, beyond its interval, is the worst stall."""

    def __init__(self, timer_cls) -> None:
        self.timer = timer_cls()
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append((now - self._last) * 1000 - HEARTBEAT_MS)
        self._last = now

    def start(self) -> None:
        self.gaps, self._last = [], None
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return max(self.gaps, default=0.0)


def main() -> None:
    """Print stall and repaint numbers with their ratios to the peers."""
    _virtual_screen()
    from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.explain.session import ExplainRequest
    from gui.main_window import QtMainWindow

    load = os.getloadavg()
    app = QApplication.instance() or QApplication(["bench"])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.show()
    drawn = []
    win.sig_map_drawn.connect(lambda m, lay: drawn.append((m, lay)))
    win.open_demo()
    _pump(app, lambda: drawn and not win.worker.busy())

    # -- stalls during Score-CAM on the worker ----------------------------------------------
    beat = Heartbeat(QTimer)
    layers = [info.name for info in win.model.layers()]
    runs = {}
    # One map in the single viewer (batch 1: many small passes, the most GIL traffic), then
    # every layer in compare mode (a long run with fourteen cells repainting as maps arrive).
    for label, batch, compare in (("single layer", 1, False), ("all layers, compare", 8, True)):
        win.param_values["scorecam"] = {**win.params_for("scorecam"), "mode": SCORECAM_MODE,
                                        "batch_size": batch}
        win.maps.clear()
        win.session.clear_cache()
        beat.start()
        # Let the heartbeat tick first, so a stall in the click handler itself is counted.
        _pump(app, lambda: len(beat.gaps) >= 2)
        start = time.perf_counter()
        if compare:
            win.panel.set_compare_selection(["scorecam"], layers)
            win.set_compare(True)
        else:
            win.set_method("scorecam")
        _pump(app, lambda: win.everything_drawn() and not win.worker.busy())
        elapsed = (time.perf_counter() - start) * 1000
        stall = beat.stop()
        gaps = sorted(beat.gaps) or [0.0]
        runs[label] = (elapsed, stall, gaps[int(0.95 * (len(gaps) - 1))], len(beat.gaps))
        win.set_compare(False)

    # Peer: the single-layer request run on the GUI thread, with a fresh capture cache.
    from engine.explain.session import Session

    request = ExplainRequest(image=win.image, model=win.model, methods=["scorecam"],
                             layers=[win.layer], params={"scorecam": {**win.params_for(
                                 "scorecam"), "batch_size": 1}})
    # On the GUI thread no heartbeat can fire while it runs: the stall is the whole call.
    start = time.perf_counter()
    Session().explain(request)
    blocking_stall = (time.perf_counter() - start) * 1000

    # -- building a compare grid whose maps are cached -----------------------------------------
    win.set_method("gradcam")
    _pump(app, lambda: not win.worker.busy() and win.layer_model.heatmap is not None)
    grid_layers = layers[-7:]
    win.panel.set_compare_selection(["gradcam", "gradcampp"], grid_layers)
    win.set_compare(True)  # once, so every map of the grid is in the cache
    _pump(app, lambda: win.everything_drawn() and not win.worker.busy())
    win.set_compare(False)
    grid = {}
    # Peer: the same grid built in one pass of the event loop (all cells at once).
    import gui.compare_view as compare_view

    batches = compare_view.CELLS_PER_PASS
    for label, per_pass in (("in batches", batches), ("in one pass", 10**6)):
        compare_view.CELLS_PER_PASS = per_pass
        win.compare.clear()
        _pump(app, lambda: not win.worker.busy())
        beat.start()
        _pump(app, lambda: len(beat.gaps) >= 2)
        start = time.perf_counter()
        win.set_compare(True)
        _pump(app, lambda: win.everything_drawn() and not win.worker.busy())
        _pump(app, lambda start=start: time.perf_counter() - start > 0.3)  # the last paints
        grid[label] = (beat.stop(), len(win.compare.cells))
        win.set_compare(False)
    compare_view.CELLS_PER_PASS = batches

    # -- stepping through the frames of a multi-frame DICOM -----------------------------------
    from gui_fixtures import write_multiframe
    from pydicom.uid import JPEG2000Lossless

    from engine.studies.image import open_image

    frame_runs, frame_peers = {}, {}
    folder = Path(tempfile.mkdtemp())
    for kind, syntax in (("uncompressed", None), ("JPEG 2000", JPEG2000Lossless)):
        movie = write_multiframe(folder / f"{len(frame_peers)}.dcm", FRAMES, size=FRAME_SIZE,
                                 syntax=syntax)
        for label in ("just opened", "prefetched"):
            before = win.image
            win.open_paths([str(movie)])
            # A new image object: the same file opened again is read again.
            _pump(app, lambda before=before: win.image is not before
                  and not win.viewer.rendered_image().isNull())
            if label == "prefetched":
                _pump(app, lambda: win.frames.decoded_count() == FRAMES
                      and not win.worker.busy())
            shown = []
            win.viewer.sig_frame_changed.connect(shown.append)
            stepper = QTimer()
            stepper.setInterval(STEP_MS)
            stepper.timeout.connect(lambda: win.viewer.step_frame(1))
            beat.start()
            _pump(app, lambda: len(beat.gaps) >= 2)
            start = time.perf_counter()
            stepper.start()
            _pump(app, lambda shown=shown: len(shown) >= FRAMES - 1)
            stepper.stop()
            elapsed = (time.perf_counter() - start) * 1000
            frame_runs[(kind, label)] = (beat.stop(), elapsed, len(shown))
            win.viewer.sig_frame_changed.disconnect(shown.append)
        # Peer: a viewer that decodes and draws each frame itself, on the GUI thread.
        fresh = open_image(movie)
        costs = []
        for frame in range(FRAMES):
            t0 = time.perf_counter()
            fresh.render(frame)
            costs.append((time.perf_counter() - t0) * 1000)
        frame_peers[kind] = max(costs)
    # -- layer click to repaint ----------------------------------------------------------------
    win.open_demo()
    _pump(app, lambda: not win.worker.busy() and win.layer_model.heatmap is not None
          and win.image.n_frames == 1)
    # The other layer first: a click on the layer already shown changes nothing.
    pair = [next(n for n in layers if n != win.layer), win.layer]

    class PaintSpy(QObject):
        seen = False

        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint:
                PaintSpy.seen = True
            return False

    spy = PaintSpy()
    win.viewer.viewport().installEventFilter(spy)
    passes = win.session.forward_passes

    def click_to_paint(name: str) -> float:
        PaintSpy.seen = False
        t0 = time.perf_counter()
        win.panel.select_layer(name)
        _pump(app, lambda: PaintSpy.seen and win.layer_model.heatmap is not None)
        return (time.perf_counter() - t0) * 1000

    cached = [click_to_paint(pair[i % 2]) for i in range(CLICKS)]
    cache_passes = win.session.forward_passes - passes

    def through_worker(name: str) -> float:
        win.maps.clear()  # forget this window's maps; the engine keeps its capture
        return click_to_paint(name)

    uncached = [through_worker(pair[i % 2]) for i in range(CLICKS // 2)]

    cached_med, uncached_med = statistics.median(cached), statistics.median(uncached)
    print(f"load average before/after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    for label, (elapsed, stall, p95, ticks) in runs.items():
        print(f"score-cam {label:20s}: {elapsed:6.0f} ms on the worker, {ticks} heartbeats, "
              f"max stall {stall:6.1f} ms, 95th percentile {p95:5.1f} ms "
              f"(goal < {STALL_GOAL_MS:.0f} ms: {'met' if stall < STALL_GOAL_MS else 'MISSED'})")
    single = runs["single layer"][1]
    print(f"score-cam single layer on the GUI thread (peer): stall {blocking_stall:6.1f} ms; "
          f"ratio worker / GUI-thread {single / max(blocking_stall, 1e-9):.3f}")
    stall, cells = grid["in batches"]
    print(f"compare grid of {cells} cells from the cache, built in batches: max GUI stall "
          f"{stall:6.1f} ms (goal < {STALL_GOAL_MS:.0f} ms: "
          f"{'met' if stall < STALL_GOAL_MS else 'MISSED'})")
    print(f"compare grid of {cells} cells built in one pass (peer): max GUI stall "
          f"{grid['in one pass'][0]:6.1f} ms; ratio batches / one pass "
          f"{stall / max(grid['in one pass'][0], 1e-9):.3f}")
    for (kind, label), (stall, elapsed, steps) in frame_runs.items():
        print(f"{FRAMES}-frame DICOM, {kind:12s}, {label:11s}: {steps} steps in {elapsed:6.0f} ms,"
              f" max GUI stall {stall:6.1f} ms (goal < {STALL_GOAL_MS:.0f} ms: "
              f"{'met' if stall < STALL_GOAL_MS else 'MISSED'})")
    for kind, peer in frame_peers.items():
        print(f"{FRAMES}-frame DICOM, {kind:12s}, decoded on the GUI thread (peer): max "
              f"{peer:6.1f} ms per frame; ratio worker stall / peer "
              f"{frame_runs[(kind, 'just opened')][0] / max(peer, 1e-9):.3f}")
    print(f"layer click -> repaint, cache  : median {cached_med:6.1f} ms, "
          f"max {max(cached):6.1f} ms, forward passes {cache_passes}  "
          f"(goal < {REPAINT_GOAL_MS:.0f} ms: "
          f"{'met' if max(cached) < REPAINT_GOAL_MS else 'MISSED'})")
    print(f"layer click -> repaint, worker : median {uncached_med:6.1f} ms  (peer)")
    print(f"  ratio cache / worker         : {cached_med / max(uncached_med, 1e-9):.3f}")
    win.close()


if __name__ == "__main__":
    main()
