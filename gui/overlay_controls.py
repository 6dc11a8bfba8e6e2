"""Thin widgets bound two ways to an ``OverlayLayer``: opacity, colormap, threshold, scale."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider
from superqt.utils import signals_blocked

from engine.explain.colour import COLORMAPS
from engine.explain.scale import SCALES, absolute_label, format_number
from gui.overlay_layer import OverlayLayer
from gui.viewer import qimage_from_array


class QtColorbar(QWidget):
    """A horizontal colour bar of the layer's colours, labelled with numbers and units.

    The ends carry the raw values (in the map's units) that the scale draws there; a signed map
    gets the diverging colours and a marked 0 in the middle.
    """

    def __init__(self, layer: OverlayLayer, parent=None) -> None:
        super().__init__(parent)
        self.layer = layer
        self.setMinimumHeight(50)
        layer.sig_changed.connect(self._changed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(200, 50)

    def _changed(self, name: str) -> None:
        if name in ("colormap", "threshold", "scale", "heatmap"):
            self.update()

    def labels(self) -> tuple[str, ...]:
        """Return the texts at the low end, the middle (signed maps only) and the high end."""
        if self.layer.heatmap is None:
            return "", ""
        low, high = self.layer.bar_range()
        if self.layer.info.signed:
            return format_number(low), "0", "+" + format_number(high)
        return format_number(low), format_number(high)

    def units(self) -> str:
        """The caption under the bar: the units, and what the scale's 1 is."""
        info = self.layer.info
        if self.layer.heatmap is None:
            return "no map shown"
        text = info.units
        if self.layer.scale == "absolute":
            text += " · shared maximum"
        elif self.layer.scale == "map":
            text += " · the map's own maximum"
        if info.signed:
            text += " · − against the class, + for it"
        return text

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        strip = qimage_from_array(self.layer.bar_lut()[None, :, :])
        painter = QPainter(self)
        bar = QRectF(4, 2, self.width() - 8, 14)
        painter.drawImage(bar, strip)
        threshold = self.layer.threshold
        if threshold > 0:
            # Grey out the part of the scale that is not drawn.
            if self.layer.info.signed:
                half = bar.width() / 2
                cut = QRectF(bar.center().x() - threshold * half, bar.top(),
                             2 * threshold * half, bar.height())
            else:
                cut = bar.adjusted(0, 0, -(1 - threshold) * bar.width(), 0)
            painter.fillRect(cut, QColor(40, 40, 40, 170))
        painter.setPen(self.palette().windowText().color())
        labels = self.labels()
        text_rect = QRectF(4, 17, self.width() - 8, 16)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft, labels[0])
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignRight, labels[-1])
        if len(labels) == 3:
            centre = bar.center().x()
            painter.drawLine(int(centre), int(bar.bottom()), int(centre), int(bar.bottom()) + 3)
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter, labels[1])
        units = QRectF(4, 33, self.width() - 8, 16)
        painter.setPen(self.palette().mid().color())
        painter.drawText(units, Qt.AlignmentFlag.AlignHCenter, painter.fontMetrics().elidedText(
            self.units(), Qt.TextElideMode.ElideRight, int(units.width())))
        painter.end()


class QtOverlayControls(QWidget):
    """Opacity and threshold sliders, colormap and scale pickers, a show toggle and a colorbar.

    Each widget writes the layer on user input, and the layer's ``sig_changed`` writes the
    widget back under a signal blocker, so a change from anywhere (a key, a test, settings)
    shows everywhere without feedback loops.
    """

    def __init__(self, layer: OverlayLayer, parent=None) -> None:
        super().__init__(parent)
        self.layer = layer
        form = QFormLayout(self)
        form.setContentsMargins(6, 6, 6, 6)

        self.visible_box = QCheckBox("Show heatmap (O)")
        self.visible_box.toggled.connect(lambda on: setattr(layer, "visible", on))
        form.addRow(self.visible_box)

        self.opacity_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0.0, 1.0)
        self.opacity_slider.setDecimals(2)
        self.opacity_slider.setSingleStep(0.05)
        self.opacity_slider.valueChanged.connect(lambda v: setattr(layer, "opacity", v))
        form.addRow("Opacity", self.opacity_slider)

        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.colormap_combo.currentTextChanged.connect(lambda t: setattr(layer, "colormap", t))
        form.addRow("Colormap", self.colormap_combo)

        self.threshold_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0.0, 1.0)
        self.threshold_slider.setDecimals(2)
        self.threshold_slider.setSingleStep(0.05)
        self.threshold_slider.valueChanged.connect(lambda v: setattr(layer, "threshold", v))
        form.addRow("Threshold", self.threshold_slider)

        self.scale_combo = QComboBox()
        for key, scale in SCALES.items():
            self.scale_combo.addItem(scale.label, key)
            self.scale_combo.setItemData(self.scale_combo.count() - 1, scale.tip,
                                         Qt.ItemDataRole.ToolTipRole)
        self.scale_combo.currentIndexChanged.connect(
            lambda i: setattr(layer, "scale", self.scale_combo.itemData(i))
        )
        form.addRow("Scale", self.scale_combo)

        self.colorbar = QtColorbar(layer)
        form.addRow(self.colorbar)

        layer.sig_changed.connect(self._sync)
        for name in ("visible", "opacity", "colormap", "threshold", "scale", "heatmap"):
            self._sync(name)

    def show_shared(self, maxima: dict[str, float] | None) -> None:
        """Name the absolute scale's shared maximum (per unit) in its entry and tooltip.

        The window's own map calls this through the layer; the compare grid, whose cells share
        a maximum of their own, calls it with the grid's maxima.
        """
        index = self.scale_combo.findData("absolute")
        label, tip = absolute_label(maxima)
        self.scale_combo.setItemText(index, label)
        self.scale_combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        if self.scale_combo.currentIndex() == index:
            self.scale_combo.setToolTip(tip)

    def _sync(self, name: str) -> None:
        layer = self.layer
        if name == "visible":
            with signals_blocked(self.visible_box):
                self.visible_box.setChecked(layer.visible)
        elif name == "opacity":
            with signals_blocked(self.opacity_slider):
                self.opacity_slider.setValue(layer.opacity)
        elif name == "colormap":
            with signals_blocked(self.colormap_combo):
                self.colormap_combo.setCurrentText(layer.colormap)
        elif name == "threshold":
            with signals_blocked(self.threshold_slider):
                self.threshold_slider.setValue(layer.threshold)
        elif name == "scale":
            with signals_blocked(self.scale_combo):
                self.scale_combo.setCurrentIndex(self.scale_combo.findData(layer.scale))
            self.scale_combo.setToolTip(self.scale_combo.currentData(Qt.ItemDataRole.ToolTipRole))
        elif name == "heatmap":
            self.show_shared(None if layer.heatmap is None
                             else {layer.info.units: layer.shared_max})
