"""The prediction table: every class score, the explained class marked; a click explains a class.

A single-label (softmax) model's classes are listed in class order. A multi-label (sigmoid)
model's are listed most probable first, with a threshold (the card's, editable here): each
class at or above it is a finding, marked ● and tinted, and a line under the table names
them. What is sorted and marked comes from :func:`engine.models.findings.prediction_table`.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.models.findings import DEFAULT_THRESHOLD, is_multilabel, prediction_table

#: Role that holds the class index on a row.
CLASS_ROLE = Qt.ItemDataRole.UserRole
#: The explained class's colour, and every score's when the scores mean nothing (dimmed).
TARGET_COLOUR, DIMMED_COLOUR = QColor(255, 196, 64), QColor(130, 130, 130)
#: A finding's row tint (multi-label), faint enough to keep the text readable on either theme.
FINDING_TINT = QColor(230, 80, 60, 60)
#: Marks in front of a multi-label class: a finding, or not.
FINDING_MARK, CLEAR_MARK = "●", "○"
#: Rows shown before the table scrolls: a single-label table, and a multi-label one (every
#: class of a 14-class chest model; TorchXRayVision's 18 scroll).
ROWS_SHOWN, MULTILABEL_ROWS_SHOWN = 8, 14
#: Pixels around a header section's text (margins and the sort indicator's room).
SECTION_PADDING = 16


class QtPredictionTable(QWidget):
    """The class scores of the case shown, and a multi-label model's threshold.

    Signals
    -------
    sig_class_clicked(int index)
        A class's row was clicked: explain it.
    sig_threshold_changed(float value)
        The user changed the multi-label threshold (the rows are marked again already).
    """

    sig_class_clicked = Signal(int)
    sig_threshold_changed = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._model = None
        self._shown: tuple[list[str], list[float], int] | None = None
        self._caveat: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Class", "Probability"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.installEventFilter(self)
        self.tree.itemClicked.connect(
            lambda item, _col: self.sig_class_clicked.emit(item.data(0, CLASS_ROLE)))
        layout.addWidget(self.tree)
        # The threshold row and the findings line: multi-label models only.
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.01, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(DEFAULT_THRESHOLD)
        self.threshold.setToolTip("A class whose probability is at or above this is a finding "
                                  "(marked ●); the model card's threshold by default")
        self.threshold.valueChanged.connect(self._threshold_edited)
        self.threshold_row = QWidget()
        row = QHBoxLayout(self.threshold_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Finding at ≥"))
        row.addWidget(self.threshold)
        row.addStretch(1)
        self.findings = QLabel()
        self.findings.setWordWrap(True)
        layout.addWidget(self.threshold_row)
        layout.addWidget(self.findings)
        self._show_threshold(False)

    # -- filling ----------------------------------------------------------------------------
    def set_model(self, model, score_name: str) -> None:
        """Take the model's output kind and threshold; ``score_name`` heads the score column.

        A new model brings its card's threshold; the same model shown again keeps the one the
        user typed.
        """
        if model is not self._model:
            self.threshold.blockSignals(True)
            self.threshold.setValue(float(getattr(model, "threshold", DEFAULT_THRESHOLD)))
            self.threshold.blockSignals(False)
        self._model = model
        self.tree.setHeaderLabels(["Class", score_name])
        self._show_threshold(self.multilabel())

    def multilabel(self) -> bool:
        """Whether the model's classes are independent (sigmoid) probabilities."""
        model = self._model
        return model is not None and is_multilabel(model.output, getattr(model, "task", None))

    def finding_threshold(self) -> float | None:
        """The threshold shown (multi-label models), else None."""
        return float(self.threshold.value()) if self.multilabel() else None

    def clear(self) -> None:
        """Show no prediction."""
        self._shown = None
        self.tree.clear()
        self.findings.setText("")

    def set_prediction(self, classes: list[str], scores: list[float], target: int) -> None:
        """Show every class score; the explained target is bold and marked ◀."""
        self._shown = (list(classes), [float(s) for s in scores], int(target))
        self._fill()

    def set_caveat(self, text: str | None) -> None:
        """Dim the scores (the model cannot judge this image, ``text`` says why), or not."""
        self._caveat = text or None
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            self._style(item, item.text(0).endswith("◀"), self._is_finding(item))

    def _fill(self) -> None:
        if self._shown is None:
            return
        classes, scores, target = self._shown
        model = self._model
        table = prediction_table(classes, scores, target,
                                 getattr(model, "output", "softmax"),
                                 self.threshold.value(), getattr(model, "task", None))
        self.tree.clear()
        for row in table.rows:
            name = f"{row.name} ◀" if row.explained else row.name
            if table.multilabel:
                name = f"{FINDING_MARK if row.positive else CLEAR_MARK} {name}"
            item = QTreeWidgetItem([name, f"{100.0 * row.score:6.1f} %"])
            # The name leads the tooltip: a narrow column cuts it.
            tip = f"{row.name}: " + ("explained" if row.explained else "click to explain")
            if row.top:
                tip += ", top class"
            if table.multilabel:
                tip += (f", a finding (≥ {table.threshold:.2f})" if row.positive
                        else f", below the threshold {table.threshold:.2f}")
            item.setToolTip(0, tip)
            item.setData(0, CLASS_ROLE, row.index)
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self._style(item, row.explained, bool(row.positive))
            self.tree.addTopLevelItem(item)
        self.findings.setText(f"Findings: {table.summary()}" if table.multilabel else "")
        self._fit_columns()
        # As tall as its rows (up to a limit): two classes should not leave a blank box.
        rows = max(1, len(table.rows))
        limit = MULTILABEL_ROWS_SHOWN if table.multilabel else ROWS_SHOWN
        height = max(self.tree.sizeHintForRow(0), 18 if not table.multilabel else 1)
        frame = 2 * self.tree.frameWidth() + 2
        self.tree.setFixedHeight(self.tree.header().sizeHint().height()
                                 + min(rows, limit) * height + max(frame, 6))

    def _is_finding(self, item: QTreeWidgetItem) -> bool:
        return self.multilabel() and item.text(0).startswith(FINDING_MARK)

    def _style(self, item: QTreeWidgetItem, explained: bool, finding: bool) -> None:
        # A score the model gave an image it cannot judge is grey, however high: bold would
        # make "nodule 100 %" read as a finding.
        font = QFont(item.font(0))
        font.setBold(explained and self._caveat is None)
        item.setFont(0, font)
        item.setFont(1, font)
        name = DIMMED_COLOUR if self._caveat else TARGET_COLOUR if explained else None
        tint = FINDING_TINT if finding and self._caveat is None else None
        for column, colour in ((0, name), (1, DIMMED_COLOUR if self._caveat else None)):
            # No foreground data: the palette's text colour.
            item.setData(column, Qt.ItemDataRole.ForegroundRole,
                         None if colour is None else QBrush(colour))
            item.setData(column, Qt.ItemDataRole.BackgroundRole,
                         None if tint is None else QBrush(tint))
        item.setToolTip(1, self._caveat or "")

    def _fit_columns(self) -> None:
        """Give the scores their full width and the names the rest.

        The score column is as wide as its widest value; its title gets its full width only
        while that leaves the names at least half the table (else it is cut: "Probab…").
        """
        header = self.tree.header()
        values = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        bold = QFont(self.tree.font())
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        widest = max((metrics.horizontalAdvance(item.text(1)) for item in values), default=0)
        title = header.fontMetrics().horizontalAdvance(
            self.tree.headerItem().text(1)) + SECTION_PADDING
        width = max(widest + SECTION_PADDING,
                    min(title, self.tree.viewport().width() // 2))
        header.resizeSection(1, width)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        """Fit the columns again whenever the table is resized."""
        if watched is self.tree and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    # -- reactions --------------------------------------------------------------------------
    def _show_threshold(self, on: bool) -> None:
        self.threshold_row.setVisible(on)
        self.findings.setVisible(on)

    def _threshold_edited(self, value: float) -> None:
        self._fill()
        self.sig_threshold_changed.emit(float(value))
