"""The Audit view as a person meets it: the wheel, a wide short dock, a second run, a lone group."""

from __future__ import annotations

import pytest
from audit_fixtures import write_phantom_dataset
from gui_fixtures import WAIT_MS, pump
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication


def _wheel(widget, notches: int = -1) -> bool:
    """Turn the wheel over the middle of ``widget``; return whether the event was accepted."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre)), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


@pytest.fixture
def view(qtbot):
    from gui.audit_view import QtAuditView

    view = QtAuditView()
    qtbot.addWidget(view)
    view.resize(1200, 600)
    view.show()
    qtbot.waitExposed(view)
    view.activateWindow()
    qtbot.waitUntil(view.isActiveWindow)
    return view


def test_the_wheel_over_the_form_leaves_an_unfocused_method_alone(view, qtbot):
    combo = view.method_combo
    assert combo.count() > 2
    start = combo.currentIndex()
    view.dataset_edit.setFocus()
    qtbot.waitUntil(view.dataset_edit.hasFocus)
    for field in (combo, view.model_combo, view.engine_combo):
        before = field.currentIndex()
        _wheel(field)
        assert field.currentIndex() == before, field
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus
    # Once clicked into, the wheel is the field's again.
    qtbot.mouseClick(view.layer_edit, Qt.MouseButton.LeftButton)
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    _wheel(combo)
    assert combo.currentIndex() != start


def test_the_wheel_over_a_parameter_spin_box_scrolls_on(view, qtbot):
    from PySide6.QtWidgets import QAbstractSpinBox

    view.set_method("occlusion")
    spins = view.params.findChildren(QAbstractSpinBox)
    assert len(spins) == 3
    qtbot.waitUntil(lambda: all(s.isVisible() for s in spins))
    view.dataset_edit.setFocus()
    qtbot.waitUntil(view.dataset_edit.hasFocus)
    for spin in spins:
        before = spin.value()
        _wheel(spin, notches=1)
        assert spin.value() == before, spin


def test_at_1900_by_1040_the_results_get_the_dock_height(window, qapp):
    size = window.size()
    window.resize(1900, 1040)
    window.open_audit_view()
    view, dock = window.audit_view, window.docks["audit"]
    assert pump(qapp, lambda: view.results.height() > 100 and window.width() == 1900)
    pump(qapp, lambda: False, 100)
    visible = dock.widget().viewport().height()
    # The view fits its dock without scrolling, and the tabs take its whole height.
    assert view.height() <= visible, (view.height(), visible)
    assert view.results.height() >= 0.9 * visible, (view.results.height(), visible)
    assert view.table.height() >= 0.6 * visible
    view.results.setCurrentIndex(1)
    pump(qapp, lambda: False, 50)
    charts_page = view.results.currentWidget()
    assert charts_page.height() >= 0.8 * visible
    view.results.setCurrentIndex(0)
    window.docks["audit"].hide()
    window.resize(size)


def test_a_new_run_puts_the_previous_results_away(window, qapp, qtbot, tmp_path):
    manifest = write_phantom_dataset(tmp_path / "data", 6, size=64)
    window.open_audit_view()
    view = window.audit_view
    view.dataset_edit.setText(str(manifest))
    view.model_combo.setCurrentText("demo")
    view.out_edit.setText(str(tmp_path / "audit"))
    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    assert pump(qapp, lambda: not view.is_running(), WAIT_MS), view.status.text()
    assert view.table.rowCount() == 6 and view.share_chart.entries, view.status.text()
    assert view.export_button.isEnabled()
    # Every image with a marker is at site B: the group has no rest to be compared with,
    # and the chart says so.
    assert view.role_combo.currentText() == "marker"
    assert not view.contrast_chart.entries
    assert view.contrast_chart.empty == "one group only (site=B): nothing to compare"

    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    assert view.is_running()
    assert view.audit is None and view.table.rowCount() == 0
    assert not view.share_chart.entries and not view.export_button.isEnabled()
    assert view.grid_layout.count() == 0 and view.verdicts.text() == ""
    assert pump(qapp, lambda: not view.is_running(), WAIT_MS), view.status.text()
    assert view.table.rowCount() == 6 and "failed" not in view.status.text()
    window.docks["audit"].hide()


def test_a_tall_view_stacks_the_form_above_the_results(view, qtbot):
    assert view.splitter.orientation() == Qt.Orientation.Horizontal
    view.resize(600, 1000)
    qtbot.waitUntil(lambda: view.splitter.orientation() == Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: view.results.width() >= 0.9 * view.width())
    assert view.results.height() >= 0.5 * view.height()
    view.resize(1600, 500)
    qtbot.waitUntil(lambda: view.splitter.orientation() == Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: view.results.height() >= 0.9 * view.height())
