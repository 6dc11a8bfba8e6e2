"""Give a bare model file (a pickled module, say) a card: its classes and preprocessing.

The dialog writes an ordinary model card next to the model file (``<stem>.card.toml``, with
``model = "<file>"``), so the command line and the next session read the same card.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from engine.core.errors import LucidaError, ModelError
from engine.models.card import default_spec
from engine.models.card_writer import CardExists, write_card

#: Suffix of the card written next to a model file.
CARD_SUFFIX = ".card.toml"


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
                window: str) -> dict:
    """Return the card for ``model_file`` as :func:`~engine.models.card_writer.write_card` takes it.

    Returns
    -------
    dict
        Top-level fields and the ``input`` table; the model file is named relative to the card.
    """
    return {
        "name": name,
        "model": model_file.name,
        "classes": classes,
        "output": output,
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

    def __init__(self, parent, model, spec: str | None) -> None:
        """``model`` is the loaded model, or None when the file could not be loaded."""
        super().__init__(parent)
        self.setWindowTitle("Describe this model file")
        self.model_file = Path(spec) if spec else None
        spec_in = model.input if model is not None else default_spec()
        name = model.name if model is not None else (self.model_file.stem
                                                     if self.model_file else "")
        self.name = QLineEdit(name)
        self.classes = QLineEdit(", ".join(model.classes) if model is not None else "")
        self.classes.setToolTip("Class names in the order of the model's outputs")
        self.output = QComboBox()
        self.output.addItems(["softmax", "sigmoid"])
        self.output.setCurrentText(model.output if model is not None else "softmax")
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
        form.addRow("Name", self.name)
        form.addRow("Classes", self.classes)
        form.addRow("Output", self.output)
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
        note = QLabel("Lucida could not read these from the file. They are saved as a model "
                      "card next to it and used from now on.")
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
                                 channels, mean, std, self.window.currentText())
            path = self.card_path()
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
