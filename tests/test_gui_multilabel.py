"""A 14-class multi-label (sigmoid) model in the window: opened with File ▸ Open model, its
classes listed most probable first, the threshold marking the findings (and re-marking them
when edited), a click on any row explaining that class; the table stays readable at
1280 × 720 with the Trust panel open."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from gui_fixtures import WAIT_MS, click_item, demo_window, pump
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

import gui.model_loading
import gui.model_open_dialog
from engine.demo.arch import DemoCNN
from engine.demo.multilabel import CHEST14, write_multilabel_demo
from gui.explain_panel import OPEN_CARD
from gui.model_open_dialog import QtOpenModelDialog
from gui.prediction_table import CLEAR_MARK, FINDING_MARK

CARD_THRESHOLD = 0.5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The multi-label demo model, written as a folder holding card.toml and its weights."""
    path = tmp_path_factory.mktemp("chest14")
    write_multilabel_demo(path, threshold=CARD_THRESHOLD)
    return path


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    win = demo_window(qapp, tmp_path_factory.mktemp("settings"))
    yield win
    win.close()


def _answer_open_model(qtbot, fill) -> list:
    """Answer the next File ▸ Open model dialog: ``fill(dialog)``, then click Open.

    Returns a list that gets what the dialog was to open, then its refusal line, if any.
    """
    seen = []

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QtOpenModelDialog):
            QTimer.singleShot(20, answer)  # not shown yet
            return
        fill(dialog)
        seen.append(dialog.chosen())
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Open),
                         Qt.MouseButton.LeftButton)
        if dialog.isVisible():  # refused: the status line says why; give up
            seen.append(dialog.status.text())
            dialog.reject()

    QTimer.singleShot(0, answer)
    return seen


def _rows(window) -> list:
    tree = window.panel.prediction
    return [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]


def _percent(item) -> float:
    return float(item.text(1).strip().rstrip("%"))


def _reference_probabilities(window, folder) -> np.ndarray:
    """Each class's sigmoid, from a network built and loaded here, not by the window."""
    from safetensors.torch import load_file

    net = DemoCNN(in_channels=1, num_classes=len(CHEST14)).eval()
    net.load_state_dict(load_file(str(folder / "demo-multilabel.safetensors")))
    with torch.no_grad():
        logits = net(window.model.preprocess(window.image).cpu())[0]
    return torch.sigmoid(logits).numpy()


def test_open_model_takes_a_folder(window, qapp, qtbot, folder, monkeypatch):
    monkeypatch.setattr(gui.model_open_dialog.QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *_a, **_k: str(folder)))
    seen = _answer_open_model(
        qtbot, lambda d: qtbot.mouseClick(d.folder_button, Qt.MouseButton.LeftButton))
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.actions_by_id["open_model"].trigger()
    assert seen == [str(folder)]
    assert window.model_spec == str(folder)
    assert window.model.output == "sigmoid" and window.model.classes == list(CHEST14)
    assert pump(qapp, lambda: len(_rows(window)) == len(CHEST14))


def test_the_table_is_sorted_and_the_threshold_marks_the_findings(window, qapp, qtbot, folder):
    panel = window.panel
    p = _reference_probabilities(window, folder)
    rows = _rows(window)
    names = [item.text(0).lstrip(f"{FINDING_MARK}{CLEAR_MARK} ").rstrip(" ◀") for item in rows]
    assert names == [CHEST14[i] for i in np.argsort(-p, kind="stable")]
    assert [_percent(item) for item in rows] == pytest.approx(100 * np.sort(p)[::-1], abs=0.051)
    spin = panel.prediction_table.threshold
    assert spin.isVisible() and spin.value() == CARD_THRESHOLD

    def marked() -> set[str]:
        return {item.text(0).split(" ")[1] for item in _rows(window)
                if item.text(0).startswith(FINDING_MARK)}

    assert marked() == {CHEST14[i] for i in np.flatnonzero(p >= CARD_THRESHOLD)}
    assert 0 < len(marked()) < len(CHEST14)
    # Typed into the box as a person would: the rows are marked again at once.
    with qtbot.waitSignal(panel.sig_threshold_changed):
        qtbot.mouseClick(spin.lineEdit(), Qt.MouseButton.LeftButton)
        spin.lineEdit().selectAll()
        qtbot.keyClicks(spin.lineEdit(), "0.30")
        qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert spin.value() == pytest.approx(0.30)
    assert marked() == {CHEST14[i] for i in np.flatnonzero(p >= 0.30)}
    assert len(marked()) > len(np.flatnonzero(p >= CARD_THRESHOLD))
    assert panel.finding_threshold() == pytest.approx(0.30)
    assert panel.prediction_table.findings.text().startswith(f"Findings: {len(marked())} of 14")


