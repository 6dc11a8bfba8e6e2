"""A weights file opened in the window gets a card: its architecture picked from a searchable
list, the card tried before it is saved, then loaded and used to explain."""

from __future__ import annotations

import pytest
import torch
import torchvision
from gui_fixtures import WAIT_MS, pump
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

import gui.model_loading
from engine.models.card import read_card
from engine.models.dry_run import dry_run_card
from engine.models.loaders import known_architectures
from gui.card_dialog import QtCardDialog, card_fields
from gui.explain_panel import OPEN_CARD

CLASSES = ["calm", "busy", "odd"]


def _weights(folder) -> object:
    """A torchvision resnet18 state_dict with three classes, as a bare ``.pt`` file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=len(CLASSES)).state_dict(), path)
    return path


def _open_model_file(window, qapp, qtbot, monkeypatch, path) -> QtCardDialog:
    """Pick "Open model card…" in the panel's model list and choose ``path`` in the file dialog.

    Loading a weights file without a card fails; the window then asks for the card.
    """
    monkeypatch.setattr(gui.model_loading.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *_a, **_k: (str(path), "")))
    window._card_dialog = None
    combo = window.panel.model_combo
    combo.showPopup()
    view = combo.view()
    row = combo.findData(OPEN_CARD)
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as failed:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=view.visualRect(combo.model().index(row, 0)).center())
    assert path.name in failed.args[0] and "\n" not in failed.args[0]
    assert pump(qapp, lambda: window._card_dialog is not None
                and window._card_dialog.isVisible())
    return window._card_dialog


def _describe(qtbot, dialog: QtCardDialog, architecture: str) -> None:
    """Type the architecture into the searchable list and the classes, then click Save."""
    line = dialog.architecture.lineEdit()
    line.clear()
    qtbot.keyClicks(line, architecture)
    dialog.classes.clear()
    qtbot.keyClicks(dialog.classes, ", ".join(CLASSES))
    save = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save)
    qtbot.mouseClick(save, Qt.MouseButton.LeftButton)


def test_the_architecture_list_holds_what_the_loaders_build():
    names = known_architectures()
    assert "lucida:demo_cnn" in names and "torchvision:resnet18" in names
    assert "torchvision:deeplabv3_resnet50" in names and "torchvision:r3d_18" in names
    assert len(names) == len(set(names))


def test_a_weights_file_is_described_tried_saved_and_explains(window, qapp, qtbot, monkeypatch,
                                                              tmp_path):
    path = _weights(tmp_path)
    dialog = _open_model_file(window, qapp, qtbot, monkeypatch, path)
    card = tmp_path / "r18.card.toml"
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        _describe(qtbot, dialog, "torchvision:resnet18")
    assert not dialog.isVisible() and card.is_file()
    read = read_card(card)
    assert read.architecture == "torchvision:resnet18" and read.weights == path
    assert read.model is None and read.classes == CLASSES
    assert window.model_spec == str(card) and window.model.classes == CLASSES
    assert pump(qapp, lambda: window.result is not None
                and list(window.result.classes) == CLASSES)
    assert pump(qapp, lambda: window.panel.prediction.topLevelItemCount() == 3)
    assert [window.panel.prediction.topLevelItem(i).text(0).rstrip(" ◀")
            for i in range(3)] == CLASSES
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.load_model("demo")


def test_a_wrong_architecture_is_one_line_and_writes_nothing(window, qapp, qtbot, monkeypatch,
                                                             tmp_path):
    path = _weights(tmp_path)
    dialog = _open_model_file(window, qapp, qtbot, monkeypatch, path)
    _describe(qtbot, dialog, "torchvision:resnet34")
    text = dialog.status.text()
    assert "do not fit torchvision:resnet34" in text and "r18.pt" in text and "Fix:" in text
    assert "\n" not in text
    assert dialog.isVisible() and not (tmp_path / "r18.card.toml").exists()
    # A weights file described as a whole model says what it needs instead.
    _describe(qtbot, dialog, "(the file holds the whole model)")
    assert "holds weights only" in dialog.status.text()
    assert not (tmp_path / "r18.card.toml").exists()
    dialog.reject()


def test_the_dry_run_refuses_outputs_that_are_not_the_classes(tmp_path):
    path = _weights(tmp_path)
    fields = card_fields(path, "r18", ["a", "b"], "softmax", (64, 64), 3, [0.5] * 3, [0.5] * 3,
                         "default", "torchvision:resnet18")
    with pytest.raises(Exception, match="fc.weight: file"):
        dry_run_card(tmp_path / "r18.card.toml", fields)
    fields = card_fields(path, "r18", CLASSES, "softmax", (64, 64), 3, [0.5] * 3, [0.5] * 3,
                         "default", "torchvision:resnet18")
    assert dry_run_card(tmp_path / "r18.card.toml", fields).architecture == \
        "torchvision:resnet18"
    assert not (tmp_path / "r18.card.toml").exists()
