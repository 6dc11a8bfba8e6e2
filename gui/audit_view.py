"""The Audit view: run a bias audit off the GUI thread and browse its results.

The view holds no audit logic: a :class:`QtAuditThread` calls the engine's ``run_audit`` and
``write_outputs`` and sends progress and the finished ``audit.json`` back with queued signals;
the table, charts and heatmap grid are read from the files the engine wrote.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from PySide6.QtCore import QRectF, Qt, QThread, Signal
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
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.audit.aggregate import is_shortcut
from engine.audit.manifest import BORDER_ROLE
from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import LucidaError

#: Columns of audit.csv shown in the table, in order, when present.
TABLE_LEAD = ("path", "label", "pred", "correct")


class QtAuditThread(QThread):
    """Runs one audit on its own thread; never touches widgets.

    Signals
    -------
    sig_progress(float fraction, str message)
    sig_finished(object audit, str out_dir)
    sig_failed(str one_line)
    sig_cancelled()
    """

    sig_progress = Signal(float, str)
    sig_finished = Signal(object, str)
    sig_failed = Signal(str)
    sig_cancelled = Signal()

    def __init__(self, dataset: str, model: str, method: str, layer: str, out_dir: str,
                 resume: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.dataset, self.model, self.method = dataset, model, method
        self.layer, self.out_dir, self.resume = layer or "auto", out_dir, resume
        self.cancel_token = CancelToken()

    def run(self) -> None:
        """Load, audit and write outputs (on this thread), reporting through signals."""
        from engine.audit import AuditSettings, load_dataset, run_audit, write_outputs
        from engine.models.loaded import load_model

        try:
            dataset = load_dataset(self.dataset)
            model = load_model(self.model)
            store = run_audit(
                dataset, model, AuditSettings(method=self.method, layer=self.layer),
                self.out_dir, resume=self.resume,
                progress=lambda f, m="": self.sig_progress.emit(float(f), str(m)),
                cancel=self.cancel_token,
            )
            self.cancel_token.check()
            self.sig_progress.emit(1.0, "writing audit.json, audit.csv, heatmaps and report.pdf")
            header = json.loads((Path(self.out_dir) / "run.json").read_text())
            audit = write_outputs(store, dataset, model, header, self.out_dir)
        except Cancelled:
            self.sig_cancelled.emit()
        except LucidaError as exc:
            self.sig_failed.emit(exc.one_line())
        except Exception as exc:  # noqa: BLE001 - a worker thread must report, never die silently
            self.sig_failed.emit(f"internal error ({type(exc).__name__}: {exc})")
        else:
            self.sig_finished.emit(audit, str(self.out_dir))


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
        A table row was clicked: open this image with this method's overlay.
    """

    sig_open_image = Signal(str, str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.thread: QtAuditThread | None = None
        self.audit: dict | None = None
        self.out_dir: Path | None = None

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
        self.method_combo = QComboBox()
        self.method_combo.addItems(self._method_names())
        self.method_combo.setCurrentText("gradcam")
        self.layer_edit = QLineEdit("auto")
        self.out_edit = QLineEdit(str(Path.home() / "lucida-audit"))
        self.resume_box = QCheckBox("Resume the run in this folder")

        form = QFormLayout()
        form.addRow("Dataset", data_row)
        form.addRow("Model", self.model_combo)
        form.addRow("Method", self.method_combo)
        form.addRow("Layer", self.layer_edit)
        form.addRow("Output", self.out_edit)
        form.addRow("", self.resume_box)

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

    @staticmethod
    def _method_names() -> list[str]:
        try:
            from engine.explain.registry import registry

            return registry().names()
        except Exception:  # noqa: BLE001 - the view still opens if plugins are broken
            return ["gradcam"]

    # -- running --------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Whether an audit is in progress."""
        return self.thread is not None and self.thread.isRunning()

    def start(self) -> None:
        """Start the audit described by the form on a background thread."""
        if self.is_running():
            return
        dataset = self.dataset_edit.text().strip()
        if not dataset:
            self.status.setText("Choose a manifest CSV or a DICOM folder first.")
            return
        self.thread = QtAuditThread(
            dataset, self.model_combo.currentText().strip(), self.method_combo.currentText(),
            self.layer_edit.text().strip(), self.out_edit.text().strip(),
            resume=self.resume_box.isChecked(), parent=self,
        )
        self.thread.sig_progress.connect(self._on_progress)
        self.thread.sig_finished.connect(self._on_finished)
        self.thread.sig_failed.connect(self._on_failed)
        self.thread.sig_cancelled.connect(self._on_cancelled)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self.thread.start()

    def cancel(self) -> None:
        """Ask the running audit to stop after its current batch (finished work is kept)."""
        if self.thread is not None:
            self.thread.cancel_token.cancel()
            self.status.setText("Cancelling after the current batch…")

    def _done(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(1000 * fraction)))
        self.status.setText(message)

    def _on_failed(self, line: str) -> None:
        self._done()
        self.status.setText(f"Audit failed: {line}")

    def _on_cancelled(self) -> None:
        self._done()
        self.resume_box.setChecked(True)
        self.status.setText("Cancelled. Finished images are kept; run again to resume.")

    def _on_finished(self, audit: dict, out_dir: str) -> None:
        self._done()
        self.progress.setValue(1000)
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
        if self.is_running():
            self.thread.cancel_token.cancel()
            self.thread.wait(5000)
        super().closeEvent(event)
