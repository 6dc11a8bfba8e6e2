"""The trust panel: is the map on screen faithful to the model, and does it point at the ROI?

It shows what :func:`engine.metrics.battery.trust_battery` returns: a one-line verdict, the
uncertainty line, a warning badge when the sanity check fails, the figures grouped by family as
:func:`engine.metrics.reading.panel_groups` reads them (a one-line meaning per family, a
good / fair / poor marker per figure), and the deletion and insertion curves. It computes
nothing; the main window runs the battery on its worker and calls
:meth:`QtTrustPanel.set_metrics`.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.metrics.reading import panel_groups

#: Curve colours: deletion should fall (red), insertion should rise (green); the control that
#: deletes the least salient pixels first (grey) should stay high.
CURVE_COLORS = {
    "deletion": QColor(200, 60, 60),
    "insertion": QColor(40, 150, 70),
    "lerf": QColor(130, 130, 130),
}
CURVE_LABELS = {"deletion": "deletion", "insertion": "insertion", "lerf": "least first"}
#: Pens, drawn in this order: the control wide and under the others, insertion dashed over
#: deletion, so curves that run together (all three at a probability of 1.0) all stay visible.
CURVE_PENS = {"lerf": (5.0, Qt.PenStyle.SolidLine), "deletion": (2.0, Qt.PenStyle.SolidLine),
              "insertion": (2.0, Qt.PenStyle.DashLine)}
#: The top of the probability axis: a little above 1, so a curve at 1.0 is not on the edge.
AXIS_TOP = 1.06

#: Colour of each marker of :func:`engine.metrics.reading.panel_groups`.
MARKER_COLORS = {"good": QColor(40, 150, 70), "fair": QColor(200, 140, 20),
                 "poor": QColor(200, 60, 60)}


class QtCurvePlot(QWidget):
    """Deletion and insertion curves on shared [0, 1] axes, drawn with QPainter."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.curves: dict[str, dict] = {}
        self.setMinimumHeight(120)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(240, 140)

    def set_curves(self, curves: dict[str, dict]) -> None:
        """Show ``{"deletion": {"fractions", "scores", "auc"}, "insertion": {...}}``."""
        self.curves = dict(curves or {})
        self.update()

    def plot_rect(self) -> QRectF:
        """The area inside the axes."""
        return QRectF(30, 6, max(10, self.width() - 38), max(10, self.height() - 40))

    def points(self, kind: str) -> list[QPointF]:
        """Widget coordinates of one curve's points."""
        data = self.curves.get(kind) or {}
        rect = self.plot_rect()
        fractions, scores = data.get("fractions", []), data.get("scores", [])
        if len(fractions) != len(scores):
            return []
        return [
            QPointF(
                rect.left() + f * rect.width(),
                rect.bottom() - min(max(s, 0.0), 1.0) / AXIS_TOP * rect.height(),
            )
            for f, s in zip(fractions, scores, strict=True)
        ]

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().windowText().color()
        rect = self.plot_rect()
        painter.setPen(QPen(text, 1))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.drawLine(rect.bottomLeft(), rect.topLeft())
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        one = rect.bottom() - rect.height() / AXIS_TOP
        painter.drawText(QRectF(0, one - 7, 27, 14), Qt.AlignmentFlag.AlignRight, "1")
        painter.setPen(QPen(text.darker(160), 1, Qt.PenStyle.DotLine))
        painter.drawLine(QPointF(rect.left(), one), QPointF(rect.right(), one))
        painter.setPen(QPen(text, 1))
        painter.drawText(QRectF(0, rect.bottom() - 10, 27, 14), Qt.AlignmentFlag.AlignRight, "0")
        painter.drawText(
            QRectF(rect.left(), rect.bottom() + 2, rect.width(), 14),
            Qt.AlignmentFlag.AlignHCenter,
            "share of pixels removed / inserted",
        )
        for kind in CURVE_PENS:
            pts = self.points(kind)
            if len(pts) < 2:
                continue
            path = QPainterPath(pts[0])
            for p in pts[1:]:
                path.lineTo(p)
            width, style = CURVE_PENS[kind]
            painter.setPen(QPen(CURVE_COLORS[kind], width, style))
            painter.drawPath(path)
        legend_x = rect.left()
        for kind, color in CURVE_COLORS.items():
            if len(self.points(kind)) < 2:
                continue
            painter.setPen(QPen(color, 2))
            auc = (self.curves.get(kind) or {}).get("auc")
            name = CURVE_LABELS[kind]
            label = f"{name} {auc:.2f}" if isinstance(auc, (int, float)) else name
            slot = rect.width() / len(CURVE_COLORS)
            painter.drawText(QRectF(legend_x, rect.bottom() + 16, slot, 14),
                             Qt.AlignmentFlag.AlignLeft, label)
            legend_x += slot
        painter.end()


