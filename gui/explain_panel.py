"""The explanation panel: model, prediction, method with its parameters, layer, compare mode."""

from __future__ import annotations

from pathlib import PurePath

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.explain.api import is_layer_based, is_segmentation
from gui.param_form import QtParamForm
from gui.prediction_table import DIMMED_COLOUR, TARGET_COLOUR, QtPredictionTable
from gui.verdict_box import QtVerdictBox

#: Model-picker entries that are not a loaded card.
DEMO_MODELS = (("Demo model", "demo"), ("Demo model, biased", "demo-biased"),
               ("Demo ViT (transformer)", "demo-vit"),
               ("Demo ViT (transformer), biased", "demo-vit-biased"),
               ("Demo 3-D model (CT volumes)", "demo-3d"))
OPEN_CARD = "__open_card__"

#: Methods ticked in compare mode when the user has not chosen any.
COMPARE_DEFAULT_METHODS = ("gradcam", "gradcampp", "layercam")

#: Most class names the model line lists (more are only counted).
LISTED_CLASSES = 6
#: Role that holds a layer name on layer-list items.
LAYER_ROLE = Qt.ItemDataRole.UserRole

__all__ = ["DIMMED_COLOUR", "LAYER_ROLE", "OPEN_CARD", "TARGET_COLOUR", "QtExplainPanel"]


def narrow_combo() -> QComboBox:
    """A combo box as narrow as the panel allows, whatever the length of its entries."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


def short_spec(spec: str) -> str:
    """A model's spec as the picker lists it: a path by its last two parts (the full one is
    the tooltip); a source such as ``timm:convnext_tiny@w.safetensors`` with its file's name."""
    source, at, path = spec.partition("@")
    if at:
        return f"{source}@{PurePath(path).name}"
    parts = PurePath(spec).parts
    return spec if len(parts) <= 2 else "…/" + "/".join(parts[-2:])


