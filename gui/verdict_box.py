"""The reviewer's verdict beside the prediction: agree, disagree or unsure, and a comment.

:class:`QtVerdictBox` is the control; :class:`CaseVerdict` holds what it says for the case it
was given on (``ExplainController.context_key()``: image content, frame, model, target and
contrasted class), so another image, frame, model or class starts with no verdict, and the
review file and the exports read the verdict of the case on screen only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
)
from superqt.utils import signals_blocked

from engine.core.case import VERDICTS, Verdict


class QtVerdictBox(QGroupBox):
    """Three exclusive choices and a one-line comment; it emits the verdict they make.

    Signals
    -------
    sig_changed(object verdict)
        The reviewer changed the choice or the comment: a :class:`Verdict`, or None while no
        choice is made (a comment alone is no verdict).
    """

    sig_changed = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__("Your verdict on this explanation", parent)
        self.buttons = {value: QRadioButton(value.capitalize()) for value in VERDICTS}
        self.group = QButtonGroup(self)
        row = QHBoxLayout()
        for value, button in self.buttons.items():
            button.setToolTip(f"You {value} with the model's decision and what the map shows"
                              if value != "unsure" else "You cannot tell from this case")
            self.group.addButton(button)
            row.addWidget(button)
        row.addStretch(1)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (saved with the review and in exports)")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(row)
        layout.addWidget(self.comment)
        self.group.buttonToggled.connect(lambda _button, on: on and self._emit())
        self.comment.textEdited.connect(lambda _text: self._emit())

    def choice(self) -> str | None:
        """The value picked (one of ``VERDICTS``), or None."""
        return next((v for v, b in self.buttons.items() if b.isChecked()), None)

    def show_verdict(self, verdict: Verdict | None) -> None:
        """Show ``verdict`` (None: no choice and no comment) without emitting."""
        with signals_blocked(self.group), signals_blocked(self.comment):
            # An exclusive group never unchecks its last button; lift that while clearing.
            self.group.setExclusive(False)
            for value, button in self.buttons.items():
                button.setChecked(verdict is not None and verdict.value == value)
            self.group.setExclusive(True)
            self.comment.setText("" if verdict is None else verdict.comment)

    def _emit(self) -> None:
        value = self.choice()
        self.sig_changed.emit(None if value is None else Verdict(
            value, self.comment.text().strip(),
            datetime.now(UTC).isoformat(timespec="seconds")))


def case_key(window) -> tuple | None:
    """The case shown in ``window`` (``ExplainController.context_key()``), or None."""
    if window.image is None or window.model is None:
        return None
    return window.explain.context_key()


class CaseVerdict:
    """The verdict given on the case shown: set by the box or a restored review, read by
    saves and exports, forgotten when the case changes.

    Parameters
    ----------
    window : QtMainWindow
        Gives the case shown (:func:`case_key`) and the panel whose box and prediction it
        follows: the box is brought up to date whenever the prediction shown changes.
    """

    def __init__(self, window) -> None:
        self.window = window
        self.box: QtVerdictBox = window.panel.verdict_box
        self._case: tuple | None = None  # the case the box's content was given on
        self._held: Verdict | None = None
        self.box.sig_changed.connect(self._given)
        window.panel.sig_prediction_changed.connect(self.refresh)

    def get(self) -> Verdict | None:
        """The verdict on the case shown now (None: none given on it)."""
        return self._held if self._case == case_key(self.window) else None

    def set(self, verdict: Verdict | None) -> None:
        """Hold ``verdict`` for the case shown now, and show it (a restored review)."""
        self._given(verdict)
        self.box.show_verdict(verdict)

    def _given(self, verdict: Verdict | None) -> None:
        # The reviewer's own input: the box already shows it.
        self._case, self._held = case_key(self.window), verdict

    def refresh(self) -> None:
        """The prediction shown changed: on another case, the box starts empty."""
        case = case_key(self.window)
        if case != self._case:
            self._case, self._held = case, None
            self.box.show_verdict(None)
