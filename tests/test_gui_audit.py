"""The Audit view inside the review window: the window's worker, model and trust; row clicks."""

from __future__ import annotations

from audit_fixtures import write_phantom_dataset
from audit_view_fixtures import click_row
from gui_fixtures import WAIT_MS, demo_window, pump
from PySide6.QtCore import Qt


def test_the_audit_runs_on_the_window_worker_with_its_model(window, qapp, qtbot, tmp_path):
    manifest = write_phantom_dataset(tmp_path / "data", 6, size=64)
    window.open_audit_view()
    view = window.audit_view
    assert view.jobs is window.jobs  # no thread of its own
    assert view.model_combo.currentText() == window.model_spec == "demo"
    view.dataset_edit.setText(str(manifest))
    view.method_combo.setCurrentText("gradcam")
    view.out_edit.setText(str(tmp_path / "audit"))
    threads = []
    window.worker.sig_started.connect(lambda _job, kind: kind == "audit" and threads.append(1))
    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    assert view.is_running()
    # The review window's own work is not held up by the audit: it goes first.
    window.set_target(1 - window.result.target)
    assert pump(qapp, lambda: not view.is_running() and view.audit is not None,
                timeout_ms=WAIT_MS)
    assert threads and view.table.rowCount() == 6
    assert view.audited_model == "demo"
    # A row opens its image with the audited model, method and layer.
    window.load_model("demo-biased")
    assert pump(qapp, lambda: window.model_spec == "demo-biased")
    window.set_method("gradcampp")
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        click_row(qtbot, view.table, 0)
    assert pump(qapp, lambda: window.model_spec == "demo" and window.image is not None
                and window.image.path.parent == manifest.parent)
    assert window.method == "gradcam" and window.layer == view.audit["layer"]


def test_closing_the_window_stops_a_running_audit(qapp, tmp_path):
    manifest = write_phantom_dataset(tmp_path / "data", 40, size=64)
    win = demo_window(qapp, tmp_path)
    win.open_audit_view()
    view = win.audit_view
    view.dataset_edit.setText(str(manifest))
    view.out_edit.setText(str(tmp_path / "audit"))
    view.start()
    assert pump(qapp, lambda: view.progress.value() > 0 or not view.is_running())
    win.close()
    assert not win.worker.isRunning()
    assert view.audit is None