def test_a_cancelled_model_choice_keeps_the_threshold_typed(window, qapp, qtbot, monkeypatch):
    monkeypatch.setattr(gui.model_loading.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *_a, **_k: ("", "")))
    combo = window.panel.model_combo
    combo.showPopup()
    view = combo.view()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(combo.model().index(combo.findData(OPEN_CARD), 0))
                     .center())
    assert pump(qapp, lambda: not combo.view().isVisible())
    assert window.model.output == "sigmoid"
    assert window.panel.finding_threshold() == pytest.approx(0.30)


def test_a_click_on_the_ninth_row_explains_that_class(window, qapp, qtbot):
    before = np.array(window.layer_model.heatmap, copy=True)
    old_target = window.result.target
    ninth = _rows(window)[8]
    index = ninth.data(0, Qt.ItemDataRole.UserRole)
    assert index != old_target
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        click_item(window.panel.prediction, ninth)
    assert pump(qapp, lambda: window.result is not None and window.result.target == index)
    assert CHEST14[index] in window.caption.text()
    assert not np.allclose(window.layer_model.heatmap, before)
    # The table keeps its order; the clicked class is the one marked explained.
    rows = _rows(window)
    assert rows[8].text(0).endswith("◀") and rows[8].font(0).bold()
    assert [r.text(0).endswith("◀") for r in rows].count(True) == 1


def test_readable_at_1280_by_720_with_the_trust_panel(window, qapp, qtbot):
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().width() == 1280)
    trust = next(a for a in window.tools_menu.actions() if a.text().startswith("&Trust"))
    trust.trigger()
    qtbot.waitUntil(lambda: window.docks["trust"].isVisible())
    pump(qapp, lambda: not window.worker.busy())
    tree = window.panel.prediction
    header = tree.header()
    widest = max(tree.fontMetrics().horizontalAdvance(item.text(1)) for item in _rows(window))
    # The probability column is whole, inside the table and inside the part of the dock that
    # is on screen (the dock scrolls: a panel wider than the dock would hide it).
    assert header.sectionSize(1) >= widest
    right = header.sectionViewportPosition(1) + header.sectionSize(1)
    assert right <= tree.viewport().width()
    area = window.docks["explain"].widget()
    assert tree.viewport().mapTo(area.viewport(), QPoint(right, 0)).x() <= \
        area.viewport().width()
    assert area.horizontalScrollBar().maximum() == 0
    # The names keep a column of their own (cut names are whole in their tooltips).
    assert header.sectionSize(0) >= 3 * tree.fontMetrics().horizontalAdvance("W")
    assert all(item.toolTip(0).startswith(item.text(0).split(" ")[1].rstrip("…"))
               for item in _rows(window))