class QtExplainPanel(QWidget):
    """Controls for what is explained and how; it only emits requests, it computes nothing.

    Signals
    -------
    sig_model_requested(str spec)
        A demo name, or ``OPEN_CARD`` when the user wants to pick a card file.
    sig_target_changed(int index)
        A class was clicked: explain it.
    sig_versus_changed(object index)
        The class to contrast with (logit target − logit versus), or None.
    sig_method_changed(str name)
    sig_params_changed(dict values)
    sig_layer_changed(str name)
    sig_compare_changed(bool on, list methods, list layers)
    sig_prediction_changed()
        The prediction shown was replaced or cleared (the case may have changed).
    sig_threshold_changed(float value)
        A multi-label model's finding threshold was edited.
    """

    sig_model_requested = Signal(str)
    sig_target_changed = Signal(int)
    sig_versus_changed = Signal(object)
    sig_method_changed = Signal(str)
    sig_params_changed = Signal(dict)
    sig_layer_changed = Signal(str)
    sig_compare_changed = Signal(bool, list, list)
    sig_prediction_changed = Signal()
    sig_threshold_changed = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        # The dock's width, never wider: a side column at 1280 x 720 is narrower than the
        # widest row, and a panel scrolled sideways would hide the probability column. Long
        # combo entries and titles are cut instead.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._explainers: dict[str, object] = {}
        self._model = None
        self._reasons: dict[str, str | None] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(model_box)
        self.model_combo = narrow_combo()
        for label, spec in DEMO_MODELS:
            self.model_combo.addItem(label, spec)
        self.model_combo.addItem("Open model card…", OPEN_CARD)
        self.model_combo.activated.connect(self._model_activated)
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet("color: palette(mid);")
        model_layout.addWidget(self.model_combo)
        model_layout.addWidget(self.model_label)
        layout.addWidget(model_box)

        pred_box = QGroupBox("Prediction — click a class to explain it (◀)")
        pred_layout = QVBoxLayout(pred_box)
        pred_layout.setContentsMargins(4, 4, 4, 4)  # the class names need every pixel
        self.prediction_table = QtPredictionTable()
        self.prediction = self.prediction_table.tree
        self.prediction_table.sig_class_clicked.connect(self.sig_target_changed)
        self.prediction_table.sig_threshold_changed.connect(self.sig_threshold_changed)
        pred_layout.addWidget(self.prediction_table)
        # Why the scores are dimmed: the image is one the model cannot judge (too small).
        self.caveat = QLabel()
        self.caveat.setWordWrap(True)
        self.caveat.setStyleSheet("color: #ffb347;")
        self.caveat.setVisible(False)
        pred_layout.addWidget(self.caveat)
        # A contrastive target, as --versus: what makes the model say this class rather than
        # that one (logit target − logit versus).
        self.versus = narrow_combo()
        self.versus.setToolTip("Explain the target class's logit minus this class's logit")
        self.versus.activated.connect(
            lambda _i: self.sig_versus_changed.emit(self.versus.currentData()))
        versus_row = QHBoxLayout()
        versus_row.addWidget(QLabel("rather than"))
        versus_row.addWidget(self.versus, 1)
        pred_layout.addLayout(versus_row)
        # The reviewer's verdict sits with the decision it judges.
        self.verdict_box = QtVerdictBox()
        pred_layout.addWidget(self.verdict_box)
        layout.addWidget(pred_box)

        method_box = QGroupBox("Method")
        method_layout = QVBoxLayout(method_box)
        self.method_combo = narrow_combo()
        self.method_combo.currentIndexChanged.connect(self._method_activated)
        self.method_note = QLabel()
        self.method_note.setWordWrap(True)
        self.params = QtParamForm()
        self.params.sig_changed.connect(self.sig_params_changed)
        method_layout.addWidget(self.method_combo)
        method_layout.addWidget(self.method_note)
        method_layout.addWidget(self.params)
        layout.addWidget(method_box)

        layer_box = QGroupBox("Layer (★ default)")
        layer_layout = QVBoxLayout(layer_box)
        self.layers = QListWidget()
        self.layers.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.layers.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.layers.currentItemChanged.connect(self._layer_activated)
        layer_layout.addWidget(self.layers)
        layout.addWidget(layer_box, 1)

        self.compare_box = QCheckBox("Compare methods × layers")
        self.compare_box.toggled.connect(self._compare_toggled)
        layout.addWidget(self.compare_box)
        self.compare_group = QWidget()
        compare_layout = QHBoxLayout(self.compare_group)
        compare_layout.setContentsMargins(0, 0, 0, 0)
        self.compare_methods = QListWidget()
        self.compare_layers = QListWidget()
        for widget in (self.compare_methods, self.compare_layers):
            widget.itemChanged.connect(self._emit_compare)
            compare_layout.addWidget(widget)
        self.compare_group.setVisible(False)
        layout.addWidget(self.compare_group)

    # -- filling ----------------------------------------------------------------------------
    def set_explainers(self, explainers: dict[str, object], current: str | None = None) -> None:
        """List the registered explainers (name -> explainer object)."""
        self._explainers = dict(explainers)
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        self.compare_methods.blockSignals(True)
        self.compare_methods.clear()
        for name, explainer in self._explainers.items():
            self.method_combo.addItem(getattr(explainer, "title", name), name)
            index = self.method_combo.count() - 1
            self.method_combo.setItemData(
                index, getattr(explainer, "description", ""), Qt.ItemDataRole.ToolTipRole
            )
            item = QListWidgetItem(getattr(explainer, "title", name))
            item.setData(LAYER_ROLE, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = name in COMPARE_DEFAULT_METHODS
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.compare_methods.addItem(item)
        self.compare_methods.blockSignals(False)
        if current is not None and self.method_combo.findData(current) >= 0:
            self.method_combo.setCurrentIndex(self.method_combo.findData(current))
        self.method_combo.blockSignals(False)
        self._show_method(self.current_method())

    def set_model(self, model, label: str | None = None, reasons: dict | None = None) -> None:
        """Show a loaded model: its name and files, its layers with shapes and default.

        ``reasons`` maps a method name to why it cannot run on this model (judged on the
        worker); the method note shows it.
        """
        self._model = model
        # A segmentation model's class scores are the share of pixels labelled each class.
        self.prediction_table.set_model(
            model, "Pixel share" if is_segmentation(model) else "Probability")
        self.versus.clear()
        self.versus.addItem("(no contrast)", None)
        for index, name in enumerate(model.classes):
            self.versus.addItem(name, index)
        if reasons is not None:
            self._reasons = dict(reasons)
        if label is not None:
            index = self.model_combo.findData(label)
            if index < 0:
                self.model_combo.insertItem(self.model_combo.count() - 1, short_spec(label),
                                            label)
                index = self.model_combo.count() - 2
                self.model_combo.setItemData(index, label, Qt.ItemDataRole.ToolTipRole)
            self.model_combo.setCurrentIndex(index)
        # A chest model's 14 to 18 names would push the table down: they are listed there.
        classes = (", ".join(model.classes) if len(model.classes) <= LISTED_CLASSES
                   else f"{len(model.classes)}, listed under Prediction")
        self.model_label.setText(
            f"{model.name} · {model.kind} · {model.output} · classes: {classes}\n"
            f"sha256 {model.sha256[:12]}…"
        )
        default = model.default_layer
        self.layers.blockSignals(True)
        self.layers.clear()
        self.compare_layers.blockSignals(True)
        self.compare_layers.clear()
        infos = model.layers()
        width = max((len(info.name) for info in infos), default=0)
        for info in infos:
            shape = "×".join(str(s) for s in info.shape)
            star = "★" if info.name == default else " "
            item = QListWidgetItem(f"{star} {info.name:<{width}}  {shape}")
            item.setData(LAYER_ROLE, info.name)
            item.setToolTip(f"{info.name}: output {shape} ({info.kind})")
            self.layers.addItem(item)
            if info.name == default:
                self.layers.setCurrentItem(item)
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            compare_item = QListWidgetItem(info.name)
            compare_item.setData(LAYER_ROLE, info.name)
            compare_item.setFlags(compare_item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            compare_item.setCheckState(Qt.CheckState.Unchecked)
            self.compare_layers.addItem(compare_item)
        # Scroll once the list has its final size (it may not be laid out yet).
        QTimer.singleShot(0, self._scroll_to_current)
        self._check_default_compare_layers(infos, default)
        self.compare_layers.blockSignals(False)
        self.layers.blockSignals(False)
        self._show_method(self.current_method())

    def _scroll_to_current(self) -> None:
        if self.layers.currentItem() is not None:
            self.layers.scrollToItem(self.layers.currentItem(),
                                     QAbstractItemView.ScrollHint.PositionAtCenter)
        ticked = [self.compare_layers.item(i) for i in range(self.compare_layers.count())
                  if self.compare_layers.item(i).checkState() == Qt.CheckState.Checked]
        if ticked:
            self.compare_layers.scrollToItem(ticked[-1],
                                             QAbstractItemView.ScrollHint.PositionAtBottom)

    def _check_default_compare_layers(self, infos, default: str | None) -> None:
        # The default layer and the deepest one at a finer resolution: the usual question is
        # "does an earlier, sharper layer point at the same place?".
        if not infos:
            return
        by_name = {info.name: info for info in infos}
        chosen = by_name.get(default, infos[-1])
        finer = [info for info in infos[: infos.index(chosen)]
                 if info.shape[1:] != chosen.shape[1:]]
        picks = {chosen.name} | ({finer[-1].name} if finer else set())
        for i in range(self.compare_layers.count()):
            if self.compare_layers.item(i).data(LAYER_ROLE) in picks:
                self.compare_layers.item(i).setCheckState(Qt.CheckState.Checked)

    def clear_prediction(self) -> None:
        """Show no prediction (the image shown has none yet, or cannot be shown)."""
        self.prediction_table.clear()
        self.sig_prediction_changed.emit()

    def set_prediction(self, classes: list[str], scores: list[float], target: int) -> None:
        """Show every class score, the explained target bold and marked (see
        :class:`gui.prediction_table.QtPredictionTable`: a multi-label model's are sorted and
        its findings marked)."""
        self.prediction_table.set_prediction(classes, scores, target)
        self.sig_prediction_changed.emit()

    def finding_threshold(self) -> float | None:
        """A multi-label model's finding threshold as shown; None for other models."""
        return self.prediction_table.finding_threshold()

    def set_caveat(self, text: str | None) -> None:
        """Dim the scores and say why (``text``), or show them plainly again (None)."""
        self.caveat.setText(f"⚠ {text}" if text else "")
        self.caveat.setVisible(bool(text))
        self.prediction_table.set_caveat(text)

    # -- reading ----------------------------------------------------------------------------
    def current_method(self) -> str | None:
        """Return the registry key of the selected method."""
        return self.method_combo.currentData()

    def current_layer(self) -> str | None:
        """Return the selected layer name."""
        item = self.layers.currentItem()
        return None if item is None else item.data(LAYER_ROLE)

    def select_layer(self, name: str) -> None:
        """Select a layer as if the user clicked it."""
        for i in range(self.layers.count()):
            if self.layers.item(i).data(LAYER_ROLE) == name:
                self.layers.setCurrentRow(i)
                return
        raise KeyError(name)

    def select_versus(self, index: int | None) -> None:
        """Show class ``index`` as the contrasted one (None: no contrast), without a signal."""
        found = self.versus.findData(index)
        self.versus.setCurrentIndex(max(found, 0))

    def select_method(self, name: str) -> None:
        """Select a method as if the user picked it."""
        index = self.method_combo.findData(name)
        if index < 0:
            raise KeyError(name)
        self.method_combo.setCurrentIndex(index)

    def compare_selection(self) -> tuple[list[str], list[str]]:
        """Return the (methods, layers) ticked for compare mode."""
        def ticked(widget: QListWidget) -> list[str]:
            return [widget.item(i).data(LAYER_ROLE) for i in range(widget.count())
                    if widget.item(i).checkState() == Qt.CheckState.Checked]
        return ticked(self.compare_methods), ticked(self.compare_layers)

    def set_compare_selection(self, methods: list[str], layers: list[str]) -> None:
        """Tick exactly these methods and layers for compare mode."""
        for widget, wanted in ((self.compare_methods, methods), (self.compare_layers, layers)):
            widget.blockSignals(True)
            for i in range(widget.count()):
                on = widget.item(i).data(LAYER_ROLE) in wanted
                widget.item(i).setCheckState(Qt.CheckState.Checked if on
                                             else Qt.CheckState.Unchecked)
            widget.blockSignals(False)
        self._emit_compare()

    # -- reactions --------------------------------------------------------------------------
    def _model_activated(self, index: int) -> None:
        self.sig_model_requested.emit(self.model_combo.itemData(index))

    def _method_activated(self, _index: int) -> None:
        name = self.current_method()
        self._show_method(name)
        if name is not None:
            self.sig_method_changed.emit(name)

    def _show_method(self, name: str | None) -> None:
        explainer = self._explainers.get(name)
        if explainer is None:
            self.params.set_params(())
            self.method_note.setText("")
            return
        self.params.set_params(getattr(explainer, "params", ()))
        note = getattr(explainer, "description", "")
        reason = self._reasons.get(name) if self._model is not None else None
        if reason:
            note = f"⚠ Not available for this model: {reason}"
        self.method_note.setText(note)
        # Model-agnostic methods explain the input, so a layer choice means nothing to them.
        self.layers.setEnabled(is_layer_based(explainer))

    def _layer_activated(self, current, _previous) -> None:
        if current is not None:
            self.sig_layer_changed.emit(current.data(LAYER_ROLE))

    def _compare_toggled(self, on: bool) -> None:
        self.compare_group.setVisible(on)
        self._emit_compare()

    def _emit_compare(self, *_args) -> None:
        methods, layers = self.compare_selection()
        self.sig_compare_changed.emit(self.compare_box.isChecked(), methods, layers)
