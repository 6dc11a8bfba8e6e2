"""The Audit view: run a bias audit on the window's worker and browse its results.

The view holds no audit logic: a background job on the review window's one worker calls the
engine's ``run_audit`` (or, with the Ray engine, ``run_audit_ray`` on a local Ray instance or a
cluster address) and ``write_outputs`` with the model (and the trust) the user chose; the
table, charts and heatmap grid are read from the files the engine wrote. The review window's own
work goes first: the audit pauses after its current batch and resumes by itself.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
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
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

#: Columns of audit.csv shown in the table, in order, when present.
TABLE_LEAD = ("path", "label", "pred", "correct")
#: Engine choices: (label, engine name).
ENGINES = (("This computer", "local"), ("Ray (local instance or cluster)", "ray"))


def audit_job(dataset_spec: str, model_spec: str, trust: bool, device: str, method: str,
              layer: str, out_dir: str, resume: bool, engine: str = "local",
              address: str | None = None, workers: int = 2):
    """Return the worker function of one audit.

    It is a background job: the review window's own work preempts it after the current batch,
    and it runs again later, resuming the batches already stored, with the dataset and model it
    loaded the first time. With ``engine="ray"`` the batches run on Ray (``address`` ``auto``
    or ``HOST:PORT``, or None for a Ray instance on this computer) with ``workers`` actors; the
    Ray session stays open for the resumed run and later audits.
    """
    loaded: dict = {}

    def run(progress, cancel, _partial):
        from engine.audit import AuditSettings, load_dataset, run_audit, write_outputs
        from engine.explain.session import resolve_device
        from engine.models import loaded as models

        if not loaded:
            loaded["dataset"] = load_dataset(dataset_spec)
            loaded["model"] = models.load_model(model_spec, trust=trust,
                                                device=str(resolve_device(device)))
            loaded["resume"] = resume
        dataset, model = loaded["dataset"], loaded["model"]
        settings = AuditSettings(method=method, layer=layer or "auto")
        if engine == "ray":
            from engine.audit import ray_engine

            progress(0.0, f"connecting to Ray ({address or 'a local instance'})…")
            ray_engine.stay_connected(address, workers)
            store = ray_engine.run_audit_ray(
                dataset, model, model_spec, settings, out_dir, trust=trust,
                resume=loaded["resume"], progress=progress, cancel=cancel, address=address,
                workers=workers,
            )
            info = ray_engine.engine_info(workers, address)
        else:
            store = run_audit(dataset, model, settings, out_dir, resume=loaded["resume"],
                              progress=progress, cancel=cancel)
            info = {"name": "local", "workers": 1}
        loaded["resume"] = True  # a preempted run picks up its stored batches
        cancel.check()
        progress(1.0, "writing audit.json, audit.csv, heatmaps and report.pdf")
        header = json.loads((Path(out_dir) / "run.json").read_text())
        return write_outputs(store, dataset, model, header, out_dir, engine=info), str(out_dir)

    return run


class QtBarChart(QWidget):
    """Bars with optional confidence whiskers, drawn with QPainter; values in [0, 1]."""

    def __init__(self, title: str = "", parent=None) -> None:
        super().__init__(parent)
        self.title = title
        self.entries: list[tuple[str, float | None, float | None, float | None]] = []
        self.setMinimumHeight(180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_entries(self, title: str, entries) -> None:
        """Show ``entries``: (label, value, lo, hi); None draws nothing for that part."""
        self.title = title
        self.entries = list(entries)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        left, top, bottom = 40, 22, 46
        plot_h = max(10, h - top - bottom)
        p.drawText(QRectF(0, 2, w, 18), Qt.AlignmentFlag.AlignCenter, self.title)
        p.setPen(QPen(QColor("#888")))
        for frac in (0.0, 0.5, 1.0):
            y = top + plot_h * (1 - frac)
            p.drawLine(left, int(y), w - 8, int(y))
            p.drawText(QRectF(0, y - 8, left - 4, 16), Qt.AlignmentFlag.AlignRight,
                       f"{frac:.0%}")
        if not self.entries:
            p.end()
            return
        slot = (w - left - 8) / len(self.entries)
        for i, (label, value, lo, hi) in enumerate(self.entries):
            x = left + i * slot
            if value is not None:
                bar_h = plot_h * max(0.0, min(1.0, value))
                p.fillRect(QRectF(x + slot * 0.2, top + plot_h - bar_h, slot * 0.6, bar_h),
                           QColor("#4C72B0"))
            if lo is not None and hi is not None:
                p.setPen(QPen(QColor("#222"), 1.5))
                cx = x + slot / 2
                y_lo, y_hi = top + plot_h * (1 - lo), top + plot_h * (1 - hi)
                p.drawLine(int(cx), int(y_lo), int(cx), int(y_hi))
                p.drawLine(int(cx - 4), int(y_hi), int(cx + 4), int(y_hi))
                p.drawLine(int(cx - 4), int(y_lo), int(cx + 4), int(y_lo))
            p.setPen(QPen(QColor("#222")))
            p.drawText(QRectF(x, top + plot_h + 4, slot, bottom - 6),
                       Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap, label)
        p.end()


class QtAuditView(QWidget):
    """Choose a dataset, model and method, run the audit, and browse per-image results.

    Signals
    -------
    sig_open_image(str path, str method, str layer)
        A table row was clicked: open this image with this method's overlay, with the audited
        model (:attr:`audited_model`).

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
        self.method_combo.addItems(self._method_names())
        self.method_combo.setCurrentText("gradcam")
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
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.cancel_button, self.export_button):
            buttons.addWidget(b)
        buttons.addWidget(self.progress, 1)

        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.cellClicked.connect(self._row_clicked)

        self.verdicts = QLabel("")
        self.verdicts.setWordWrap(True)
        self.verdicts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.share_chart = QtBarChart("Saliency share per group")
        self.accuracy_chart = QtBarChart("Accuracy per group")
        charts = QWidget()
        chart_layout = QVBoxLayout(charts)
        chart_layout.addWidget(self.verdicts)
        self.role_combo = QComboBox()
        self.role_combo.currentTextChanged.connect(self._show_role)
        chart_layout.addWidget(self.role_combo)
        chart_layout.addWidget(self.share_chart, 1)
        chart_layout.addWidget(self.accuracy_chart, 1)

        self.grid_host = QWidget()
        self.grid_layout = QGridLayout(self.grid_host)
        grid_scroll = QScrollArea()
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setWidget(self.grid_host)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Images")
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

    def _method_names(self) -> list[str]:
        window = self.jobs.parent()
        names = list(getattr(window, "explainers", {}) or ())
        return names or ["gradcam"]

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
        spec = self.model_combo.currentText().strip()
        window_spec, window_trust, device = self._model_choice()
        trust = window_trust and spec == window_spec
        engine = self.engine_combo.currentData()
        fn = audit_job(dataset, spec, trust, device, self.method_combo.currentText(),
                       self.layer_edit.text().strip(), self.out_edit.text().strip(),
                       self.resume_box.isChecked(), engine=engine,
                       address=self.address_edit.text().strip() or None,
                       workers=self.workers_spin.value())
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Starting… (the review window's own work goes first)"
                            + (" Ray takes some seconds to start." if engine == "ray" else ""))
        return self.jobs.submit("audit", fn, background=True, on_done=self._on_finished,
                                on_failed=self._on_failed, on_cancelled=self._on_cancelled,
                                on_progress=self._on_progress, spec=spec)

    def cancel(self) -> None:
        """Ask the running audit to stop after its current batch (finished work is kept)."""
        if self.is_running():
            self.status.setText("Cancelling after the current batch…")
            self.jobs.cancel("audit")  # a queued audit reports its cancellation at once

    def _done(self) -> None:
        self.run_button.setEnabled(True)
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

    def _on_finished(self, outcome: tuple, context: dict) -> None:
        audit, out_dir = outcome
        self._done()
        self.progress.setValue(1000)
        self.audited_model = context["spec"]
        self.show_results(out_dir, audit)

    # -- results --------------------------------------------------------------------------
    def show_results(self, out_dir: str | Path, audit: dict | None = None) -> None:
        """Show the results an audit wrote to ``out_dir`` (audit.json, audit.csv, heatmaps)."""
        self.out_dir = Path(out_dir)
        self.audit = audit or json.loads((self.out_dir / "audit.json").read_text())
        acc = self.audit["accuracy"]["overall"]
        self.status.setText(
            f"{self.audit['n']} images, "
            + (f"accuracy {acc:.1%}, " if acc is not None else "")
            + f"{len(self.audit['flagged'])} flagged, {len(self.audit['errors'])} skipped"
        )
        self._fill_table(self.out_dir / "audit.csv")
        self.verdicts.setText("\n".join(self.audit["verdicts"]) or "No groups to compare.")
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
        self._show_role(self.role_combo.currentText())
        acc_by = self.audit["accuracy"]["by_group"]
        self.accuracy_chart.set_entries(
            "Accuracy per group", [(g, a, None, None) for g, a in acc_by.items()]
        )
        self._fill_grid(self.out_dir / "mean_heatmaps")
        self.export_button.setEnabled(True)

    def _show_role(self, role: str) -> None:
        if not self.audit or role not in self.audit["roi_share"]:
            return
        entry = self.audit["roi_share"][role]
        entries = [("all", entry["mean"], *entry["ci95"])]
        entries += [(g, s["mean"], *s["ci95"]) for g, s in entry["by_group"].items()]
        self.share_chart.set_entries(f"Share of saliency on `{role}` (95% CI)", entries)

    def _fill_table(self, csv_path: Path) -> None:
        self.table.setSortingEnabled(False)
        self.table.clear()
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = [c for c in TABLE_LEAD if c in reader.fieldnames]
            cols += [c for c in reader.fieldnames if c not in cols and c != "row"]
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
        if "path" not in cols or not self.audit:
            return
        item = self.table.item(row, cols.index("path"))
        if item is not None and item.text():
            self.sig_open_image.emit(item.text(), self.audit["method"], self.audit["layer"])

    def _fill_grid(self, folder: Path) -> None:
        while self.grid_layout.count():
            widget = self.grid_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        files = sorted(folder.glob("*__*.png"))
        classes = sorted({f.stem.split("__")[0] for f in files})
        groups = sorted({f.stem.split("__")[1] for f in files}, key=lambda g: (g != "all", g))
        for j, g in enumerate(groups):
            self.grid_layout.addWidget(QLabel(g), 0, j + 1, Qt.AlignmentFlag.AlignCenter)
        for i, cls in enumerate(classes):
            self.grid_layout.addWidget(QLabel(cls), i + 1, 0)
            for j, g in enumerate(groups):
                path = folder / f"{cls}__{g}.png"
                if path.is_file():
                    label = QLabel()
                    label.setPixmap(QPixmap(str(path)).scaled(
                        128, 128, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation))
                    self.grid_layout.addWidget(label, i + 1, j + 1)

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
