"""The three-plane view on a real window (offscreen, 1440 × 900 virtual screen), demo CT.

On the demo CT series (128 × 128 × 64 voxels, 2.8 × 2.8 × 2.5 mm) explained with ``demo-3d``:

- scroll repaint: Page Up in the axial pane until all three panes have painted the new
  crosshair, goal < 30 ms;
- plane switch repaint: a click in the coronal pane (the axial and sagittal planes change)
  until all three panes have painted, goal < 30 ms;
- the GUI thread's largest stall while a 3-D Score-CAM runs on the worker, with the user
  scrolling meanwhile, goal < 50 ms.

Peers measured in the same run:

- repaints: the same three planes resampled from the voxels at every step
  (:func:`engine.studies.planes.three_planes`), what a viewer without a patient grid does on
  the GUI thread;
- stall: the same Score-CAM run on the GUI thread (the whole call is one stall).

Run: ``python bench/bench_gui_volume.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_gui import STALL_GOAL_MS, Heartbeat, _pump, _virtual_screen  # noqa: E402
from smoke import sized  # noqa: E402

REPAINT_GOAL_MS = 30.0
STEPS = sized(40, 4)
#: Time between scroll steps while Score-CAM runs (a user turning the wheel).
SCROLL_MS = 40


def _met(value: float, goal: float) -> str:
    return f"goal < {goal:.0f} ms: {'met' if value < goal else 'MISSED'}"


def main() -> None:
    """Print repaint and stall numbers with their ratios to the peers."""
    _virtual_screen()
    from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.explain.session import ExplainRequest, Session
    from engine.studies.planes import PLANES, three_planes
    from gui.file_opening import DEMO_CT
    from gui.main_window import QtMainWindow

    load = os.getloadavg()
    app = QApplication.instance() or QApplication(["bench"])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.show()
    drawn = []
    win.volumes.sig_map_drawn.connect(lambda: drawn.append(1))
    win.load_model("demo-3d")
    win.open_paths([str(DEMO_CT / "chest_ct")])
    _pump(app, lambda: drawn and not win.worker.busy())
    controller, panes = win.volumes, win.volume_view.panes

    painted: set[str] = set()

    class PaintSpy(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint:
                painted.add(obj.plane)
            return False

    spy = PaintSpy()
    for pane in panes.values():
        pane.installEventFilter(spy)

    def to_paint(action) -> float:
        painted.clear()
        t0 = time.perf_counter()
        action()
        # Spin the event loop without sleeping: a sleep would be counted as repaint time.
        while not painted >= set(PLANES):
            app.processEvents()
        return (time.perf_counter() - t0) * 1000

    def scroll(i: int) -> None:
        controller.scroll("axial", 1 if (i // 10) % 2 == 0 else -1)

    coronal = panes["coronal"]
    rows, cols = coronal.base.height(), coronal.base.width()

    def click(i: int) -> None:
        controller.click("coronal", rows * (0.3 + 0.4 * (i % 7) / 6), cols * (0.2 + 0.6 * i
                                                                             / STEPS))

    scrolls = [to_paint(lambda i=i: scroll(i)) for i in range(STEPS)]
    clicks = [to_paint(lambda i=i: click(i)) for i in range(STEPS)]

    # Peer: the three planes and the map resampled from the voxels at every step.
    volume, heat = controller.volume, win.layer_model.heatmap
    peer = []
    for i in range(STEPS // 4):
        point = volume.index_to_patient((20 + i, 64, 64))
        t0 = time.perf_counter()
        three_planes(volume, point, heat)
        peer.append((time.perf_counter() - t0) * 1000)

    # -- Score-CAM on the worker, the user scrolling meanwhile ---------------------------------
    beat = Heartbeat(QTimer)
    # Batches of one: many small passes, the most interpreter-lock traffic for the GUI thread.
    win.param_values["scorecam"] = {**win.params_for("scorecam"), "batch_size": 1}
    scroller = QTimer()
    scroller.setInterval(SCROLL_MS)
    ticks = [0]

    def wheel() -> None:
        ticks[0] += 1
        scroll(ticks[0])

    scroller.timeout.connect(wheel)
    before = len(drawn)
    beat.start()
    _pump(app, lambda: len(beat.gaps) >= 2)
    start = time.perf_counter()
    scroller.start()
    win.set_method("scorecam")
    _pump(app, lambda: len(drawn) > before and not win.worker.busy(), timeout_s=600)
    elapsed = (time.perf_counter() - start) * 1000
    scroller.stop()
    stall = beat.stop()
    gaps = sorted(beat.gaps) or [0.0]
    p95 = gaps[int(0.95 * (len(gaps) - 1))]

    request = ExplainRequest(image=volume, model=win.model, methods=["scorecam"],
                             layers=[win.layer], params={"scorecam": win.params_for("scorecam")})
    t0 = time.perf_counter()
    Session(device="cpu").explain(request)
    blocking = (time.perf_counter() - t0) * 1000

    s, r, c = volume.shape
    print(f"load average before/after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"volume {c}x{r}x{s} (columns x rows x slices), patient grid "
          f"{'x'.join(map(str, controller.grid.shape))} of {controller.grid.pixel_mm:.2f} mm")
    for label, times in (("scroll (Page Up, axial)", scrolls),
                         ("plane switch (click, coronal)", clicks)):
        print(f"{label:30s} -> three panes painted: median {statistics.median(times):5.1f} ms, "
              f"max {max(times):5.1f} ms ({_met(max(times), REPAINT_GOAL_MS)})")
    ours, theirs = statistics.median(scrolls), statistics.median(peer)
    print(f"three planes resampled per step (peer)  : median {theirs:5.1f} ms; "
          f"ratio ours / peer {ours / max(theirs, 1e-9):.3f}")
    print(f"3-D score-cam on the worker, scrolling every {SCROLL_MS} ms: {elapsed:6.0f} ms, "
          f"{ticks[0]} scroll steps, max GUI stall {stall:5.1f} ms, 95th percentile {p95:4.1f} ms "
          f"({_met(stall, STALL_GOAL_MS)})")
    print(f"3-D score-cam on the GUI thread (peer)  : stall {blocking:6.0f} ms; ratio worker / "
          f"GUI-thread {stall / max(blocking, 1e-9):.3f}")
    win.close()


if __name__ == "__main__":
    main()
