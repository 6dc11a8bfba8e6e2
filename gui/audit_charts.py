"""Bar charts of the Audit view: axes fitted to the data, CI whiskers, one or two series."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

#: Headroom over the largest bar or whisker before the axis maximum is rounded up.
HEADROOM = 1.2
#: Series colours: the first audit, the second (compared) audit.
SERIES_COLOURS = ("#4C72B0", "#DD8452")
#: The least height that still shows a title, a legend, a plot and group labels.
MIN_HEIGHT = 140
#: Mantissas a tick step is rounded up to.
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)


def nice_step(x: float) -> float:
    """Return the smallest tick step of the form 1, 2, 2.5 or 5 × 10^k that is >= x."""
    if not math.isfinite(x) or x <= 0:
        return 0.25
    power = 10.0 ** math.floor(math.log10(x))
    for step in NICE_STEPS:
        if step * power >= x * (1 - 1e-9):
            return step * power
    return 10.0 * power


def nice_axis(values: Sequence[float | None], *, percent_cap: bool = False,
              n_ticks: int = 4) -> tuple[float, float, list[float]]:
    """Return ``(lo, hi, ticks)`` of an axis that fits ``values`` with some headroom.

    The far end is at least :data:`HEADROOM` times the largest magnitude, rounded up to a
    whole number of nice tick steps, so a 2% bar fills most of the plot instead of a sliver
    of a 0–100% axis. The axis starts at 0 unless a value is negative (differences), when it
    is symmetric about 0.

    Parameters
    ----------
    values : sequence of float or None
        Bar heights and whisker ends; None and NaN are ignored.
    percent_cap : bool
        Cap the axis at 1.0 (shares and accuracies cannot exceed 100%).
    n_ticks : int
        About how many tick steps lie between 0 and the far end.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    top = HEADROOM * max([abs(v) for v in finite] or [0.0])
    if top <= 0:
        top = 1.0
    signed = any(v < 0 for v in finite)
    # A symmetric axis has ticks on both sides of 0, so half as many per side.
    step = nice_step(top / (max(1, n_ticks // 2) if signed else n_ticks))
    hi = round(step * math.ceil(top / step - 1e-9), 12)
    if percent_cap and hi >= 1.0:
        hi, step = 1.0, 0.25
    lo = -hi if signed else 0.0
    ticks = [round(lo + i * step, 12) for i in range(round((hi - lo) / step) + 1)]
    return lo, hi, ticks


def tick_label(value: float, percent: bool, span: float) -> str:
    """Label a tick: percent with as many decimals as the axis span needs, or a plain number."""
    if percent:
        decimals = 0 if span >= 0.2 else 1 if span >= 0.02 else 2
        return f"{100 * value:.{decimals}f}%"
    decimals = 0 if span >= 20 else 1 if span >= 2 else 2
    return f"{value:.{decimals}f}"


class QtBarChart(QWidget):
    """Bars with CI whiskers, one or two series per category, on an axis that fits the data.

    Each entry is ``(label, [(value, lo, hi), ...])`` with one tuple per series (None parts
    draw nothing). ``percent`` labels ticks as percentages; ``reference`` draws a dashed line
    (enrichment 1.0: as much saliency as the region's area); ``empty`` is said in the plot
    when there are no entries. Text, whiskers and grid lines take the palette's colours, so
    they read on a dark theme as on a light one.
    """

    def __init__(self, title: str = "", parent=None) -> None:
        super().__init__(parent)
        self.title = title
        self.entries: list[tuple[str, list[tuple]]] = []
        self.series: list[str] = []
        self.percent = True
        self.reference: float | None = None
        self.empty = ""
        self.axis: tuple[float, float, list[float]] = (0.0, 1.0, [0.0, 0.5, 1.0])
        self.setMinimumHeight(MIN_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_chart(self, data) -> None:
        """Show an :class:`engine.audit.view_model.ChartData`."""
        self.set_entries(data.title, data.entries, series=data.series, percent=data.percent,
                         reference=data.reference, empty=data.empty)

    def set_entries(self, title: str, entries, *, series: Sequence[str] = (),
                    percent: bool = True, reference: float | None = None,
                    empty: str = "") -> None:
        """Show ``entries``; a plain ``(label, value, lo, hi)`` entry is one series."""
        self.title = title
        self.setToolTip(title)  # the whole title, when a narrow chart elides it
        self.empty = empty
        self.entries = [(e[0], list(e[1])) if len(e) == 2 else (e[0], [tuple(e[1:])])
                        for e in entries]
        self.series = list(series)
        self.percent = percent
        self.reference = reference
        values = [v for _, bars in self.entries for bar in bars for v in bar]
        if reference is not None:
            values.append(reference)
        self.axis = nice_axis(values, percent_cap=percent)
        self.update()

    def _y(self, value: float, top: float, plot_h: float) -> float:
        lo, hi, _ = self.axis
        frac = (min(max(value, lo), hi) - lo) / (hi - lo)
        return top + plot_h * (1 - frac)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        ink = palette.color(QPalette.ColorRole.WindowText)
        faint = palette.color(QPalette.ColorRole.Mid)
        p.setPen(QPen(ink))
        w, h = self.width(), self.height()
        metrics = QFontMetrics(p.font())
        lo, hi, ticks = self.axis
        labels = [tick_label(t, self.percent, hi - lo) for t in ticks]
        left = max(metrics.horizontalAdvance(t) for t in labels) + 10
        top, bottom = 24 + (16 if self.series else 0), 40
        plot_h = max(10, h - top - bottom)
        p.drawText(QRectF(0, 2, w, 18), Qt.AlignmentFlag.AlignCenter,
                   metrics.elidedText(self.title, Qt.TextElideMode.ElideRight, w - 4))
        for k, name in enumerate(self.series):
            x = left + k * 160
            p.fillRect(QRectF(x, 24, 10, 10), QColor(SERIES_COLOURS[k % 2]))
            p.drawText(QRectF(x + 14, 20, 144, 18), Qt.AlignmentFlag.AlignVCenter, name)
        for t, text in zip(ticks, labels, strict=True):
            y = self._y(t, top, plot_h)
            p.setPen(QPen(faint if t else ink))
            p.drawLine(left, int(y), w - 8, int(y))
            p.setPen(QPen(ink))
            p.drawText(QRectF(0, y - 8, left - 4, 16),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
        if self.reference is not None:
            y = self._y(self.reference, top, plot_h)
            p.setPen(QPen(QColor("#C44E52"), 1.2, Qt.PenStyle.DashLine))
            p.drawLine(left, int(y), w - 8, int(y))
        if not self.entries:
            p.setPen(QPen(ink))
            p.drawText(QRectF(left, top, w - left - 8, plot_h),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty)
            p.end()
            return
        slot = (w - left - 8) / len(self.entries)
        zero = self._y(max(lo, 0.0), top, plot_h)
        for i, (label, bars) in enumerate(self.entries):
            x0 = left + i * slot + slot * 0.15
            width = slot * 0.7 / max(1, len(bars))
            for k, (value, b_lo, b_hi) in enumerate(bars):
                x = x0 + k * width
                if value is not None and math.isfinite(value):
                    y = self._y(value, top, plot_h)
                    p.fillRect(QRectF(x + width * 0.08, min(y, zero), width * 0.84,
                                      abs(zero - y)), QColor(SERIES_COLOURS[k % 2]))
                if b_lo is not None and b_hi is not None and math.isfinite(b_lo) \
                        and math.isfinite(b_hi):
                    p.setPen(QPen(ink, 1.5))
                    cx = x + width / 2
                    y_lo, y_hi = self._y(b_lo, top, plot_h), self._y(b_hi, top, plot_h)
                    p.drawLine(int(cx), int(y_lo), int(cx), int(y_hi))
                    for y in (y_lo, y_hi):
                        p.drawLine(int(cx - 4), int(y), int(cx + 4), int(y))
            p.setPen(QPen(ink))
            if metrics.horizontalAdvance(label) > slot - 4:
                label = label.replace("=", "=\n", 1)  # column above value when narrow
            p.drawText(QRectF(left + i * slot, top + plot_h + 4, slot, bottom - 6),
                       Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap, label)
        p.end()
