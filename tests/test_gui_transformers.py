"""The attention methods in the window on the demo ViT: chosen with a click in the method list,
drawn in the compare grid, and measured by the trust panel (which reports its sanity verdicts)."""

from __future__ import annotations

import numpy as np
import pytest
from gui_fixtures import WAIT_MS, demo_window, pump
from models_fixtures import no_network  # noqa: F401 - a fixture
from PySide6.QtCore import Qt

from gui.explain_panel import LAYER_ROLE

METHODS = ("rollout", "attnrelevance", "legrad")


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    win = demo_window(qapp, tmp_path_factory.mktemp("settings"))
    drawn = []
    win.sig_map_drawn.connect(lambda method, _layer: drawn.append(method))
    win.load_model("demo-vit")  # as ``python main.py --demo --model demo-vit`` opens it
    assert pump(qapp, lambda: win.model is not None and win.model.name == "demo-vit"
                and drawn and not win.worker.busy(), 3 * WAIT_MS)
    yield win
    win.close()


def _choose(qtbot, window, method: str) -> None:
    """Open the method list with a click, step to the method and press Enter, as a person does.

    (Qt ignores a click on the list in the moments after it opens, so the row is reached with
    the arrow keys; only Enter changes the method, so no method in between is run.)
    """
    combo = window.panel.method_combo
    index = combo.findData(method)
    assert index >= 0, method
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=WAIT_MS)
    while view.currentIndex().row() != index:
        key = Qt.Key.Key_Down if view.currentIndex().row() < index else Qt.Key.Key_Up
        qtbot.keyClick(view, key)
    qtbot.keyClick(view, Qt.Key.Key_Return)


@pytest.mark.parametrize("method", METHODS)
def test_each_attention_method_is_drawn_when_clicked(window, qtbot, method):
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS,
                          check_params_cb=lambda m, _layer: m == method):
        _choose(qtbot, window, method)
    assert window.method == method
    assert not window.panel.layers.isEnabled()  # one map for the whole model
    heat = window.layer_model.heatmap
    assert heat is not None and heat.shape == window.image.shape[:2]
    assert np.isfinite(heat).all() and float(heat.max()) == pytest.approx(1.0)
    assert float(heat.min()) < float(heat.max())  # a map, not a constant


def test_the_compare_grid_draws_the_three_methods(window, qapp, qtbot):
    panel = window.panel
    for i in range(panel.compare_methods.count()):
        item = panel.compare_methods.item(i)
        wanted = item.data(LAYER_ROLE) in METHODS
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)
    methods, _layers = panel.compare_selection()
    assert set(methods) == set(METHODS)
    window.actions_by_id["compare"].trigger()
    try:
        grid = window.compare
        assert pump(qapp, lambda: grid.complete() and bool(grid.cells)
                    and not window.worker.busy()
                    and not any(c.waiting() for c in grid.cells.values()), 3 * WAIT_MS)
        drawn = {method for (method, _layer), cell in grid.cells.items()
                 if not cell.viewer.overlay_image().isNull()
                 and cell.viewer.layer.peak() == pytest.approx(1.0)}
        assert drawn == set(METHODS)
    finally:
        window.actions_by_id["compare"].trigger()
    assert not window.compare_on


def test_the_trust_panel_measures_each_method(window, qtbot, capsys):
    errors = []
    window.sig_error.connect(errors.append)
    verdicts = {}
    window.open_trust_panel()
    panel = window.trust_panel
    for method in METHODS:
        with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS,
                              check_params_cb=lambda m, _layer, method=method: m == method):
            _choose(qtbot, window, method)
        qtbot.waitUntil(lambda method=method: panel.metrics.get("method") == method
                        and "sanity_passed" in panel.metrics or bool(errors),
                        timeout=3 * WAIT_MS)
        assert not errors, errors
        metrics = panel.metrics
        for key in ("deletion_auc", "insertion_auc", "sanity_similarity"):
            assert np.isfinite(metrics[key]), (method, key)
        verdicts[method] = metrics["sanity_passed"]
        assert panel.badge.isVisibleTo(panel) == (metrics["sanity_passed"] is False)
    with capsys.disabled():
        print(f"\nrandomisation check on {window.model.name}: "
              + ", ".join(f"{m} {'passed' if ok else 'flagged'}" for m, ok in verdicts.items()))
    # Rollout never reads the classifier: randomising the head first leaves its map as it was,
    # so the check must flag it.
    assert verdicts["rollout"] is False


@pytest.fixture
def hf_vit_folder(tmp_path):
    """A Hugging Face ViT classifier as ``save_pretrained`` writes it, with its processor."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, num_hidden_layers=2, num_attention_heads=2, hidden_size=16,
        intermediate_size=32, id2label={0: "normal", 1: "nodule"},
        label2id={"normal": 0, "nodule": 1})
    folder = tmp_path / "hf-vit"
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.mark.usefixtures("no_network")
def test_a_hugging_face_folder_opened_in_the_window_runs_each_method(
        window, qapp, qtbot, hf_vit_folder, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox

    import gui.model_open_dialog

    monkeypatch.setattr(gui.model_open_dialog.QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *_a, **_k: str(hf_vit_folder)))

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, gui.model_open_dialog.QtOpenModelDialog):
            QTimer.singleShot(20, answer)  # not shown yet
            return
        qtbot.mouseClick(dialog.folder_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Open),
                         Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=3 * WAIT_MS):
        window.actions_by_id["open_model"].trigger()
    assert window.model_spec == str(hf_vit_folder)
    assert window.model.classes == ["normal", "nodule"]
    try:
        for method in METHODS:
            if window.method == method:
                continue
            with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS,
                                  check_params_cb=lambda m, _layer, method=method: m == method):
                _choose(qtbot, window, method)
            heat = window.layer_model.heatmap
            assert heat is not None and heat.shape == window.image.shape[:2]
            assert float(heat.min()) < float(heat.max())
    finally:
        window.load_model("demo-vit")  # the module's other tests expect the demo ViT
        assert pump(qapp, lambda: window.model.name == "demo-vit" and not window.worker.busy(),
                    3 * WAIT_MS)
