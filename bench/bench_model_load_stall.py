"""GUI stalls while a timm model loads through File ▸ Open model, until its first map is drawn.

For timm ``convnext_tiny`` and a ViT-B/16 (random weights saved to safetensors in a temporary
folder; nothing is downloaded), a real window (offscreen) opens the demo, then File ▸ Open model
is triggered, ``timm:NAME@FILE`` typed and Open clicked: the model loads on the worker (layers
found and each method's fitness judged there) and the window explains with it. A 10 ms timer on
the event loop records the longest gap beyond its interval from the click to the first map of the
new model: the worst stall, goal ≤ 50 ms.

Peer measured in the same run: the same load on the GUI thread (what a viewer without a worker
does), whose stall is the whole load. The ratio is worker stall / GUI-thread stall.

The GUI thread's own work from the click to the map is a few tens of milliseconds (the dialog,
the panel's layer list, drawing the map); everything else runs on the worker. The stall then
depends on how busy the machine's cores are, so each line ends with the load average.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from bench_gui import STALL_GOAL_MS, Heartbeat, _pump, _virtual_screen  # noqa: E402
from bench_model_sources import CLASSES, MODELS, _save_model  # noqa: E402


def _open_through_dialog(app, win, spec: str) -> None:
    """Trigger File ▸ Open model, type ``spec`` and click Open (the dialog is modal)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QDialogButtonBox

    from gui.model_open_dialog import QtOpenModelDialog

    def fill() -> None:
        dialog = app.activeModalWidget()
        if not isinstance(dialog, QtOpenModelDialog):
            QTimer.singleShot(5, fill)
            return
        dialog.spec.setText(spec)
        dialog.buttons.button(QDialogButtonBox.StandardButton.Open).click()

    QTimer.singleShot(0, fill)
    win.actions_by_id["open_model"].trigger()


def main() -> None:
    """Print, per model, the worst GUI stall from Open to the first map, and the peer's."""
    _virtual_screen()
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.models.loaded import load_model
    from gui.main_window import QtMainWindow

    app = QApplication.instance() or QApplication(["bench"])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    win = QtMainWindow(settings=settings)
    win.show()
    drawn: list = []
    win.sig_map_drawn.connect(lambda *_a: drawn.append(win.model))
    win.open_demo()
    _pump(app, lambda: drawn and not win.worker.busy())
    # The architecture list (timm's import) is a background job of the first Open model.
    win.models.list_architectures(lambda _names: None)
    _pump(app, lambda: win.models.architectures is not None and not win.worker.busy())
    folder = Path(tempfile.mkdtemp())
    beat = Heartbeat(QTimer)
    for name, _layer, _grid in MODELS:
        weights = _save_model(name, folder)
        spec = f"timm:{name}@{weights}"
        drawn.clear()
        beat.start()
        start = time.perf_counter()
        _open_through_dialog(app, win, spec)
        _pump(app, lambda n=name: any(m is not None and m.name == n for m in drawn)
              and not win.worker.busy(), timeout_s=600)
        elapsed = time.perf_counter() - start
        stall = beat.stop()
        # Peer: the same load on the GUI thread; no timer can fire while it runs.
        start = time.perf_counter()
        model = load_model(spec)
        model.layers()
        blocking = (time.perf_counter() - start) * 1000
        assert len(model.classes) == CLASSES
        print(f"{name}: File > Open model to first map {elapsed * 1000:7.0f} ms, max GUI stall "
              f"{stall:6.1f} ms (goal <= {STALL_GOAL_MS:.0f} ms: "
              f"{'met' if stall <= STALL_GOAL_MS else 'MISSED'}); the load on the GUI thread "
              f"(peer) stalls {blocking:7.0f} ms; ratio worker / GUI-thread "
              f"{stall / max(blocking, 1e-9):.3f} (load average {os.getloadavg()[0]:.1f})",
              flush=True)
    win.close()


if __name__ == "__main__":
    main()