class QtTrustPanel(QWidget):
    """Trust metrics of the map on screen.

    Signals
    -------
    sig_compute_requested()
        The user asked to (re)compute the metrics of the current map.
    sig_cancel_requested()
        The user asked to stop the battery that is running.
    """

    sig_compute_requested = Signal()
    sig_cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.metrics: dict = {}
        self.summary = QLabel("No metrics yet: explain an image, then compute.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.uncertainty = QLabel("")
        self.uncertainty.setWordWrap(True)
        self.uncertainty.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.uncertainty.setToolTip("Uncertainty of the prediction: test-time augmentation, "
                                    "MC dropout and how far the map moves")
        self.uncertainty.setVisible(False)
        self.badge = QLabel("⚠ Sanity check failed")
        self.badge.setStyleSheet(
            "QLabel { background: #b3261e; color: white; border-radius: 4px; padding: 2px 6px; }"
        )
        self.badge.setVisible(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(14)
        self.progress.setVisible(False)
        self.compute = QPushButton("Compute")
        self.compute.setToolTip("Compute faithfulness, sanity and ROI metrics for the shown map")
        self.compute.clicked.connect(self.sig_compute_requested)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop the trust metrics that are running")
        self.cancel.clicked.connect(self.sig_cancel_requested)
        self.cancel.setVisible(False)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Metric", "Value", ""])
        self.table.horizontalHeaderItem(2).setToolTip("green good, amber fair, red poor")
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        # Wrapped family headings need their height again when the dock is resized.
        header.sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        self.plot = QtCurvePlot()
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.badge)
        top.addStretch(1)
        top.addWidget(self.cancel)
        top.addWidget(self.compute)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.uncertainty)
        layout.addWidget(self.plot)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warnings)

    def set_busy(self, busy: bool) -> None:
        """Show an indeterminate progress bar and disable Compute while metrics run."""
        self.progress.setVisible(bool(busy))
        self.cancel.setVisible(bool(busy))
        self.compute.setEnabled(not busy)
        if busy:
            self.progress.setRange(0, 0)

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Switch the progress bar to a determinate ``fraction`` in [0, 1]; show ``message``."""
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        self.progress.setToolTip(message)
        self.progress.setTextVisible(bool(message))
        self.progress.setFormat(message)

    def set_metrics(self, metrics: dict | None) -> None:
        """Show a result of :func:`engine.metrics.case_metrics` (``None`` or ``{}`` clears)."""
        self.metrics = dict(metrics or {})
        m = self.metrics
        self.summary.setText(m.get("summary") or "No metrics yet: explain an image, then compute.")
        self.badge.setVisible(m.get("sanity_passed") is False)
        if m.get("sanity_passed") is False:
            self.badge.setToolTip(
                f"The map barely changes when the model's top layers are randomised "
                f"(similarity {m.get('sanity_similarity', float('nan')):.2f}, flagged from 0.5): "
                "it may show the image rather than what the model uses."
            )
        line = (m.get("uncertainty") or {}).get("summary")
        self.uncertainty.setText(f"Uncertainty: {line}" if line else "")
        self.uncertainty.setVisible(bool(line))
        self._fill(panel_groups(m))
        self.plot.set_curves(m.get("curves") or {})
        warnings = m.get("warnings") or []
        self.warnings.setText("\n".join(warnings))
        self.warnings.setVisible(bool(warnings))

    def _fill(self, groups) -> None:
        self.table.clearSpans()
        self.table.setRowCount(sum(1 + len(g.figures) for g in groups))
        row = 0
        for group in groups:
            head = QTableWidgetItem(f"{group.family.capitalize()}: {group.meaning}")
            font = head.font()
            font.setBold(True)
            head.setFont(font)
            head.setData(Qt.ItemDataRole.UserRole, group.family)
            self.table.setItem(row, 0, head)
            self.table.setSpan(row, 0, 1, 3)
            row += 1
            for fig in group.figures:
                name = QTableWidgetItem(fig.label)
                name.setToolTip(fig.meaning)
                cell = QTableWidgetItem(fig.text)
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                mark = QTableWidgetItem("●" if fig.marker else "")
                if fig.marker:
                    mark.setForeground(MARKER_COLORS[fig.marker])
                    mark.setData(Qt.ItemDataRole.UserRole, fig.marker)
                    mark.setToolTip(fig.marker)
                self.table.setItem(row, 0, name)
                self.table.setItem(row, 1, cell)
                self.table.setItem(row, 2, mark)
                row += 1
        self.table.resizeRowsToContents()

    def row_texts(self) -> dict[str, str]:
        """The figures as ``{label: value}`` (what a reader sees), family headings left out."""
        return {
            self.table.item(i, 0).text(): self.table.item(i, 1).text()
            for i in range(self.table.rowCount()) if self.table.item(i, 1) is not None
        }

    def markers(self) -> dict[str, str]:
        """The figures' markers as ``{label: "good" | "fair" | "poor"}`` (unmarked left out)."""
        return {
            self.table.item(i, 0).text(): self.table.item(i, 2).data(Qt.ItemDataRole.UserRole)
            for i in range(self.table.rowCount())
            if self.table.item(i, 2) is not None and self.table.item(i, 2).text()
        }

    def families(self) -> list[str]:
        """The family headings shown, in order."""
        return [self.table.item(i, 0).data(Qt.ItemDataRole.UserRole)
                for i in range(self.table.rowCount()) if self.table.item(i, 1) is None]
