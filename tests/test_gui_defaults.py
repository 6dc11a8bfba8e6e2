"""Defaults that fit on the real window: export folder, model trust and cards, compute device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gui_fixtures import WAIT_MS, pump
from PySide6.QtCore import QStandardPaths

from gui.export_folder import EXPORTS, LAST_FOLDER_KEY
from gui.model_loading import trust_box

ROOT = Path(__file__).resolve().parents[1]


def test_exports_go_to_the_documents_folder_then_to_the_last_one_used(window, qapp, tmp_path):
    window.settings.remove(LAST_FOLDER_KEY)
    window.open_export()
    dialog = window._export_dialog
    documents = QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.DocumentsLocation)
    folder = Path(dialog.folder.text())
    assert folder.parent == Path(documents) / EXPORTS
    assert not folder.is_relative_to(Path.cwd()) or Path(documents).is_relative_to(Path.cwd())
    dialog.folder.setText(str(tmp_path / "chosen" / folder.name))
    for box in dialog.output_checks.values():
        box.setChecked(False)
    dialog.output_checks["png"].setChecked(True)
    dialog.export()
    assert pump(qapp, lambda: (tmp_path / "chosen" / folder.name).is_dir()
                and dialog.export_button.isEnabled())
    dialog.reject()
    window.open_export()
    again = window._export_dialog
    assert Path(again.folder.text()).parent == tmp_path / "chosen"
    again.reject()


def test_the_trust_question_speaks_of_buttons_not_flags(qtbot):
    box, load_button = trust_box(None, "full.pt", "is a pickled Python object that can run code "
                                 "when loaded")
    qtbot.addWidget(box)
    text = f"{box.text()} {box.informativeText()}"
    assert "full.pt is a pickled Python object" in text
    assert "--" not in text and "flag" not in text
    assert load_button.text() == "Load it" and "Load it" in text


def test_a_pickled_model_gets_a_card_for_its_classes_in_the_gui(window, qapp, qtbot, tmp_path):
    import torch
    from torch import nn

    from gui.card_dialog import QtCardDialog

    # One input channel: the default three-channel dry run cannot tell its classes.
    path = tmp_path / "net.pt"
    torch.save(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, 3)).eval(), path)
    window.confirm_trust = lambda name, message: True
    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as blocker:
        window.load_model(str(path))
    assert "net.pt" in blocker.args[0] and window.model_spec == "demo"
    assert pump(qapp, lambda: window._card_dialog is not None
                and window._card_dialog.isVisible())
    dialog = window._card_dialog
    assert isinstance(dialog, QtCardDialog) and dialog.name.text() == "net"
    dialog.classes.setText("calm, busy, odd")
    dialog.channels.setCurrentText("1")
    dialog.mean.setText("0.5")
    dialog.std.setText("0.25")
    dialog.rows.setValue(48)
    dialog.cols.setValue(48)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        card = dialog.save()
    assert card == tmp_path / "net.card.toml" and card.is_file()
    assert window.model.classes == ["calm", "busy", "odd"]
    assert window.model.input.size == (48, 48)
    assert window.model_spec == str(card)
    assert pump(qapp, lambda: window.panel.prediction.topLevelItemCount() == 3)
    assert [window.panel.prediction.topLevelItem(i).text(0).rstrip(" ◀")
            for i in range(3)] == ["calm", "busy", "odd"]
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.load_model("demo")


def test_the_device_is_chosen_in_the_gui_and_shown(window, qapp, qtbot):
    assert pump(qapp, lambda: window.device is not None)
    assert window.status.device_label.text() == f"Device: {window.device.upper()} (auto)"
    assert window.model.device.type == window.device.split(":")[0]
    assert window.device_actions["auto"].isChecked()
    window.device_actions["cpu"].trigger()
    assert pump(qapp, lambda: window.status.device_label.text() == "Device: CPU"
                and window.model is not None and window.model.device.type == "cpu")
    assert window.settings.value("device") == "cpu"
    import torch

    if not torch.cuda.is_available():
        # Not offered; a choice saved on another machine falls back to the automatic one.
        assert not window.device_actions["cuda"].isEnabled()
        errors = []
        window.sig_error.connect(errors.append)
        window.set_device("cuda")
        assert pump(qapp, lambda: bool(errors) and window.device_choice == "auto")
        assert "no CUDA GPU on this machine" in errors[0] and "--" not in errors[0]
        assert window.device_actions["auto"].isChecked()
    window.set_device("auto")
    assert pump(qapp, lambda: window.status.device_label.text().endswith("(auto)"))


#: Run in a child process: which threads import torch and the plugins while a window opens.
IMPORTS = r"""
import sys, threading, time, importlib.abc
seen = {}
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("torch", "plugins.gradient_cams") and name not in seen:
            seen[name] = threading.current_thread() is threading.main_thread()
        return None
sys.meta_path.insert(0, Spy())
from PySide6.QtWidgets import QApplication
app = QApplication(["probe"])
from gui.main_window import QtMainWindow
win = QtMainWindow()
built_with_torch = "torch" in sys.modules and seen.get("torch")
win.show()
end = time.monotonic() + 120
while not (win.explainers and win.device) and time.monotonic() < end:
    app.processEvents(); time.sleep(0.01)
print("main-thread imports:", sorted(n for n, main in seen.items() if main),
      "worker imports:", sorted(n for n, main in seen.items() if not main),
      "device:", win.device)
win.close()
"""


def test_torch_and_plugins_are_imported_on_the_worker(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=WAIT_MS / 1000 + 60)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("main-thread imports: [] worker imports: "
                           "['plugins.gradient_cams', 'torch']"), line
