"""Give a bare model file a card: its architecture, classes and preprocessing.

A weights file (a state_dict) needs the network it belongs to: the architecture is chosen from
a searchable list of what the loaders build (:func:`engine.models.loaders.known_architectures`)
or a ``python:`` builder file; a whole-model file (a pickled module, TorchScript) needs none.
Save tries the card first (:func:`engine.models.dry_run.dry_run_card`: build, load the weights,
one forward pass) and writes nothing when it fails. The card is an ordinary model card next to
the model file (``<stem>.card.toml``), written by the engine's card writer, so the command line
and the next session read the same card.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from engine.core.errors import LucidaError, ModelError
from engine.models.card import default_spec
from engine.models.card_writer import CardExists, write_card
from engine.models.dry_run import dry_run_card
from engine.models.findings import DEFAULT_THRESHOLD
from engine.models.loaders import known_architectures

#: Suffix of the card written next to a model file.
CARD_SUFFIX = ".card.toml"
#: The architecture choice of a file that holds the whole model (no architecture named).
WHOLE_MODEL = "(the file holds the whole model)"
#: The architecture choice that picks a Python file with a builder function.
PYTHON_FILE = "python: a builder function in a Python file…"


def _numbers(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ModelError(f"{what} must be numbers separated by commas, not {text!r}",
                         fix="write e.g. 0.485, 0.456, 0.406") from None
    if not values:
        raise ModelError(f"{what} is empty", fix="give one number per channel")
    return values


def card_fields(model_file: Path, name: str, classes: list[str], output: str,
                size: tuple[int, int], channels: int, mean: list[float], std: list[float],
                window: str, architecture: str | None = None,
                threshold: float | None = None) -> dict:
    """Return the card for ``model_file`` as :func:`~engine.models.card_writer.write_card` takes it.

    With ``architecture``, the file is the card's ``weights`` (a state_dict); without, its
    ``model`` (a whole-model file). ``threshold`` is written for a sigmoid (multi-label)
    output only: the probability at or above which a class is a finding.

    Returns
    -------
    dict
        Top-level fields and the ``input`` table; the model file is named relative to the card.
    """
    files = ({"architecture": architecture, "weights": model_file.name} if architecture
             else {"model": model_file.name})
    return {
        "name": name,
        **files,
        "classes": classes,
        "output": output,
        **({"threshold": float(threshold)}
           if output == "sigmoid" and threshold is not None else {}),
        "input": {"size": list(size), "channels": channels, "mean": mean, "std": std,
                  "window": window},
    }


class QtCardDialog(QDialog):
    """Fields for the card of the loaded model file; Save writes it and announces its path.

    Signals
    -------
    sig_card_saved(str path)
    """

    sig_card_saved = Signal(str)

    def __init__(self, parent, model, spec: str | None, trust: bool = False) -> None:
        """``model`` is the loaded model, or None when the file could not be loaded.

        ``trust`` says whether the model file's code may run (the user confirmed it): only
        then is a whole-model file or a ``python:`` builder tried before saving.
        """
        super().__init__(parent)
        self.setWindowTitle("Describe this model file")
        self.model_file = Path(spec) if spec else None
        self.trust = trust
        self.architecture = self._architecture_box()
        spec_in = model.input if model is not None else default_spec()
        name = model.name if model is not None else (self.model_file.stem
                                                     if self.model_file else "")
        self.name = QLineEdit(name)
        self.classes = QLineEdit(", ".join(model.classes) if model is not None else "")
        self.classes.setToolTip("Class names in the order of the model's outputs")
        self.output = QComboBox()
        self.output.addItems(["softmax", "sigmoid"])
        self.output.setCurrentText(model.output if model is not None else "softmax")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.01, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(getattr(model, "threshold", DEFAULT_THRESHOLD))
        self.threshold.setToolTip("Sigmoid (multi-label) outputs: a class at or above this "
                                  "probability is a finding")
        self.output.currentTextChanged.connect(
            lambda text: self.threshold.setEnabled(text == "sigmoid"))
        self.threshold.setEnabled(self.output.currentText() == "sigmoid")
        self.rows, self.cols = QSpinBox(), QSpinBox()
        for box, value in ((self.rows, spec_in.size[0]), (self.cols, spec_in.size[1])):
            box.setRange(8, 4096)
            box.setValue(int(value))
        self.channels = QComboBox()
        self.channels.addItems(["1", "3"])
        self.channels.setCurrentText(str(spec_in.channels))
        self.mean = QLineEdit(", ".join(f"{v:g}" for v in spec_in.mean))
        self.std = QLineEdit(", ".join(f"{v:g}" for v in spec_in.std))
        self.window = QComboBox()
        self.window.addItems(["default", "minmax"])
        self.window.setToolTip("default: the file's own window; minmax: each image's range")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        #: The existing card that the next Save replaces, once the user was told it is there.
        self._replace: Path | None = None
        form = QFormLayout()
        form.addRow("Architecture", self.architecture)
        form.addRow("Name", self.name)
        form.addRow("Classes", self.classes)
        form.addRow("Output", self.output)
        form.addRow("Finding threshold", self.threshold)
        form.addRow("Input rows", self.rows)
        form.addRow("Input columns", self.cols)
        form.addRow("Channels", self.channels)
        form.addRow("Mean", self.mean)
        form.addRow("Std", self.std)
        form.addRow("DICOM window", self.window)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        note = QLabel("Lucida could not read these from the file. A weights file needs its "
                      "architecture (type to search). Save tries the model on an input of "
                      "this size, then writes a model card next to the file, used from now on.")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        if self.model_file is None or not self.model_file.is_file() or \
                self.model_file.suffix.lower() == ".toml":
            self.status.setText("This model already has a card (or is a demo model): edit its "
                                ".toml file instead.")
            buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)

    def _architecture_box(self) -> QComboBox:
        """An editable list of the known architectures, searched by any part of a name.

        It holds the two fixed choices until :meth:`set_architectures` brings the names (over
        a thousand with timm, listed on the worker).
        """
        box = QComboBox()
        box.setEditable(True)
        box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        box.setMaxVisibleItems(20)
        box.addItems([WHOLE_MODEL, PYTHON_FILE])
        completer = QCompleter(box.model(), box)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setMaxVisibleItems(15)
        box.setCompleter(completer)
        box.setToolTip("Type part of a name (resnet, unet, swin…). A weights file (state_dict) "
                       "needs the network it was saved from; a whole-model file needs none.")
        box.textActivated.connect(self._architecture_chosen)
        return box

    def set_architectures(self, names: list[str]) -> None:
        """List ``names`` between the whole-model and the Python-file choices; what is typed
        stays."""
        box = self.architecture
        text = box.currentText()
        box.blockSignals(True)
        while box.count() > 2:
            box.removeItem(1)
        box.insertItems(1, list(names))
        box.setCurrentText(text)
        box.blockSignals(False)

    def _architecture_chosen(self, text: str) -> None:
        if text != PYTHON_FILE:
            return
        start = str(self.model_file.parent) if self.model_file else ""
        path, _ = QFileDialog.getOpenFileName(self, "Python file with a builder function",
                                              start, "Python files (*.py)")
        if not path:
            self.architecture.setCurrentText(WHOLE_MODEL)
            return
        # Relative to the card's folder when it is beside it, as a card is usually moved with
        # its files; the function name is a guess the user edits.
        where = os.path.relpath(path, start) if start and \
            Path(path).resolve().is_relative_to(Path(start).resolve()) else path
        self.architecture.setCurrentText(f"python:{where}:build")
        self.status.setText("Fix: replace build with the name of the function that returns "
                            "the network")

    def chosen_architecture(self) -> str | None:
        """The architecture typed or picked; None for a whole-model file."""
        text = self.architecture.currentText().strip()
        if text in ("", WHOLE_MODEL):
            return None
        if text == PYTHON_FILE:
            raise ModelError("no Python file chosen", fix="pick the file that builds the network")
        if not (text.startswith("python:") or text in known_architectures()):
            raise ModelError(f"unknown architecture {text!r}",
                             fix="pick one from the list (type part of its name)")
        return text

    def card_path(self) -> Path:
        """Where the card is written."""
        return self.model_file.with_name(self.model_file.stem + CARD_SUFFIX)

    def save(self) -> Path | None:
        """Check the fields, write the card and announce it; None (with a message) if bad."""
        try:
            classes = [c.strip() for c in self.classes.text().split(",") if c.strip()]
            if not classes:
                raise ModelError("no class names given", fix="list them separated by commas")
            channels = int(self.channels.currentText())
            mean = _numbers(self.mean.text(), "mean")
            std = _numbers(self.std.text(), "std")
            if len(mean) != channels or len(std) != channels:
                raise ModelError(f"mean and std need {channels} value(s) each",
                                 fix="give one number per channel")
            fields = card_fields(self.model_file,
                                 self.name.text().strip() or self.model_file.stem, classes,
                                 self.output.currentText(), (self.rows.value(), self.cols.value()),
                                 channels, mean, std, self.window.currentText(),
                                 self.chosen_architecture(), self.threshold.value())
            path = self.card_path()
            self._try(path, fields)
            write_card(path, fields, overwrite=self._replace == path)
        except CardExists:
            # A card written earlier is replaced only when Save is pressed a second time.
            self._replace = path
            self.status.setText(f"{path.name} already exists. Fix: press Save again to replace "
                                "it, or Cancel to keep it")
            return None
        except LucidaError as exc:
            self.status.setText(exc.one_line())
            return None
        self.sig_card_saved.emit(str(path))
        self.accept()
        return path

    def _try(self, path: Path, fields: dict) -> None:
        """Build the card's model and run it once; raises the one-line reason it fails."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            dry_run_card(path, fields, trust=self.trust)
        finally:
            QApplication.restoreOverrideCursor()
