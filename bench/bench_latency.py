"""Latencies the user feels: stopping a running Score-CAM, and starting an audit from the GUI.

Peers measured in the same run:
- cancel: the same Score-CAM left to finish (what a viewer without cancel makes the user wait);
- audit start: the whole audit of the same dataset (what the GUI thread would block for if the
  audit ran on it).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from smoke import sized  # noqa: E402

CANCEL_GOAL_MS = 500.0
START_GOAL_MS = 100.0
ROUNDS = sized(5, 1)
AUDIT_IMAGES = sized(24, 8)


def cancel_latency() -> tuple[list[float], float]:
    """Return the cancel latencies (ms) of Score-CAM runs, and one full run's time (ms)."""
    from engine.core.cancel import Cancelled, CancelToken
    from engine.demo.files import write_demo_set
    from engine.explain.session import ExplainRequest, Session
    from engine.models.loaded import load_model
    from engine.studies.image import open_image

    folder = Path(tempfile.mkdtemp())
    write_demo_set(folder, 1, 5, size=96)
    image = open_image(next(folder.glob("phantom_*")))
    model = load_model("demo")
    params = {"scorecam": {"batch_size": 1}}
    request = ExplainRequest(image=image, model=model, methods=["scorecam"], params=params)
    start = time.perf_counter()
    Session().explain(request)
    full_ms = (time.perf_counter() - start) * 1000

    latencies = []
    for _ in range(ROUNDS):
        token = CancelToken()
        started = threading.Event()
        cancelled_at: list[float] = []

        def progress(fraction, message="", started=started):
            if fraction > 0.3:
                started.set()

        def cancel_soon(token=token, started=started, cancelled_at=cancelled_at):
            started.wait(60)
            cancelled_at.append(time.perf_counter())
            token.cancel()

        helper = threading.Thread(target=cancel_soon)
        helper.start()
        try:
            Session().explain(request, progress=progress, cancel=token)
        except Cancelled:
            latencies.append((time.perf_counter() - cancelled_at[0]) * 1000)
        helper.join()
    return latencies, full_ms


def audit_start() -> tuple[float, float]:
    """Return how long the Audit view's start() holds the GUI thread, and the whole audit (ms)."""
    from audit_fixtures import write_phantom_dataset
    from bench_audit_ray import tiny_card
    from PySide6.QtWidgets import QApplication

    from gui.audit_view import QtAuditView

    app = QApplication.instance() or QApplication(["bench"])
    folder = Path(tempfile.mkdtemp())
    manifest = write_phantom_dataset(folder / "data", AUDIT_IMAGES)
    view = QtAuditView()
    view.dataset_edit.setText(str(manifest))
    # The small model as a card the view loads by path, as a user's model is.
    view.model_combo.setCurrentText(str(tiny_card(folder / "card")))
    view.method_combo.setCurrentText("gradcam")
    view.out_edit.setText(str(folder / "out"))
    start = time.perf_counter()
    view.start()
    start_ms = (time.perf_counter() - start) * 1000
    while view.is_running():
        app.processEvents()
        time.sleep(0.002)
    total_ms = (time.perf_counter() - start) * 1000
    view.close()
    return start_ms, total_ms


def main() -> None:
    """Print both latencies with their ratios to the peers."""
    latencies, full_ms = cancel_latency()
    worst = max(latencies) if latencies else float("nan")
    print(f"cancel a running Score-CAM: median {statistics.median(latencies):6.1f} ms, max "
          f"{worst:6.1f} ms over {len(latencies)} runs (goal < {CANCEL_GOAL_MS:.0f} ms: "
          f"{'met' if worst < CANCEL_GOAL_MS else 'MISSED'})")
    print(f"  the same Score-CAM left to finish (peer): {full_ms:6.0f} ms; "
          f"ratio cancel / finish {worst / max(full_ms, 1e-9):.3f}")
    start_ms, total_ms = audit_start()
    print(f"audit view start() on the GUI thread: {start_ms:6.1f} ms (goal < {START_GOAL_MS:.0f} "
          f"ms: {'met' if start_ms < START_GOAL_MS else 'MISSED'})")
    print(f"  the whole audit on the worker (peer): {total_ms:6.0f} ms; "
          f"ratio start / audit {start_ms / max(total_ms, 1e-9):.3f}")


if __name__ == "__main__":
    main()
