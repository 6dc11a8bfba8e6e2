"""The Audit view: run a bias audit on the window's worker and browse its results.

The view holds no audit logic: a background job on the review window's one worker calls the
engine's ``run_audit`` (or, with the Ray engine, ``run_audit_ray`` on a local Ray instance or a
cluster address) and ``write_outputs`` with the model (and the trust) the user chose; the
table, charts and heatmap grid are read from the files the engine wrote. The review window's own
work goes first: the audit pauses after its current batch and resumes by itself.

A second audit (another model on the same data) can be opened beside the first; the Demo
button generates the demo phantoms and audits them with both demo models, ending in that
side-by-side comparison.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.audit_charts import QtBarChart
from gui.param_form import QtParamForm

#: Columns of audit.csv shown in the table, in order, when present.
TABLE_LEAD = ("case", "path", "label", "pred", "correct")
#: Engine choices: (label, engine name).
ENGINES = (("This computer", "local"), ("Ray (local instance or cluster)", "ray"))
#: Demo phantoms per set (correlated and counterfactual) the Demo button generates.
DEMO_N = 40


def audit_job(request):
    """Return the worker function of one audit (an :class:`engine.audit.settings.AuditRequest`).

    It is a background job: the review window's own work preempts it after the current batch,
    and it runs again later, resuming the batches already stored, with the dataset and model it
    loaded the first time (:class:`engine.audit.job.AuditJob`). It returns the
    :class:`engine.audit.job.AuditOutcome`.
    """
    jobs: list = []

    def run(progress, cancel, _partial):
        from engine.audit.job import AuditJob

        if not jobs:
            jobs.append(AuditJob(request))
        return jobs[0].run(progress, cancel)

    return run


def demo_job(request, n: int):
    """Return the worker function that generates the demo data and audits both demo models.

    ``request`` comes from :func:`engine.audit.job.demo_request`. The job writes ``data/``
    (correlated and counterfactual phantoms), one audit folder per demo model and their
    comparison under the request's folder, and returns the
    :class:`engine.audit.job.DemoOutcome`. Like :func:`audit_job` it is a background job: when
    preempted it runs again, keeping the data and the stored batches.
    """
    jobs: list = []

    def run(progress, cancel, _partial):
        from engine.audit.job import DemoAuditJob

        if not jobs:
            jobs.append(DemoAuditJob(request, n))
        return jobs[0].run(progress, cancel)

    return run


def _summary(audit: dict) -> str:
    """One audit in a line: images, accuracy, flagged and skipped."""
    acc = audit["accuracy"]["overall"]
    return (f"{audit['n']} images, " + (f"accuracy {acc:.1%}, " if acc is not None else "")
            + f"{len(audit['flagged'])} flagged, {len(audit['errors'])} skipped")

class QtAuditView(QWidget):
    """Choose a dataset, model and method, run the audit, and browse per-image results.

    Signals
    -------
    sig_open_image(str path, str method, str layer)
        A table row was clicked: open this image with this method's overlay, with the audited
        model (:attr:`audited_model`, the model of the audit the table shows).

    Parameters
    ----------
    jobs : gui.jobs.JobRouter, optional
        The review window's router; without one (the view on its own) the view makes a worker.
    model_choice : callable, optional
        Returns ``(spec, trusted, device)`` of the window's model, offered first.
    """

    sig_open_image = Signal(str, str, str)

    def __init__(self, jobs=None, model_choice=None, parent=None) -> None:
        super().__init__(parent)
        self._own_worker = None
        if jobs is None:
            from gui.jobs import JobRouter
            from gui.worker import QtEngineWorker

            self._own_worker = QtEngineWorker(self)
            jobs = JobRouter(self._own_worker, lambda: (0, 0), self)
        self.jobs = jobs
        self._model_choice = model_choice or (lambda: (None, False, "auto"))
        self.audit: dict | None = None
        self.out_dir: Path | None = None
        #: The model spec of the audit shown (rows open with it).
        self.audited_model: str | None = None
        #: Every audit on show, by model name, in order: ``(spec, audit, folder)``; the first
        #: is compared with the second.
        self.audits: dict[str, tuple[str | None, dict, Path]] = {}
        self._explainers: dict[str, object] = {}
        self._table_audit: dict | None = None  # the audit whose images the table lists
        #: Per audit on show, its case names to their files (known for audits run here).
        self._case_paths: dict[str, dict[str, Path]] = {}
        self._table_cases: dict[str, Path] = {}
        #: The request of the last audit started from the form.
        self.last_request = None

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
        spec = self._model_choice()[0]
        if spec and self.model_combo.findText(spec) < 0:
            self.model_combo.insertItem(0, spec)
        if spec:
            self.model_combo.setCurrentText(spec)
        self.method_combo = QComboBox()
        self.params = QtParamForm()
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        self.set_explainers(self._window_explainers())
        self.layer_edit = QLineEdit("auto")
        self.out_edit = QLineEdit(str(Path.home() / "lucida-audit"))
        self.resume_box = QCheckBox("Resume the run in this folder")
        self.engine_combo = QComboBox()
        for label, name in ENGINES:
            self.engine_combo.addItem(label, name)
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

        form = QFormLayout()
        form.addRow("Dataset", data_row)
        form.addRow("Model", self.model_combo)
        form.addRow("Method", self.method_combo)
        form.addRow("", self.params)
        form.addRow("Layer", self.layer_edit)
        form.addRow("Output", self.out_edit)
        form.addRow("", self.resume_box)
        form.addRow("Run on", self.engine_combo)
        form.addRow("Ray address", cluster_row)

        self.run_button = QPushButton("Run audit")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)
        self.demo_button = QPushButton("Demo")
        self.demo_button.setToolTip("Generate the demo phantoms (a site marker that goes with "
                                    "nodules) and audit them with demo and demo-biased")
        self.demo_button.clicked.connect(self.start_demo)
        self.compare_button = QPushButton("Compare with…")
        self.compare_button.setToolTip("Open another audit folder (another model on the same "
                                       "data) beside this one")
        self.compare_button.setEnabled(False)
        self.compare_button.clicked.connect(self._compare_dialog)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.demo_button, self.cancel_button, self.export_button,
                  self.compare_button):
            buttons.addWidget(b)
        buttons.addWidget(self.progress, 1)

        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.cellClicked.connect(self._row_clicked)
        self.table_audit = QComboBox()
        self.table_audit.setToolTip("Whose images the table lists; a row opens with that model")
        self.table_audit.currentTextChanged.connect(self._show_table_of)
        images = QWidget()
        images_layout = QVBoxLayout(images)
        images_layout.addWidget(self.table_audit)
        images_layout.addWidget(self.table, 1)

        self.verdicts = QLabel("")
        self.verdicts.setWordWrap(True)
        self.verdicts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.finding = QLabel("")
        self.finding.setWordWrap(True)
        self.finding.setStyleSheet("font-weight: bold")
        self.models_table = QTableWidget(0, 0)
        self.models_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.models_table.verticalHeader().setVisible(False)
        self.share_chart = QtBarChart("Saliency share per group")
        self.enrichment_chart = QtBarChart("Enrichment per group")
        self.contrast_chart = QtBarChart("Each group against the rest")
        self.accuracy_chart = QtBarChart("Accuracy per group")
        charts = QWidget()
        chart_layout = QVBoxLayout(charts)
        chart_layout.addWidget(self.finding)
        chart_layout.addWidget(self.models_table)
        chart_layout.addWidget(self.verdicts)
        self.role_combo = QComboBox()
        self.role_combo.currentTextChanged.connect(self._show_role)
        role_row = QHBoxLayout()
        role_row.addWidget(QLabel("Region"))
        role_row.addWidget(self.role_combo, 1)
        chart_layout.addLayout(role_row)
        chart_grid = QGridLayout()
        chart_grid.addWidget(self.share_chart, 0, 0)
        chart_grid.addWidget(self.enrichment_chart, 0, 1)
        chart_grid.addWidget(self.contrast_chart, 1, 0)
        chart_grid.addWidget(self.accuracy_chart, 1, 1)
        chart_layout.addLayout(chart_grid, 1)

        self.grid_host = QWidget()
        self.grid_layout = QGridLayout(self.grid_host)
        grid_scroll = QScrollArea()
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setWidget(self.grid_host)

        self.tabs = QTabWidget()
        self.tabs.addTab(images, "Images")
        self.tabs.addTab(charts, "Charts")
        self.tabs.addTab(grid_scroll, "Mean heatmaps")

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)

    def _engine_changed(self, _index: int = 0) -> None:
        on_ray = self.engine_combo.currentData() == "ray"
        self.address_edit.setEnabled(on_ray)
        self.workers_spin.setEnabled(on_ray)

    def _window_explainers(self) -> dict[str, object]:
        """The review window's explainers; on its own the view imports the registry."""
        explainers = getattr(self.jobs.parent(), "explainers", None)
        if explainers:
            return dict(explainers)
        from gui.explain_controller import load_registry

        return load_registry()[0]

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

    def method_title(self, name: str) -> str:
        """The title of a method's registry key (the key itself when it is not loaded)."""
        return getattr(self._explainers.get(name), "title", "") or name

    # -- running --------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Whether an audit is in progress (or waiting for the worker)."""
        return self.jobs.is_pending("audit")

    def start(self) -> int | None:
        """Start the audit described by the form on the worker (as a background job)."""
        if self.is_running():
            return None
        dataset = self.dataset_edit.text().strip()
        if not dataset:
            self.status.setText("Choose a manifest CSV or a DICOM folder first.")
            return None
        from engine.audit.settings import AuditRequest

        spec = self.model_combo.currentText().strip()
        window_spec, window_trust, _ = self._model_choice()
        engine = self.engine_combo.currentData()
        self.last_request = AuditRequest(
            dataset=dataset, model=spec, out=self.out_edit.text().strip(),
            trust=window_trust and spec == window_spec, resume=self.resume_box.isChecked(),
            **self._request_fields())
        fn = audit_job(self.last_request)
        self._busy()
        self.progress.setValue(0)
        self.status.setText("Starting… (the review window's own work goes first)"
                            + (" Ray takes some seconds to start." if engine == "ray" else ""))
        return self.jobs.submit("audit", fn, background=True, on_done=self._on_finished,
                                on_failed=self._on_failed, on_cancelled=self._on_cancelled,
                                on_progress=self._on_progress, spec=spec)

    def start_demo(self, n: int = DEMO_N) -> int | None:
        """Generate the demo data under the output folder and audit it with both demo models.

        The dataset has ``n`` correlated and ``n`` counterfactual phantoms; the results end in
        the two-model comparison (:meth:`show_comparison`).
        """
        if self.is_running():
            return None
        from engine.audit.job import demo_request

        out = Path(self.out_edit.text().strip() or Path.home() / "lucida-audit") / "demo"
        self.last_request = demo_request(out, **self._request_fields())
        fn = demo_job(self.last_request, n)
        self.dataset_edit.setText(self.last_request.dataset)
        self._busy()
        self.status.setText(f"Generating {n} + {n} demo phantoms, then auditing demo and "
                            "demo-biased…")
        return self.jobs.submit("audit", fn, background=True, on_done=self._on_demo_finished,
                                on_failed=self._on_failed, on_cancelled=self._on_cancelled,
                                on_progress=self._on_progress)

    def _request_fields(self) -> dict:
        """The form's audit settings and engine, as :class:`AuditRequest` fields.

        What the form does not offer (the target, the batch size, identifiers) keeps the
        defaults of :class:`engine.audit.settings.AuditSettings`, as on the command line.
        """
        from engine.audit.settings import AuditSettings

        settings = AuditSettings(method=self.method(),
                                 layer=self.layer_edit.text().strip() or "auto",
                                 params=dict(self.params.values()))
        return {"settings": settings, "engine": self.engine_combo.currentData(),
                "address": self.address_edit.text().strip() or None,
                "workers": self.workers_spin.value(), "keep_ray_session": True,
                "device": self._model_choice()[2]}

    def _busy(self) -> None:
        self.run_button.setEnabled(False)
        self.demo_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def cancel(self) -> None:
        """Ask the running audit to stop after its current batch (finished work is kept)."""
        if self.is_running():
            self.status.setText("Cancelling after the current batch…")
            self.jobs.cancel("audit")  # a queued audit reports its cancellation at once

    def _done(self) -> None:
        self.run_button.setEnabled(True)
        self.demo_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._own_worker is not None:
            self._own_worker.stop()  # a view on its own leaves no thread behind

    def _on_progress(self, fraction: float, message: str, _context: dict) -> None:
        self.progress.setValue(int(round(1000 * fraction)))
        if message:
            self.status.setText(message)

    def _on_failed(self, line: str, _context: dict) -> None:
        self._done()
        self.status.setText(f"Audit failed: {line}")

    def _on_cancelled(self, _context: dict) -> None:
        self._done()
        self.resume_box.setChecked(True)
        self.status.setText("Cancelled. Finished images are kept; run again to resume.")

    def _on_finished(self, outcome, context: dict) -> None:
        self._done()
        self.progress.setValue(1000)
        self.show_results(outcome.out, outcome.audit, spec=context["spec"],
                          case_paths=outcome.case_paths)

    def _on_demo_finished(self, demo, _context: dict) -> None:
        self._done()
        self.progress.setValue(1000)
        (first, outcome), *rest = demo.outcomes.items()
        self.show_results(outcome.out, outcome.audit, spec=first,
                          case_paths=outcome.case_paths)
        for name, other in rest:
            self.add_comparison(other.out, other.audit, spec=name, case_paths=other.case_paths)

    # -- results --------------------------------------------------------------------------
    def show_results(self, out_dir: str | Path, audit: dict | None = None,
                     spec: str | None = None, case_paths: dict | None = None) -> None:
        """Show the results an audit wrote to ``out_dir`` (audit.json, audit.csv, heatmaps).

        ``spec`` is the model spec the audit ran with (rows open with it); without it, the
        model name audit.json records. ``case_paths`` maps the de-identified outputs' case
        names to their files (an audit run here); without it, rows open by a kept ``path``.
        Any audit compared before is put away.
        """
        self.audits = {}
        self._case_paths = {}
        self._add_audit(out_dir, audit, spec, case_paths)
        _, self.audit, self.out_dir = next(iter(self.audits.values()))
        self.role_combo.blockSignals(True)
        self.role_combo.clear()
        roles = list(self.audit["roi_share"])
        self.role_combo.addItems(roles)
        # Imported here, not with the view: engine.audit imports torch, which the worker has
        # loaded by the time results are shown.
        from engine.audit.aggregate import is_shortcut
        from engine.audit.manifest import BORDER_ROLE

        # Open on the shortcut role people look for first (marker, text), else the border.
        shortcut = [r for r in roles if is_shortcut(r) and r != BORDER_ROLE]
        self.role_combo.setCurrentText(shortcut[0] if shortcut else BORDER_ROLE)
        self.role_combo.blockSignals(False)
        self._refresh()
        self.export_button.setEnabled(True)
        self.compare_button.setEnabled(True)

    def add_comparison(self, out_dir: str | Path, audit: dict | None = None,
                       spec: str | None = None, case_paths: dict | None = None) -> None:
        """Show a second audit (another model on the same data) beside the first."""
        if not self.audits:
            self.show_results(out_dir, audit, spec, case_paths)
            return
        first = next(iter(self.audits))
        self.audits = {first: self.audits[first]}
        self._add_audit(out_dir, audit, spec, case_paths)
        self._refresh()

    def _add_audit(self, out_dir, audit, spec, case_paths=None) -> None:
        folder = Path(out_dir)
        audit = audit or json.loads((folder / "audit.json").read_text())
        name = spec or audit["model"]["name"]
        if name in self.audits:
            name = f"{name} ({folder.name})"
        self.audits[name] = (spec or audit["model"]["name"], audit, folder)
        self._case_paths[name] = dict(case_paths or {})

    def _refresh(self) -> None:
        """Redraw the table choice, the model comparison and the charts."""
        self.table_audit.blockSignals(True)
        self.table_audit.clear()
        self.table_audit.addItems(list(self.audits))
        self.table_audit.blockSignals(False)
        self.table_audit.setVisible(len(self.audits) > 1)
        self._show_table_of(self.table_audit.currentText())
        prefix = len(self.audits) > 1
        lines = [f"{name}: {line}" if prefix else line
                 for name, (_, audit, _) in self.audits.items() for line in audit["verdicts"]]
        self.verdicts.setText("\n".join(lines) or "No groups to compare.")
        summaries = [(name, _summary(audit)) for name, (_, audit, _) in self.audits.items()]
        self.status.setText("; ".join(f"{name}: {line}" if prefix else line
                                      for name, line in summaries))
        self._fill_grid([(name, folder / "mean_heatmaps")
                         for name, (_, _, folder) in self.audits.items()])
        self._fill_models_table()
        self._show_role(self.role_combo.currentText())

    def _show_table_of(self, name: str) -> None:
        if name not in self.audits:
            return
        spec, audit, folder = self.audits[name]
        self.audited_model = spec
        self._table_audit = audit
        self._table_cases = self._case_paths.get(name, {})
        self._fill_table(folder / "audit.csv")

    def comparison(self) -> dict | None:
        """The two-audit comparison of the role shown (``engine.audit.compare.compare``, as
        the demo audit writes it)."""
        if len(self.audits) < 2:
            return None
        from engine.audit.compare import compare

        return compare({n: a for n, (_, a, _) in self.audits.items()},
                       role=self.role_combo.currentText())

    def _fill_models_table(self) -> None:
        role = self.role_combo.currentText()
        cols = ["model", "method", f"share on {role} (95% CI)", "enrichment", "accuracy"]
        self.models_table.clear()
        self.models_table.setColumnCount(len(cols))
        self.models_table.setHorizontalHeaderLabels(cols)
        self.models_table.setRowCount(len(self.audits))
        for r, (name, (_, audit, _)) in enumerate(self.audits.items()):
            share = audit["roi_share"].get(role)
            contrast = audit.get("roi_contrast", {}).get(role, {})
            acc = audit["accuracy"]["overall"]
            cells = [name, f"{self.method_title(audit['method'])} · {audit['layer']}",
                     _share_text(share) if share else "–",
                     _num_text(contrast.get("enrichment"), "×"),
                     "–" if acc is None else f"{acc:.1%}"]
            for c, text in enumerate(cells):
                self.models_table.setItem(r, c, QTableWidgetItem(text))
        self.models_table.resizeColumnsToContents()
        header = self.models_table.horizontalHeader().height()
        self.models_table.setFixedHeight(header + 4 + sum(
            self.models_table.rowHeight(r) for r in range(self.models_table.rowCount())))
        comp = self.comparison()
        self.finding.setText(comp["finding"] + "." if comp and "finding" in comp else "")
        self.finding.setVisible(bool(self.finding.text()))

    def _show_role(self, role: str) -> None:
        if not self.audits or role not in self.audit["roi_share"]:
            return
        self._fill_models_table()
        audits = [(n, a) for n, (_, a, _) in self.audits.items()]
        names = [n for n, _ in audits] if len(audits) > 1 else []
        groups = list(self.audit["roi_share"][role]["by_group"])

        def per_group(pick):
            rows = []
            for g in ["all", *groups]:
                rows.append((g, [pick(a, g) for _, a in audits]))
            return rows

        def share(a, g):
            entry = a["roi_share"].get(role, {})
            s = entry if g == "all" else entry.get("by_group", {}).get(g)
            return (s["mean"], *s["ci95"]) if s else (None, None, None)

        def enrichment(a, g):
            entry = a.get("roi_contrast", {}).get(role, {})
            e = entry if g == "all" else entry.get("by_group", {}).get(g, {})
            return (e.get("enrichment"), None, None)

        def versus(a, g):
            v = a.get("roi_contrast", {}).get(role, {}).get("by_group", {}).get(g, {})
            v = v.get("vs_rest")
            return (v["diff"], *v["ci95"]) if v else (None, None, None)

        title = self.method_title(self.audit["method"])
        self.share_chart.set_entries(f"Share of {title} saliency on `{role}` (95% CI)",
                                     per_group(share), series=names)
        self.enrichment_chart.set_entries(
            f"Enrichment on `{role}`: share ÷ area (1.0 = as by area)", per_group(enrichment),
            series=names, percent=False, reference=1.0)
        self.contrast_chart.set_entries(
            f"Share on `{role}`: group minus the rest (95% CI)",
            [(g, [versus(a, g) for _, a in audits]) for g in groups
             if any(versus(a, g)[0] is not None for _, a in audits)], series=names)
        acc_groups = list(self.audit["accuracy"]["by_group"])
        self.accuracy_chart.set_entries(
            "Accuracy per group",
            [(g, [(a["accuracy"]["overall"] if g == "all" else
                   a["accuracy"]["by_group"].get(g), None, None) for _, a in audits])
             for g in ["all", *acc_groups]], series=names)

    def _fill_table(self, csv_path: Path) -> None:
        self.table.setSortingEnabled(False)
        self.table.clear()
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = [c for c in TABLE_LEAD if c in reader.fieldnames]
            cols += [c for c in reader.fieldnames if c not in cols and c not in ("row", "digest")]
            rows = list(reader)
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(len(rows))
        for r, rec in enumerate(rows):
            for c, col in enumerate(cols):
                text = rec.get(col) or ""
                item = QTableWidgetItem()
                try:
                    # Numbers sort as numbers, not as text.
                    item.setData(Qt.ItemDataRole.DisplayRole, float(text))
                except ValueError:
                    item.setData(Qt.ItemDataRole.DisplayRole, text)
                if col == "path":
                    item.setData(Qt.ItemDataRole.UserRole, text)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def _row_clicked(self, row: int, _column: int) -> None:
        cols = [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]
        audit = self._table_audit
        if not audit:
            return
        # A de-identified audit names its images by case; the run that made it knows them.
        column = "path" if "path" in cols else "case"
        item = self.table.item(row, cols.index(column)) if column in cols else None
        text = item.text() if item is not None else ""
        path = text if column == "path" else str(self._table_cases.get(text, ""))
        if path:
            self.sig_open_image.emit(path, audit["method"], audit["layer"])
        elif text:
            self.status.setText(f"{text}: this de-identified audit was not run here, so its "
                                "images are unknown. Fix: run it again here, or with "
                                "--keep-identifiers")

    def _fill_grid(self, folders: list[tuple[str, Path]]) -> None:
        """One row per class of each audit (labelled with the audit when there are several),
        one column per group, so two models' mean maps sit one above the other."""
        while self.grid_layout.count():
            widget = self.grid_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        files = {name: sorted(folder.glob("*__*.png")) for name, folder in folders}
        groups = sorted({f.stem.split("__")[1] for found in files.values() for f in found},
                        key=lambda g: (g != "all", g))
        for j, g in enumerate(groups):
            self.grid_layout.addWidget(QLabel(g), 0, j + 1, Qt.AlignmentFlag.AlignCenter)
        row = 0
        for name, folder in folders:
            for cls in sorted({f.stem.split("__")[0] for f in files[name]}):
                row += 1
                self.grid_layout.addWidget(
                    QLabel(f"{name}\n{cls}" if len(folders) > 1 else cls), row, 0)
                for j, g in enumerate(groups):
                    path = folder / f"{cls}__{g}.png"
                    if path.is_file():
                        label = QLabel()
                        label.setPixmap(QPixmap(str(path)).scaled(
                            128, 128, Qt.AspectRatioMode.KeepAspectRatio,
                            Qt.TransformationMode.SmoothTransformation))
                        label.setToolTip(f"{name}: mean map of {cls}, {g}")
                        self.grid_layout.addWidget(label, row, j + 1)

    # -- export ---------------------------------------------------------------------------
    def _export_dialog(self) -> None:
        target = QFileDialog.getExistingDirectory(self, "Export audit to folder")
        if target:
            self.export_to(target)

    def export_to(self, folder: str | Path) -> list[Path]:
        """Copy audit.json, audit.csv, report.pdf and the mean heatmaps into ``folder``."""
        if self.out_dir is None:
            return []
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("audit.json", "audit.csv", "report.pdf"):
            if (self.out_dir / name).is_file():
                written.append(Path(shutil.copy2(self.out_dir / name, folder / name)))
        heat = self.out_dir / "mean_heatmaps"
        if heat.is_dir():
            shutil.copytree(heat, folder / "mean_heatmaps", dirs_exist_ok=True)
            written.append(folder / "mean_heatmaps")
        self.status.setText(f"Exported to {folder}")
        return written

    def _compare_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Audit folder to compare with")
        if folder:
            try:
                self.add_comparison(folder)
            except (OSError, ValueError, KeyError) as exc:
                self.status.setText(f"{folder}: not an audit folder ({exc}). Fix: choose a "
                                    "folder with the audit.json an audit wrote")

    def _browse_manifest(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Manifest", "", "CSV (*.csv)")
        if path:
            self.dataset_edit.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "DICOM folder")
        if path:
            self.dataset_edit.setText(path)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Stop a running audit before the view goes away."""
        self.cancel()
        if self._own_worker is not None:
            self._own_worker.stop()
        super().closeEvent(event)


def _share_text(stats: dict) -> str:
    """``2.2% (1.9–2.6%)`` for a share with its CI."""
    lo, hi = stats["ci95"]
    return f"{_num_text(stats['mean'], '%')} ({_num_text(lo, '%')}–{_num_text(hi, '%')})"


def _num_text(x, unit: str) -> str:
    """A percentage (``%``) or a ratio (``×``), or a dash for a missing number."""
    if x is None or x != x:
        return "–"
    return f"{100 * x:.1f}%" if unit == "%" else f"{x:.1f}×"
