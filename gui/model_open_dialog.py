"""File ▸ Open model: one chooser for every way a model comes in.

A model card, a model file (``.pt2``, ``.pt``, ``.onnx``), a folder (one holding ``card.toml``,
a Hugging Face ``save_pretrained`` folder, a timm ``save_for_hf`` folder or a MONAI bundle),
or a typed source such as ``timm:convnext_tiny@weights.safetensors``,
``xrv:densenet121-res224-all@weights.pt`` or ``torchvision:resnet18@weights.pth``. The dialog
only says which; the engine's :func:`engine.models.loaded.load_model` reads it, on the worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

#: The file dialog's filter for model files.
MODEL_FILTER = ("Model cards and files (*.toml *.pt *.pth *.pt2 *.onnx *.pkl);;"
                "Weights (*.safetensors *.pt *.pth *.bin);;All files (*)")
#: Typed sources that name an architecture and need a weights file after ``@``.
SOURCE_PREFIXES = ("timm:", "xrv:", "torchvision:")


def is_source(text: str) -> bool:
    """Whether ``text`` names a source (``timm:NAME``...) rather than a path."""
    return text.startswith(SOURCE_PREFIXES)


class QtOpenModelDialog(QDialog):
    """Type a model source or pick a file or folder; Open hands back what to load.

    Parameters
    ----------
    parent : QWidget
    start : str
        The text to begin with (the loaded model's spec, say).
    """

    def __init__(self, parent=None, start: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Open model")
        self.setMinimumWidth(560)
        self.spec = QLineEdit(start)
        self.spec.setObjectName("modelSpec")
        self.spec.setPlaceholderText("a card, file or folder, or timm:NAME@weights.safetensors")
        self.spec.setClearButtonEnabled(True)
        # Architectures by any part of their name: the list runs to hundreds with timm.
        self.names = QStringListModel(self)
        completer = QCompleter(self.names, self)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setMaxVisibleItems(15)
        self.spec.setCompleter(completer)
        self.file_button = QPushButton("File…")
        self.file_button.setToolTip("A model card or model file; after a typed source "
                                    "(timm:NAME), its weights file")
        self.file_button.clicked.connect(self._pick_file)
        self.folder_button = QPushButton("Folder…")
        self.folder_button.setToolTip("A folder: with card.toml, a Hugging Face or timm model "
                                      "(config.json) or a MONAI bundle (configs/, models/)")
        self.folder_button.clicked.connect(self._pick_folder)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #ffb347;")
        note = QLabel("A model card (.toml), a model file (.pt2, .pt, .onnx), a folder (a card, "
                      "a Hugging Face or timm model, or a MONAI bundle), or a source and its "
                      "weights: <tt>timm:NAME@FILE</tt>, <tt>xrv:NAME@FILE</tt>, "
                      "<tt>torchvision:NAME@FILE</tt>. Nothing is downloaded.")
        note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.spec, 1)
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._open)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

    def set_architectures(self, names: list[str]) -> None:
        """Offer ``names`` (``timm:convnext_tiny``...) as the typed source is written."""
        self.names.setStringList(list(names))

    def chosen(self) -> str:
        """What to load: the typed source or the path (``~`` expanded)."""
        text = self.spec.text().strip()
        return text if is_source(text) else os.path.expanduser(text)

    def _start_folder(self) -> str:
        text = self.spec.text().strip()
        if is_source(text):
            text = text.partition("@")[2]
        path = Path(os.path.expanduser(text)) if text else None
        if path is None:
            return ""
        return str(path if path.is_dir() else path.parent)

    def _pick_file(self) -> None:
        text = self.spec.text().strip()
        source = text.partition("@")[0] if is_source(text) else None
        path, _ = QFileDialog.getOpenFileName(
            self, "Weights file" if source else "Model card or file", self._start_folder(),
            MODEL_FILTER)
        if path:
            # After a typed source the file is its weights: timm:NAME@FILE.
            self.spec.setText(f"{source}@{path}" if source else path)
            self.status.setText("")

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Model folder", self._start_folder())
        if path:
            self.spec.setText(path)
            self.status.setText("")

    def _open(self) -> None:
        text = self.chosen()
        if not text:
            self.status.setText("Nothing chosen. Fix: pick a file or folder, or type a source "
                                "such as timm:convnext_tiny@weights.safetensors")
            return
        if is_source(text) and "@" not in text:
            self.status.setText(f"{text} needs its weights. Fix: write {text}@FILE, or press "
                                "File… to pick the weights file")
            return
        if not is_source(text) and not Path(text).exists():
            self.status.setText(f"{text}: not found. Fix: check the path, or pick it with "
                                "File… or Folder…")
            return
        self.accept()
