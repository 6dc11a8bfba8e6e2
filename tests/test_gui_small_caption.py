"""The caption and the status line speak of the map on screen: an empty view says why, and a
map that is fine is never called "all zero" because another layer's map is."""

from __future__ import annotations

from audit_view_fixtures import click_row
from gui_fixtures import WAIT_MS, demo_window, pump
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def pick_method(combo, name: str) -> None:
    """Step the method list with the keyboard to ``name``, as a person does."""
    combo.setFocus()
    index = combo.findData(name)
    assert index >= 0, name
    while combo.currentIndex() != index:
        QTest.keyClick(combo, Qt.Key.Key_Down if combo.currentIndex() < index else Qt.Key.Key_Up)


def click_layer(panel, name: str) -> None:
    """Click the row of layer ``name`` in the panel's layer list."""
    layers = panel.layers
    item = next(layers.item(i) for i in range(layers.count())
                if layers.item(i).data(Qt.ItemDataRole.UserRole) == name)
    layers.scrollToItem(item)
    QTest.mouseClick(layers.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, layers.visualItemRect(item).center())


def test_cam_on_a_layer_it_cannot_explain_says_why_the_view_is_empty(window, qapp, qtbot):
    drawn = []
    window.sig_map_drawn.connect(lambda method, _layer: drawn.append(method))
    pick_method(window.panel.method_combo, "cam")
    assert pump(qapp, lambda: "cam" in drawn and not window.worker.busy())
    assert window.layer_model.heatmap is not None
    early = window.model.layers()[0].name  # far from the pooled layer CAM is defined on
    click_layer(window.panel, early)
    assert window.layer == early
    qtbot.waitUntil(lambda: "nothing is drawn" in window.caption.text(), timeout=WAIT_MS)
    assert window.layer_model.heatmap is None
    caption = window.caption.warning.text()
    assert f"CAM made no map for {early}" in caption
    # The reason is the method's own: the layer is not pooled into the final linear layer.
    assert "globally average pooled" in caption
    assert "globally average pooled" in window.message.text()

    # A layer with a map clears the note at once.
    click_layer(window.panel, window.model.default_layer)
    assert window.layer_model.heatmap is not None
    assert "nothing is drawn" not in window.caption.text()
    pick_method(window.panel.method_combo, "gradcam")


def test_an_audit_row_with_a_fine_map_is_not_called_all_zero(qapp, qtbot, tmp_path):
    window = demo_window(qapp, tmp_path)
    try:
        window.open_audit_view()
        view = window.audit_view
        view.out_edit.setText(str(tmp_path / "out"))
        qtbot.mouseClick(view.demo_button, Qt.MouseButton.LeftButton)
        assert pump(qapp, lambda: not view.is_running(), timeout_ms=4 * WAIT_MS)
        view.table_audit.setCurrentText("demo-biased")
        with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
            click_row(qtbot, view.table, 0)
        # The row's job ends with its prediction: the status line is then the job's last word.
        qtbot.waitUntil(lambda: window.model_spec == "demo-biased"
                        and window.image.path.parent.parent == tmp_path / "out" / "demo" / "data"
                        and window.current_result() is not None, timeout=WAIT_MS)
        shown = window.current_result().maps[(window.method, window.layer)]
        assert shown.warning is None and window.layer_model.peak() > 0
        # Maps of the other layers came with it (one capture); one of them may be all zero,
        # but it is not on screen.
        others = [m.warning for m in window.current_result().maps.values() if m.warning]
        assert any("all zero" in w for w in others)
        assert "all zero" not in window.message.text()
        assert "all zero" not in window.caption.text()
    finally:
        window.close()
