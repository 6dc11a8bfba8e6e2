"""The Audit view's form: dataset, model, method and its parameters, layer, output, engine."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from engine.audit.settings import ENGINES, AuditSettings
from gui.param_form import QtParamForm
from gui.wheel_guard import WheelGuard

#: How the Run on box names each engine of :data:`engine.audit.settings.ENGINES`.
ENGINE_LABELS = {"local": "This computer", "ray": "Ray (local instance or cluster)"}
#: Where audits go unless the user says otherwise.
DEFAULT_OUT = Path.home() / "lucida-audit"


class QtAuditForm(QWidget):
    """The fields that describe an audit; :meth:`request_fields` reads them.

    The wheel changes a combo or spin box only once it has focus, so scrolling past the form
    never changes the method (:class:`gui.wheel_guard.WheelGuard`).

    Parameters
    ----------
    explainers : dict
        Registry key to explainer, listed by title in the Method box.
    model_spec : str, optional
        The review window's model, offered first.
    """

    def __init__(self, explainers: dict[str, object], model_spec: str | None = None,
                 parent=None) -> None:
        super().__init__(parent)
        self._explainers: dict[str, object] = {}
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("manifest.csv or a DICOM folder")
        browse_csv = QPushButton("CSV…")
        browse_csv.clicked.connect(self._browse_manifest)
        browse_dir = QPushButton("Folder…")
        browse_dir.clicked.connect(self._browse_folder)
        data_row = QHBoxLayout()
        data_row.addWidget(self.dataset_edit, 1)
        data_row.addWidget(browse_csv)
        data_row.addWidget(browse_dir)

        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.addItems(["demo", "demo-biased"])
        if model_spec and self.model_combo.findText(model_spec) < 0:
            self.model_combo.insertItem(0, model_spec)
        if model_spec:
            self.model_combo.setCurrentText(model_spec)
        self.method_combo = QComboBox()
        self.params = QtParamForm()
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        self.layer_edit = QLineEdit("auto")
        self.out_edit = QLineEdit(str(DEFAULT_OUT))
        self.resume_box = QCheckBox("Resume the run in this folder")
        self.engine_combo = QComboBox()
        for name in ENGINES:
            self.engine_combo.addItem(ENGINE_LABELS[name], name)
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText("empty: start Ray here; auto; or HOST:PORT")
        self.address_edit.setToolTip("Start a cluster with `ray start --head`, then give its "
                                     "address, or auto on one of its nodes")
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(1, 1024)
        self.workers_spin.setValue(2)
        self.workers_spin.setToolTip("Ray actors, each loading the model once")
        cluster_row = QHBoxLayout()
        cluster_row.addWidget(self.address_edit, 1)
        cluster_row.addWidget(QLabel("Workers"))
        cluster_row.addWidget(self.workers_spin)
        self.engine_combo.currentIndexChanged.connect(self._engine_changed)
        self._engine_changed()

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Dataset", data_row)
        form.addRow("Model", self.model_combo)
        form.addRow("Method", self.method_combo)
        form.addRow("", self.params)
        form.addRow("Layer", self.layer_edit)
        form.addRow("Output", self.out_edit)
        form.addRow("", self.resume_box)
        form.addRow("Run on", self.engine_combo)
        form.addRow("Ray address", cluster_row)
        self.wheel_guard = WheelGuard(self)
        self.set_explainers(explainers)

    def _engine_changed(self, _index: int = 0) -> None:
        on_ray = self.engine_combo.currentData() == "ray"
        self.address_edit.setEnabled(on_ray)
        self.workers_spin.setEnabled(on_ray)

    def set_explainers(self, explainers: dict[str, object]) -> None:
        """List the methods by title (the registry key is the item's data)."""
        self._explainers = dict(explainers)
        current = self.method() or "gradcam"
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        for name, explainer in self._explainers.items():
            self.method_combo.addItem(getattr(explainer, "title", "") or name, name)
            self.method_combo.setItemData(self.method_combo.count() - 1,
                                          getattr(explainer, "description", ""),
                                          Qt.ItemDataRole.ToolTipRole)
        self.method_combo.blockSignals(False)
        self.set_method(current if current in self._explainers else
                        next(iter(self._explainers), ""))

    def method(self) -> str:
        """The registry key of the chosen method."""
        return self.method_combo.currentData() or ""

    def set_method(self, name: str) -> None:
        """Choose a method by registry key and show its parameter widgets."""
        index = self.method_combo.findData(name)
        if index >= 0:
            self.method_combo.setCurrentIndex(index)
        self._method_changed()

    def _method_changed(self, _index: int = 0) -> None:
        explainer = self._explainers.get(self.method())
        self.params.set_params(getattr(explainer, "params", ()) or ())
        self.wheel_guard.guard(self)  # the new parameters' spin boxes too

    def method_title(self, name: str) -> str:
        """The title of a method's registry key (the key itself when it is not loaded)."""
        return getattr(self._explainers.get(name), "title", "") or name

    def out_folder(self) -> Path:
        """The output folder the form names (the default one when it is empty)."""
        return Path(self.out_edit.text().strip() or DEFAULT_OUT)

    def request_fields(self, device: str) -> dict:
        """The form's audit settings and engine, as :class:`AuditRequest` fields.

        What the form does not offer (the target, the batch size, identifiers) keeps the
        defaults of :class:`engine.audit.settings.AuditSettings`, as on the command line.
        """
        settings = AuditSettings(method=self.method(),
                                 layer=self.layer_edit.text().strip() or "auto",
                                 params=dict(self.params.values()))
        return {"settings": settings, "engine": self.engine_combo.currentData(),
                "address": self.address_edit.text().strip() or None,
                "workers": self.workers_spin.value(), "keep_ray_session": True,
                "device": device}

    def _browse_manifest(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Manifest", "", "CSV (*.csv)")
        if path:
            self.dataset_edit.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "DICOM folder")
        if path:
            self.dataset_edit.setText(path)
