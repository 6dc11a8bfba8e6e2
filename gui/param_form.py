"""Widgets for an explainer's parameters, built from its declarative ``Param`` schema.

Settings a schema marks ``advanced`` (a step count, a batch size) sit below an "Advanced"
button, folded away, so the form leads with what the user decides: a tolerance, a time budget.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
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
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._layout = QFormLayout()
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.toggled.connect(self._fold)
        self.advanced = QWidget()
        self._advanced_layout = QFormLayout(self.advanced)
        self._advanced_layout.setContentsMargins(0, 0, 0, 0)
        self.advanced.setVisible(False)
        outer.addLayout(self._layout)
        outer.addWidget(self.advanced_button)
        outer.addWidget(self.advanced)
        self._editors: dict[str, tuple[object, QWidget]] = {}
        self.set_params(params)

    def set_params(self, params) -> None:
        """Replace the editors with ones for ``params``, each at its default."""
        for layout in (self._layout, self._advanced_layout):
            while layout.rowCount():
                layout.removeRow(0)
        self._editors.clear()
        for param in params:
            editor = self._make_editor(param)
            editor.setToolTip(param.help)
            self._editors[param.name] = (param, editor)
            layout = self._advanced_layout if getattr(param, "advanced", False) else self._layout
            layout.addRow(param.name.replace("_", " "), editor)
        self.advanced_button.setVisible(self._advanced_layout.rowCount() > 0)

    def _fold(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if shown
                                          else Qt.ArrowType.RightArrow)

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
