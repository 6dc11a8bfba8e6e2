"""The Audit view: run a bias audit on the window's worker and browse its results.

The view holds no audit logic: a background job on the review window's one worker runs the
engine's :class:`engine.audit.job.AuditJob` (here or on Ray) with the model (and the trust) the
user chose, and the results show what it wrote, as :mod:`engine.audit.view_model` lays it out.
The review window's own work goes first: the audit pauses after its current batch and resumes
by itself.

The form (:mod:`gui.audit_form`) sits beside the results (:mod:`gui.audit_results`) when the
view is wide, as in a bottom dock, so the results get its whole height; above them when tall.
A second audit (another model on the same data) can be opened beside the first; the Demo
button generates the demo phantoms and audits them with both demo models, ending in that
side-by-side comparison. A finished audit folder (from the command line, Ray or this view)
opens with :meth:`QtAuditView.open_audit` (File ▸ Open audit…), and "Compare with…" sets any
audit folder beside the one on show, or asks for two when none is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from gui.adaptive_splitter import QtAdaptiveSplitter
from gui.audit_form import QtAuditForm
from gui.audit_results import QtAuditResults

#: Demo phantoms per set (correlated and counterfactual) the Demo button generates.
DEMO_N = 40
#: Files of an audit folder that Export… copies (the mean heatmaps folder too).
EXPORTED = ("audit.json", "audit.csv", "report.pdf")


def background_job(make):
    """Return the worker function of an engine job that ``make()`` builds on first run.

    It is a background job: the review window's own work preempts it after the current batch,
    and it runs again later with the same engine job, which resumes the batches it stored and
    keeps the dataset and model it loaded (:class:`engine.audit.job.AuditJob`).
    """
    jobs: list = []

    def run(progress, cancel, _partial):
        if not jobs:
            jobs.append(make())
        return jobs[0].run(progress, cancel)

    return run


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
        #: The request of the last audit started here.
        self.last_request = None

        self.form = QtAuditForm(self._window_explainers(), self._model_choice()[0])
        self.results = QtAuditResults(self.form.method_title)
        self.results.sig_open_image.connect(self.sig_open_image)
        f, r = self.form, self.results
        # The form's and the results' widgets, by the names scripts and tests use.
        self.dataset_edit, self.model_combo, self.method_combo = (
            f.dataset_edit, f.model_combo, f.method_combo)
        self.params, self.layer_edit, self.out_edit = f.params, f.layer_edit, f.out_edit
        self.resume_box, self.engine_combo = f.resume_box, f.engine_combo
        self.address_edit, self.workers_spin = f.address_edit, f.workers_spin
        self.tabs, self.table, self.table_audit = r, r.table, r.table_audit
        self.role_combo, self.finding, self.verdicts = r.role_combo, r.finding, r.verdicts
        self.models_table, self.grid_host, self.grid_layout = (
            r.models_table, r.grid_host, r.grid_layout)
        self.share_chart, self.enrichment_chart, self.contrast_chart, self.accuracy_chart = (
            r.charts.values())

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
        # clicked(bool) would arrive as the number of phantoms.
        self.demo_button.clicked.connect(lambda: self.start_demo())
        self.compare_button = QPushButton("Compare with…")
        self.compare_button.setToolTip("Open another audit folder (another model on the same "
                                       "data) beside this one; with none on show, two")
        self.compare_button.clicked.connect(self._compare_dialog)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.results.sig_message.connect(self.status.setText)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.demo_button, self.cancel_button, self.export_button,
                  self.compare_button):
            buttons.addWidget(b)
        buttons.addStretch(1)

        controls = QWidget()
        controls_layout = QVBoxLayout(controls)
        controls_layout.addWidget(self.form)
        controls_layout.addLayout(buttons)
        controls_layout.addWidget(self.progress)
        controls_layout.addWidget(self.status)
        controls_layout.addStretch(1)
        controls_scroll = QScrollArea()
        controls_scroll.setWidgetResizable(True)
        controls_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        controls_scroll.setWidget(controls)
        controls_scroll.setMinimumWidth(controls.sizeHint().width())
        self.splitter = QtAdaptiveSplitter(controls_scroll, self.results)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    def _window_explainers(self) -> dict[str, object]:
        """The review window's explainers; on its own the view imports the registry."""
        explainers = getattr(self.jobs.parent(), "explainers", None)
        if explainers:
            return dict(explainers)
        from gui.explain_controller import load_registry

        return load_registry()[0]

    # -- the form's method, for the window ---------------------------------------------------
    def set_explainers(self, explainers: dict[str, object]) -> None:
        """List the methods by title (the registry key is the item's data)."""
        self.form.set_explainers(explainers)

    def method(self) -> str:
        """The registry key of the chosen method."""
        return self.form.method()

    def set_method(self, name: str) -> None:
        """Choose a method by registry key and show its parameter widgets."""
        self.form.set_method(name)

    # -- the results on show ----------------------------------------------------------------
    @property
    def audits(self) -> dict:
        """Every audit on show, by name, in order: ``(spec, audit, folder)``."""
        return self.results.audits

    @property
    def audit(self) -> dict | None:
        """The first audit on show (``audit.json``'s content), or None."""
        return self.results.audit

    @property
    def out_dir(self) -> Path | None:
        """The folder of the first audit on show, or None."""
        return self.results.out_dir

    @property
    def audited_model(self) -> str | None:
        """The model spec of the audit the table lists (its rows open with it)."""
        return self.results.audited_model

    def show_results(self, out_dir: str | Path, audit: dict | None = None,
                     spec: str | None = None, case_paths: dict | None = None) -> None:
        """Show the results an audit wrote to ``out_dir`` (audit.json, audit.csv, heatmaps).

        See :meth:`gui.audit_results.QtAuditResults.show_results`; any audit compared before
        is put away.
        """
        self.results.show_results(out_dir, audit, spec, case_paths)
        self._results_shown()

    def add_comparison(self, out_dir: str | Path, audit: dict | None = None,
                       spec: str | None = None, case_paths: dict | None = None) -> None:
        """Show a second audit (another model on the same data) beside the first."""
        self.results.add_comparison(out_dir, audit, spec, case_paths)
        self._results_shown()

    def comparison(self) -> dict | None:
        """The two-audit comparison of the role shown (``engine.audit.compare.compare``, as
        the demo audit writes it)."""
        return self.results.comparison()

    def _results_shown(self) -> None:
        self.status.setText(self.results.status_line())
        self.export_button.setEnabled(True)
        self.compare_button.setEnabled(True)

    def _row_clicked(self, row: int, column: int) -> None:
        self.results._row_clicked(row, column)

    # -- running ------------------------------------------------------------------------------
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
        window_spec, window_trust, device = self._model_choice()
        engine = self.engine_combo.currentData()
        self.last_request = request = AuditRequest(
            dataset=dataset, model=spec, out=str(self.form.out_folder()),
            trust=window_trust and spec == window_spec, resume=self.resume_box.isChecked(),
            **self.form.request_fields(device))

        def make():
            from engine.audit.job import AuditJob

            return AuditJob(request)

        self._busy("Starting… (the review window's own work goes first)"
                   + (" Ray takes some seconds to start." if engine == "ray" else ""))
        return self.jobs.submit("audit", background_job(make), background=True,
                                on_done=self._on_finished, on_failed=self._on_failed,
                                on_cancelled=self._on_cancelled,
                                on_progress=self._on_progress, spec=spec)

    def start_demo(self, n: int = DEMO_N) -> int | None:
        """Generate the demo data under the output folder and audit it with both demo models.

        The dataset has ``n`` correlated and ``n`` counterfactual phantoms; the results end in
        the two-model comparison.
        """
        if self.is_running():
            return None
        from engine.audit.job import demo_request

        self.last_request = request = demo_request(
            self.form.out_folder() / "demo", **self.form.request_fields(self._model_choice()[2]))

        def make():
            from engine.audit.job import DemoAuditJob

            return DemoAuditJob(request, n)

        self.dataset_edit.setText(request.dataset)
        self._busy(f"Generating {n} + {n} demo phantoms, then auditing demo and "
                   "demo-biased…")
        return self.jobs.submit("audit", background_job(make), background=True,
                                on_done=self._on_demo_finished, on_failed=self._on_failed,
                                on_cancelled=self._on_cancelled,
                                on_progress=self._on_progress)

    def _busy(self, message: str) -> None:
        """A run starts: the previous run's results go, so none are taken for this run's."""
        self.results.clear_results()
        self.run_button.setEnabled(False)
        self.demo_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.compare_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(message)

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

    # -- export and compare ---------------------------------------------------------------------
    def _export_dialog(self) -> None:
        target = QFileDialog.getExistingDirectory(self, "Export audit to folder")
        if target:
            self.export_to(target)

    def export_to(self, folder: str | Path) -> list[Path]:
        """Copy audit.json, audit.csv, report.pdf and the mean heatmaps into ``folder``."""
        out_dir = self.out_dir
        if out_dir is None:
            return []
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in EXPORTED:
            if (out_dir / name).is_file():
                written.append(Path(shutil.copy2(out_dir / name, folder / name)))
        heat = out_dir / "mean_heatmaps"
        if heat.is_dir():
            shutil.copytree(heat, folder / "mean_heatmaps", dirs_exist_ok=True)
            written.append(folder / "mean_heatmaps")
        self.status.setText(f"Exported to {folder}")
        return written

    def open_audit(self, folder: str | Path, beside: bool = False) -> bool:
        """Show the finished audit in ``folder`` (written by the command line, Ray or a view).

        With ``beside``, it goes beside the audit on show, to compare; otherwise it replaces
        what is on show. A folder that is not an audit is named in the status line, with the
        fix, and nothing on show changes. Returns whether the audit opened.
        """
        from engine.audit.opened import open_audit
        from engine.core.errors import UsageError

        try:
            found = open_audit(folder)
        except UsageError as exc:
            self.status.setText(exc.one_line())
            return False
        show = self.add_comparison if beside and self.audits else self.show_results
        show(found.folder, found.audit)
        return True

    def _compare_dialog(self) -> None:
        if not self.audits:
            first = QFileDialog.getExistingDirectory(self, "First audit folder to compare")
            if not first or not self.open_audit(first):
                return
        folder = QFileDialog.getExistingDirectory(self, "Audit folder to compare with")
        if folder:
            self.open_audit(folder, beside=True)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Stop a running audit before the view goes away."""
        self.cancel()
        if self._own_worker is not None:
            self._own_worker.stop()
        super().closeEvent(event)
