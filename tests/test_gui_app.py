"""The review window on the demo study and model, end to end through the worker thread."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from gui.main_window import DEMO_STUDY, QtMainWindow

ROOT = Path(__file__).resolve().parents[1]
#: Generous limit for one explanation on a loaded 2-core machine.
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    path = tmp_path_factory.mktemp("settings") / "lucida.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)


@pytest.fixture(scope="module")
def window(qapp, settings):
    """One demo window shared by the tests of this module (building it costs a model load)."""
    if not DEMO_STUDY.is_dir():
        pytest.fail(f"demo study missing at {DEMO_STUDY}; run `make demo-models`")
    win = QtMainWindow(settings=settings)
    win.resize(1200, 800)
    win.show()
    drawn = []
    win.sig_map_drawn.connect(lambda m, lay: drawn.append((m, lay)))
    win.open_demo()
    deadline = time.monotonic() + WAIT_MS / 1000
    while not drawn and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert drawn, "the demo never drew an explanation"
    yield win
    win.close()


def _wait_drawn(qtbot, win, method=None, timeout=WAIT_MS):
    with qtbot.waitSignal(win.sig_map_drawn, timeout=timeout,
                          check_params_cb=(lambda m, _l: method is None or m == method)):
        pass


def _reset(win, qtbot, method="gradcam"):
    """Put the shared window back to one viewer, the top class and ``method``."""
    win.set_compare(False)
    if win.method != method or win.target is not None or win.layer_model.heatmap is None:
        win.target = None
        with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS):
            win.set_method(method)
    assert win.layer_model.heatmap is not None


def test_demo_shows_prediction_and_overlay(window, qtbot):
    _reset(window, qtbot)
    rows = window.panel.prediction.topLevelItemCount()
    assert rows == len(window.model.classes) == 2
    probabilities = [float(window.panel.prediction.topLevelItem(i).text(1).rstrip(" %")) / 100
                     for i in range(rows)]
    assert sum(probabilities) == pytest.approx(1.0, abs=0.01)
    assert window.panel.prediction.topLevelItem(window.result.target).text(0).endswith("◀")
    heat = window.layer_model.heatmap
    assert heat.shape == tuple(window.image.shape)
    drawn = window.viewer.overlay_image()
    assert drawn.width() == window.image.shape[1] and drawn.height() == window.image.shape[0]
    alpha = _alpha(drawn)
    assert alpha.max() == round(window.layer_model.opacity * 255)
    assert (alpha == 0).any() or window.layer_model.threshold == 0


def _alpha(image) -> np.ndarray:
    """Return the alpha channel of an RGBA QImage as an array."""
    from PySide6.QtGui import QImage

    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    # Copy before the QImage that owns the buffer goes away.
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4)[..., 3].copy()


def test_opacity_slider_changes_the_overlay_alpha(window, qtbot):
    _reset(window, qtbot)
    window.overlay_controls.opacity_slider.setValue(0.9)
    high = _alpha(window.viewer.overlay_image())
    window.overlay_controls.opacity_slider.setValue(0.2)
    low = _alpha(window.viewer.overlay_image())
    assert high.max() == round(0.9 * 255) and low.max() == round(0.2 * 255)
    full = high == high.max()
    assert full.mean() > 0.05 and (low[full] == low.max()).all()
    # No new pixels appear; only the alpha of the drawn ones changed.
    assert not (low > 0)[high == 0].any()
    window.layer_model.opacity = 0.45


def test_layer_switch_is_served_from_the_cache(window, qtbot):
    _reset(window, qtbot)
    qtbot.waitUntil(lambda: not window.worker.busy(), timeout=WAIT_MS)
    names = [info.name for info in window.model.layers()]
    other = next(n for n in names if n != window.layer)
    before_heat = window.layer_model.heatmap
    passes = window.session.forward_passes
    jobs = window.jobs.latest("explain")
    window.panel.select_layer(other)
    # Drawn synchronously in the click handler: no job, no forward pass.
    assert window.layer == other
    assert window.jobs.latest("explain") == jobs
    assert window.session.forward_passes == passes
    assert window.layer_model.heatmap is not before_heat
    assert not np.array_equal(window.layer_model.heatmap, before_heat)
    window.panel.select_layer(window.model.default_layer)


def test_method_and_target_changes(window, qtbot):
    _reset(window, qtbot)
    gradcam = window.layer_model.heatmap
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS,
                          check_params_cb=lambda m, _l: m == "gradcampp"):
        window.panel.select_method("gradcampp")
    assert window.method == "gradcampp"
    assert "Grad-CAM++" in window.caption.text()
    assert not np.array_equal(window.layer_model.heatmap, gradcam)
    other = 1 - window.result.target
    item = window.panel.prediction.topLevelItem(other)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.panel.prediction.itemClicked.emit(item, 0)
    qtbot.waitUntil(lambda: window.result is not None and window.result.target == other,
                    timeout=WAIT_MS)
    assert window.panel.prediction.topLevelItem(other).text(0).endswith("◀")
    assert window.model.classes[other] in window.caption.text()


def test_cancel_stops_a_running_scorecam(window, qtbot, monkeypatch):
    _reset(window, qtbot)
    from engine.explain.capture import Capture

    scores = Capture.forward_scores

    def slow_scores(self, batch, *args, **kwargs):
        # Stand in for a big model: every masked batch takes a while.
        time.sleep(0.03)
        return scores(self, batch, *args, **kwargs)

    monkeypatch.setattr(Capture, "forward_scores", slow_scores)
    window.param_values["scorecam"] = {**window.params_for("scorecam"), "batch_size": 1}
    progressed = []
    window.worker.sig_progress.connect(lambda i, f, m: progressed.append(i))
    window.panel.select_method("scorecam")
    job = window.jobs.latest("explain")
    qtbot.waitUntil(lambda: job in progressed, timeout=WAIT_MS)
    # The latency of a cancel is measured in bench/bench_latency.py.
    with qtbot.waitSignal(window.worker.sig_cancelled, timeout=5000,
                          check_params_cb=lambda i, _k: i == job):
        window.cancel_button.click()
    assert window.message.text() == "Cancelled"
    assert not any(key[5] == "scorecam" for key in window.maps)
    monkeypatch.undo()
    _reset(window, qtbot)  # still usable


def test_corrupt_file_shows_an_error_and_the_app_stays_usable(window, qtbot, tmp_path):
    _reset(window, qtbot)
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as blocker:
        window.open_paths([str(bad)])
    assert "broken.dcm" in blocker.args[0]
    assert "\n" not in blocker.args[0]
    assert window.banner.isVisible()
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(DEMO_STUDY)])


def test_bad_model_shows_an_error_and_keeps_the_old_one(window, qtbot, tmp_path):
    _reset(window, qtbot)
    model = window.model
    card = tmp_path / "card.toml"
    card.write_text("this is = not [valid toml")
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as blocker:
        window.load_model(str(card))
    assert "card.toml" in blocker.args[0]
    assert window.model is model
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.set_method("gradcampp")


def test_pickled_model_needs_trust_confirmation(window, qtbot, tmp_path):
    import torch
    from torch import nn

    _reset(window, qtbot)
    path = tmp_path / "full.pt"
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, 2)).eval(), path)
    asked = []
    window.confirm_trust = lambda name, message: asked.append(message) or False
    demo = window.model
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as blocker:
        window.load_model(str(path))
    assert asked and "full.pt" in blocker.args[0] and window.model is demo
    window.confirm_trust = lambda name, message: True
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.load_model(str(path))
    assert window.model.name == "full"
    assert window.panel.layers.count() == len(window.model.layers())
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.panel.model_combo.activated.emit(window.panel.model_combo.findData("demo"))
    assert window.model_spec == "demo"


def test_compare_mode_shows_methods_by_layers(window, qtbot):
    _reset(window, qtbot)
    layers = [info.name for info in window.model.layers()][-2:]
    window.panel.set_compare_selection(["gradcam", "layercam"], layers)
    window.set_compare(True)
    assert window.stack.currentWidget() is window.compare
    # Cells are built a few per pass of the event loop, so the GUI never stalls building them.
    qtbot.waitUntil(window.compare.complete, timeout=5000)
    assert len(window.compare.cells) == 4
    qtbot.waitUntil(lambda: all(c.viewer.layer.heatmap is not None
                                for c in window.compare.cells.values()), timeout=WAIT_MS)
    cells = list(window.compare.cells.values())
    cells[0].viewer.zoom_by(2.0)
    assert cells[3].viewer.zoom() == pytest.approx(cells[0].viewer.zoom())
    window.layer_model.opacity = 0.7
    assert cells[2].viewer.layer.opacity == pytest.approx(0.7)
    window.set_compare(False)
    assert window.stack.currentWidget() is window.viewer


def test_keyboard_shortcuts_drive_the_view(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    _reset(window, qtbot)
    window.activateWindow()
    window.viewer.setFocus()
    QTest.keyClick(window.viewer, Qt.Key.Key_O)
    assert not window.layer_model.visible and window.viewer.overlay_image().isNull()
    QTest.keyClick(window.viewer, Qt.Key.Key_O)
    assert window.layer_model.visible
    QTest.keyClick(window.viewer, Qt.Key.Key_2)
    assert window.viewer.window == (-600.0, 1500.0)
    assert "1500" in window.preset_combo.currentText()
    QTest.keyClick(window.viewer, Qt.Key.Key_R)
    assert window.preset_combo.currentIndex() == 0
    assert window.viewer.window != (-600.0, 1500.0)


def test_export_and_trust_panels_open_on_the_current_map(window, qtbot):
    _reset(window, qtbot)
    window.open_export()
    dialog = window._export_dialog
    assert dialog.isVisible()
    dialog.reject()
    start = time.perf_counter()
    window.open_trust_panel()
    assert window.docks["trust"].isVisible()
    errors = []
    window.sig_error.connect(errors.append)
    qtbot.waitUntil(lambda: bool(window.trust_panel.metrics or errors), timeout=WAIT_MS)
    assert not errors
    print(f"metrics in {time.perf_counter() - start:.1f} s")
    assert "deletion_auc" in window.trust_panel.metrics
    window.docks["trust"].hide()


def test_dock_layout_persists(window, qtbot, settings):
    window.docks["tags"].hide()
    window.save_layout()
    again = QtMainWindow(settings=settings)
    qtbot.addWidget(again)
    again.show()
    assert again.docks["tags"].isHidden()
    window.docks["tags"].show()
    window.save_layout()


def test_screenshot_mode_saves_the_window_and_exits_zero(tmp_path):
    from PySide6.QtGui import QImage

    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--demo", "--screenshot",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=WAIT_MS / 1000 + 60)
    assert done.returncode == 0, done.stderr[-2000:]
    shot = QImage(str(out))
    assert shot.width() >= 800 and shot.height() >= 500


def test_screenshot_mode_exits_two_on_an_unreadable_file(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_text("not a scan")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), str(bad), "--screenshot",
                           str(tmp_path / "x.png")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=WAIT_MS / 1000 + 60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bad.dcm" in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.png").exists()
