"""Load notes: a MONAI bundle transform Lucida cannot map is a note on the loaded model, recorded
by ``describe()``, printed by the CLI as one ``warning:`` line and shown in the window's message
line and banner when the model loads through File ▸ Open model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bundle_fixtures import inference, metadata, write_bundle
from gui_fixtures import WAIT_MS, demo_window
from PIL import Image as PILImage
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from engine.cli import main as cli_main
from engine.models.loaded import load_model
from gui.model_open_dialog import QtOpenModelDialog

#: A bundle's transforms: the last one runs code and has no Lucida equivalent.
TRANSFORMS = [
    {"_target_": "LoadImaged", "keys": "image"},
    {"_target_": "EnsureChannelFirstd", "keys": "image"},
    {"_target_": "ScaleIntensityd", "keys": "image"},
    {"_target_": "Lambdad", "keys": "image", "func": "$lambda x: x[::-1]"},
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    import torch
    from monai.networks.nets import Classifier

    torch.manual_seed(0)
    net = Classifier(in_shape=[1, 32, 32], classes=2, channels=[4], strides=[2]).eval()
    network_def = {"_target_": "monai.networks.nets.Classifier", "in_shape": [1, 32, 32],
                   "classes": 2, "channels": [4], "strides": [2]}
    return write_bundle(tmp_path_factory.mktemp("notes") / "bundle", net,
                        inference(network_def, TRANSFORMS), metadata(["a", "b"], 1, [32, 32]))


def test_an_unmapped_transform_is_a_note_not_a_python_warning(bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = load_model(bundle)
    assert len(model.notes) == 1
    note = model.notes[0]
    assert "inference.json" in note and "Lambdad" in note and "card.toml" in note
    assert "\n" not in note
    assert model.describe()["notes"] == [note]


def test_the_cli_prints_each_note_as_one_warning_line(bundle, tmp_path, capsys):
    image = tmp_path / "scan.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), np.uint8)).save(image)
    code = cli_main(["explain", str(image), "--model", str(bundle), "--method", "occlusion",
                     "--out", str(tmp_path / "out")])
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("warning:")]
    assert warned == [f"warning: {load_model(bundle).notes[0]}"]


def test_the_window_shows_the_note_when_the_model_loads(qapp, qtbot, bundle, tmp_path):
    window = demo_window(qapp, tmp_path)

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QtOpenModelDialog):
            QTimer.singleShot(20, answer)  # not shown yet
            return
        dialog.spec.setText(str(bundle))
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Open),
                         Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)
    try:
        with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
            window.actions_by_id["open_model"].trigger()
        qtbot.waitUntil(lambda: window.model is not None and window.model.kind == "module"
                        and window.model_spec == str(bundle), timeout=WAIT_MS)
        # The message line said it at load; the banner over the image keeps it in view.
        assert window.banner.isVisible()
        assert window.banner.label.text() == window.model.notes[0]
        assert "Lambdad" in window.model.notes[0]
    finally:
        window.close()