def test_the_report_lists_the_findings_at_the_threshold_on_screen(window, qapp, qtbot, folder,
                                                                  tmp_path):
    p = _reference_probabilities(window, folder)
    cut = window.panel.finding_threshold()
    assert cut == pytest.approx(0.30)  # as typed above, not the card's
    window.actions_by_id["export"].trigger()
    dialog = window._export_dialog
    out = tmp_path / "export"
    dialog.folder.setText(str(out))
    for fmt, check in dialog.output_checks.items():
        check.setChecked(fmt == "html")
    with qtbot.waitSignal(dialog.sig_exported, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    dialog.reject()
    found = json.loads((out / "report.json").read_text())["findings"]
    assert found["threshold"] == pytest.approx(cut)
    assert [f["class"] for f in found["positive"]] == \
        [CHEST14[i] for i in np.argsort(-p, kind="stable") if p[i] >= cut]
    page = (out / "report.html").read_text()
    assert f"threshold {cut:.2f}" in page and page.count("finding (≥ 0.30)") == \
        len(found["positive"])


def test_open_model_takes_a_typed_card_path_and_refuses_a_source_without_weights(
        window, qapp, qtbot, folder):
    seen = _answer_open_model(qtbot, lambda d: d.spec.setText("timm:convnext_tiny"))
    window.actions_by_id["open_model"].trigger()
    assert pump(qapp, lambda: len(seen) == 2)
    assert "needs its weights" in seen[1] and "Fix:" in seen[1]
    # The dialog's completer offers every architecture, listed on the worker (timm's too).
    assert pump(qapp, lambda: window.models.architectures is not None)
    assert {"timm:convnext_tiny", "xrv:densenet121-res224-all", "torchvision:resnet18"} <= \
        set(window.models.architectures)
    card = folder / "card.toml"
    window.load_model("demo")
    assert pump(qapp, lambda: window.model is not None and window.model.output == "softmax")
    _answer_open_model(qtbot, lambda d: d.spec.setText(str(card)))
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.actions_by_id["open_model"].trigger()
    assert window.model_spec == str(card) and window.model.output == "sigmoid"
    # The card's threshold again, not the one typed for the model before.
    assert window.panel.finding_threshold() == CARD_THRESHOLD


def test_open_model_takes_an_onnx_file_and_a_card_naming_it(window, qapp, qtbot, folder,
                                                            tmp_path, monkeypatch):
    from safetensors.torch import load_file

    net = DemoCNN(in_channels=1, num_classes=len(CHEST14)).eval()
    net.load_state_dict(load_file(str(folder / "demo-multilabel.safetensors")))
    onnx = tmp_path / "chest14.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices
        torch.onnx.export(net, (torch.zeros(1, 1, 64, 64),), str(onnx), dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    monkeypatch.setattr(gui.model_open_dialog.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *_a, **_k: (str(onnx), "")))
    _answer_open_model(
        qtbot, lambda d: qtbot.mouseClick(d.file_button, Qt.MouseButton.LeftButton))
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.actions_by_id["open_model"].trigger()
    assert window.model_spec == str(onnx) and len(window.model.classes) == len(CHEST14)
    # No card: a softmax model, its classes in output order, no threshold.
    assert window.model.output == "softmax"
    assert not window.panel.prediction_table.threshold.isVisible()
    assert pump(qapp, lambda: [r.data(0, Qt.ItemDataRole.UserRole) for r in _rows(window)]
                == list(range(len(CHEST14))))
    # A card beside it says what the file does not: names, input, sigmoid outputs.
    card = tmp_path / "chest14.card.toml"
    names = ", ".join(f'"{c}"' for c in CHEST14)
    card.write_text(f'name = "chest14-onnx"\nmodel = "chest14.onnx"\nclasses = [{names}]\n'
                    'output = "sigmoid"\nthreshold = 0.6\n[input]\nsize = [64, 64]\n'
                    'channels = 1\nmean = [0.3]\nstd = [0.2]\n')
    _answer_open_model(qtbot, lambda d: d.spec.setText(str(card)))
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.actions_by_id["open_model"].trigger()
    assert window.model.output == "sigmoid" and window.model.classes == list(CHEST14)
    assert window.panel.finding_threshold() == pytest.approx(0.6)
    p = _reference_probabilities(window, folder)
    assert pump(qapp, lambda: [r.data(0, Qt.ItemDataRole.UserRole) for r in _rows(window)]
                == list(np.argsort(-p, kind="stable")))
    assert {r.text(0).split(" ")[1] for r in _rows(window) if r.text(0).startswith(
        FINDING_MARK)} == {CHEST14[i] for i in np.flatnonzero(p >= 0.6)}


def test_open_model_joins_a_typed_timm_source_and_the_weights_picked(window, qapp, qtbot,
                                                                      tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    net = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    monkeypatch.setattr(gui.model_open_dialog.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *_a, **_k: (str(weights), "")))

    def fill(dialog) -> None:
        dialog.spec.clear()  # it starts with the model loaded before
        qtbot.keyClicks(dialog.spec, "timm:test_resnet")
        qtbot.mouseClick(dialog.file_button, Qt.MouseButton.LeftButton)

    seen = _answer_open_model(qtbot, fill)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.actions_by_id["open_model"].trigger()
    spec = f"timm:test_resnet@{weights}"
    assert seen == [spec] and window.model_spec == spec
    assert len(window.model.classes) == 5 and window.model.output == "softmax"
    assert window.panel.model_combo.currentText() == "timm:test_resnet@tiny.safetensors"
