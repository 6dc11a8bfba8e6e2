"""Widgets for an explainer's parameters, built from its declarative ``Param`` schema."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

#: Spin-box limits when a parameter declares no range.
OPEN_RANGE = 1e9


class QtParamForm(QWidget):
    """One editor per ``Param`` (float, int, bool, choice, str); emits ``sig_changed(values)``.

    Parameters
    ----------
    params : sequence of Param
        The explainer's schema (name, type, default, range, choices, help).
    """

    sig_changed = Signal(dict)

    def __init__(self, params=(), parent=None) -> None:
        super().__init__(parent)
        self._layout = QFormLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._editors: dict[str, tuple[object, QWidget]] = {}
        self.set_params(params)

    def set_params(self, params) -> None:
        """Replace the editors with ones for ``params``, each at its default."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self._editors.clear()
        for param in params:
            editor = self._make_editor(param)
            editor.setToolTip(param.help)
            self._editors[param.name] = (param, editor)
            self._layout.addRow(param.name.replace("_", " "), editor)

    def _make_editor(self, param) -> QWidget:
        kind, default = param.type, param.default
        low, high = param.range if param.range else (-OPEN_RANGE, OPEN_RANGE)
        if kind == "float":
            editor = QDoubleSpinBox()
            editor.setDecimals(3)
            editor.setRange(float(low), float(high))
            editor.setSingleStep(max((float(high) - float(low)) / 100.0, 0.001)
                                 if param.range else 0.1)
            editor.setValue(float(default))
            editor.valueChanged.connect(self._emit)
        elif kind == "int":
            editor = QSpinBox()
            editor.setRange(int(max(low, -2**31 + 1)), int(min(high, 2**31 - 1)))
            editor.setValue(int(default))
            editor.valueChanged.connect(self._emit)
        elif kind == "bool":
            editor = QCheckBox()
            editor.setChecked(bool(default))
            editor.toggled.connect(self._emit)
        elif kind == "choice":
            editor = QComboBox()
            editor.addItems([str(c) for c in param.choices or ()])
            editor.setCurrentText(str(default))
            editor.currentTextChanged.connect(self._emit)
        else:
            editor = QLineEdit("" if default is None else str(default))
            editor.editingFinished.connect(self._emit)
        return editor

    def values(self) -> dict:
        """Return the current value of every parameter, typed as its schema says."""
        out = {}
        for name, (param, editor) in self._editors.items():
            kind = param.type
            if kind in ("float", "int"):
                out[name] = editor.value()
            elif kind == "bool":
                out[name] = editor.isChecked()
            elif kind == "choice":
                # Choices keep their declared type (an int stays an int).
                out[name] = tuple(param.choices or ())[editor.currentIndex()]
            else:
                out[name] = editor.text()
        return out

    def editor(self, name: str) -> QWidget:
        """Return the editor widget of one parameter."""
        return self._editors[name][1]

    def _emit(self, *_args) -> None:
        self.sig_changed.emit(self.values())
