"""The demo ViT in the review window: picked from the model list, explained by LeGrad."""

from __future__ import annotations

import numpy as np
from gui_fixtures import WAIT_MS, demo_window, pump
from PySide6.QtCore import Qt


def _pick(qtbot, combo, data) -> None:
    """Open ``combo``'s list and click the row holding ``data``, as a person would."""
    combo.showPopup()
    view = combo.view()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(combo.model().index(combo.findData(data), 0)).center())


def test_the_model_list_opens_demo_vit_and_legrad_explains_it(qapp, qtbot, tmp_path):
    win = demo_window(qapp, tmp_path)
    try:
        panel = win.panel
        with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS):
            _pick(qtbot, panel.model_combo, "demo-vit")
        assert pump(qapp, lambda: win.result is not None
                    and win.result.model["name"] == "demo-vit" and not win.worker.busy())
        assert win.model_spec == "demo-vit" and win.model.default_layer == "blocks.3.norm1"
        assert panel.model_combo.currentText() == "Demo ViT (transformer)"
        gradcam = np.array(win.layer_model.heatmap, copy=True)
        with qtbot.waitSignal(win.sig_map_drawn, timeout=WAIT_MS,
                              check_params_cb=lambda method, _layer: method == "legrad"):
            _pick(qtbot, panel.method_combo, "legrad")
        assert win.method == "legrad" and win.layer_model.heatmap is not None
        # LeGrad's map is its own, not the Grad-CAM map left on screen.
        assert not np.allclose(win.layer_model.heatmap, gradcam)
    finally:
        win.close()
