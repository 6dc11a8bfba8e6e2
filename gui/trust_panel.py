"""The trust panel: is the map on screen faithful to the model, and does it point at the ROI?

It shows what :func:`engine.metrics.case_metrics` returns: a one-line verdict, a warning badge when
the sanity check fails, a table of the metrics, and the deletion and insertion curves. It computes
nothing; the main window runs the metrics on its worker and calls :meth:`QtTrustPanel.set_metrics`.
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

#: (key, label, format, tooltip) for each table row, in display order.
ROWS = (
    ("score", "Target probability", "{:.3f}", "Probability of the explained class on the image."),
    ("deletion_auc", "Deletion AUC (lower is better)", "{:.3f}",
     "Area under the probability as the most salient pixels are removed (Petsiuk et al. 2018)."),
    ("insertion_auc", "Insertion AUC (higher is better)", "{:.3f}",
     "Area under the probability as the most salient pixels are restored (Petsiuk et al. 2018)."),
    ("lerf_auc", "Deletion AUC, least salient first", "{:.3f}",
     "Control: removing the least salient pixels first should keep the probability high "
     "(Rong et al. 2022)."),
    ("average_drop", "Drop on explanation map (%)", "{:.1f}",
     "Probability drop when the image is multiplied by the map (Chattopadhay et al. 2018)."),
    ("increase_in_confidence", "Confidence increases", "{}",
     "Whether the map-weighted image scores higher than the image."),
    ("sanity_similarity", "Similarity, top layers randomised", "{:.2f}",
     "Mean of min(Spearman, SSIM) while the decision end of the model (at most half of its "
     "layers, top first) is re-initialised; 0.5 or more fails the check (Adebayo et al. 2018)."),
    ("sanity_spearman", "Randomised-model correlation", "{:.2f}",
     "Spearman correlation with the map of a fully randomised model; near 0 is good "
     "(Adebayo et al. 2018)."),
    ("random_label_spearman", "Other-class correlation", "{:.2f}",
     "Spearman correlation with the map for another class; near 1 means the map ignores "
     "the class."),
    ("completeness_gap", "Completeness gap", "{:.2%}",
     "How far the attributions' sum is from f(image) - f(baseline): the error of Integrated "
     "Gradients' path integral (its tolerance bounds it)."),
    ("largest_standard_error", "Largest standard error", "{:.3g}",
     "KernelSHAP: the largest standard error of a superpixel's value (Covert and Lee 2021)."),
    ("uncertain_superpixels", "Superpixels within 2 SE of 0", "{}",
     "KernelSHAP: values whose sign the sampling cannot tell."),
    ("surrogate_r2", "Surrogate fit (weighted R²)", "{:.2f}",
     "LIME: how much of the score's variation near the image its linear surrogate explains."),
    ("pointing_hit", "Peak inside ROI", "{}", "Pointing game (Zhang et al. 2016)."),
    ("energy_in_roi", "Saliency share in ROI", "{:.0%}",
     "Energy-based pointing (Wang et al. 2020)."),
    ("iou_at_half", "IoU at 50% of peak", "{:.2f}",
     "Overlap of the map above half its peak with the ROI."),
)


def format_value(fmt: str, value) -> str:
    """Return a table cell's text; booleans read yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


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
    """

    sig_compute_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.metrics: dict = {}
        self.summary = QLabel("No metrics yet: explain an image, then compute.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.badge = QLabel("⚠ Sanity check failed")
        self.badge.setStyleSheet(
            "QLabel { background: #b3261e; color: white; border-radius: 4px; padding: 2px 6px; }"
        )
        self.badge.setVisible(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress.setVisible(False)
        self.compute = QPushButton("Compute")
        self.compute.setToolTip("Compute faithfulness, sanity and ROI metrics for the shown map")
        self.compute.clicked.connect(self.sig_compute_requested)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.plot = QtCurvePlot()
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.badge)
        top.addStretch(1)
        top.addWidget(self.compute)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.plot)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warnings)

    def set_busy(self, busy: bool) -> None:
        """Show an indeterminate progress bar and disable Compute while metrics run."""
        self.progress.setVisible(bool(busy))
        self.compute.setEnabled(not busy)
        if busy:
            self.progress.setRange(0, 0)

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Switch the progress bar to a determinate ``fraction`` in [0, 1]."""
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        self.progress.setToolTip(message)

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
        rows = [
            (label, format_value(fmt, m[key]), tip) for key, label, fmt, tip in ROWS if key in m
        ]
        self.table.setRowCount(len(rows))
        for i, (label, value, tip) in enumerate(rows):
            name = QTableWidgetItem(label)
            name.setToolTip(tip)
            cell = QTableWidgetItem(value)
            cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(i, 0, name)
            self.table.setItem(i, 1, cell)
        self.plot.set_curves(m.get("curves") or {})
        warnings = m.get("warnings") or []
        self.warnings.setText("\n".join(warnings))
        self.warnings.setVisible(bool(warnings))

    def row_texts(self) -> dict[str, str]:
        """The table as ``{label: value}`` (what a reader sees)."""
        return {
            self.table.item(i, 0).text(): self.table.item(i, 1).text()
            for i in range(self.table.rowCount())
        }
