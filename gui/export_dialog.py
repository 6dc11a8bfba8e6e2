"""The export dialog: figure, reports and DICOM, with a live preview, de-identified by default.

Two kinds of export, never confused:

* **Research export** (the default): files in a folder, de-identified, new UIDs.
* **File to the patient's study**: the Secondary Capture, Parametric Maps and SR keep the
  patient and study identifiers and the StudyInstanceUID, get new series, reference the source
  instance, and go to a PACS node of the node file, through the same engine code as
  ``explain --send``. It is an explicit action: a confirmation names the patient, the study and
  the node, and nothing is sent without it.

By default every output holds what was reviewed: the map on screen, and the compare grid when
it is shown. "All layers" puts every computed map in the reports instead.

Drawing the preview and writing the files run on Qt's thread pool, never on the GUI thread; a
newer preview request makes older ones irrelevant (their pictures are dropped when they land).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import create_worker

from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import LucidaError
from engine.export import FigureOptions, ReviewedView, export_view, render_figure, write_reports
from engine.export.case_folder import free_case_folder
from engine.export.dicom_objects import PATIENT_STUDY, RESEARCH
from engine.pacs.filing_prompt import filing_question
from gui.export_kind_box import ExportKindBox
from gui.viewer import qimage_from_array

#: (label, FigureOptions.kind)
LAYOUTS = (
    ("Overlay", "overlay"),
    ("Side by side: original | overlay", "side_by_side"),
    ("Compare grid", "grid"),
)
#: (label, dpi)
RESOLUTIONS = (("150 dpi (screen)", 150), ("300 dpi (print)", 300), ("600 dpi (poster)", 600))
#: (label, write_reports format, checked by default)
OUTPUTS = (
    ("Annotated figure (PNG)", "png", True),
    ("Report (PDF)", "pdf", True),
    ("Report (HTML)", "html", False),
    ("DICOM Secondary Capture", "dicom", False),
    ("DICOM Parametric Map (DICOM images only)", "pm", False),
    ("DICOM Comprehensive SR (DICOM images only)", "sr", False),
)
_PREVIEW_WIDTH = 460


class _Progress(QObject):
    """Carries progress from the writing thread to the GUI thread (queued by Qt)."""

    sig_progress = Signal(float, str)


def _draw_preview(result, image, options: FigureOptions, keep_identifiers: bool):
    """The annotated figure the export will write, drawn for the preview."""
    return render_figure(result, image, options, keep_identifiers=keep_identifiers)


def _preview_outcome(generation: int, draw, *args) -> tuple:
    """Run ``draw(*args)`` off the GUI thread; never raises, so the outcome always returns.

    Returns ``(generation, figure or None, error line or None)``.
    """
    try:
        return generation, draw(*args), None
    except LucidaError as exc:
        return generation, None, exc.one_line()
    except Exception as exc:  # noqa: BLE001 - a preview must not take the dialog down
        return generation, None, f"{type(exc).__name__}: {exc}"


class QtExportDialog(QDialog):
    """Export one explained image: annotated figure, PDF/HTML report, DICOM Secondary Capture.

    Parameters
    ----------
    parent : QWidget or None
    result : ExplainResult
        What to export.
    image : Image
        The explained image.
    view_state : ReviewedView or dict
        What the window shows (see :func:`gui.reviewed_state.reviewed_view`): the exports
        reproduce its display and record its metrics, scale, ROI, contrasted class and
        verdict. A dict is read as ``{"window", "invert", "opacity", "colormap", "threshold",
        "method", "layer", "heat_offset", "heat_gain", "compare", "corners"}``.

    Signals
    -------
    sig_exported(list)
        The paths written, after a successful export.
    """

    sig_exported = Signal(list)
    #: (label, format, checked by default) of the research outputs offered.
    outputs = OUTPUTS

    def __init__(self, parent: QWidget | None, result, image,
                 view_state: ReviewedView | dict | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._result, self._image = result, image
        self.view = (view_state if isinstance(view_state, ReviewedView)
                     else ReviewedView.from_state(view_state))
        self._preview_generation = 0
        #: The annotation text burned into the shown preview (corners, orientation markers).
        self.preview_burned_in: list[str] = []
        self._workers: set = set()
        self._cancel: CancelToken | None = None
        self._progress = _Progress(self)
        self._progress.sig_progress.connect(self._on_progress)
        self._preview_timer = QTimer(self, singleShot=True, interval=120)

        self.preview = QLabel("Drawing preview…")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(_PREVIEW_WIDTH, 300)
        self.preview.setStyleSheet("background: white; border: 1px solid #bbb;")

        self.layout_box = QComboBox()
        for label, kind in LAYOUTS:
            self.layout_box.addItem(label, kind)
        # The compare grid is what the user looked at when it is shown.
        self.layout_box.setCurrentIndex(2 if self.view.compare else 1)
        self.resolution_box = QComboBox()
        for label, dpi in RESOLUTIONS:
            self.resolution_box.addItem(label, dpi)
        self.resolution_box.setCurrentIndex(1)
        self.output_checks = {}
        outputs = QGroupBox("Write")
        out_layout = QVBoxLayout(outputs)
        for label, fmt, checked in self.outputs:
            box = QCheckBox(label)
            box.setChecked(checked)
            box.toggled.connect(self._update_buttons)
            self.output_checks[fmt] = box
            out_layout.addWidget(box)
        out_layout.addWidget(QLabel("A JSON sidecar (report.json) is always written."))
        self.all_maps = QCheckBox(f"All layers: every computed map ({len(result.maps)})")
        self.all_maps.setToolTip("By default the exports hold the map on screen, and the "
                                 "compare grid when it is shown.")
        self.all_maps.toggled.connect(self._preview_timer_start)
        out_layout.addWidget(self.all_maps)

        self.deidentify = QCheckBox("De-identify (DICOM PS3.15 Annex E basic profile)")
        self.deidentify.setChecked(True)
        self.identity_warning = QLabel("Exports will contain patient identifiers.")
        self.identity_warning.setStyleSheet("color: #a00000; font-weight: bold;")
        self.identity_warning.setVisible(False)
        self.deidentify.toggled.connect(lambda on: self.identity_warning.setVisible(not on))
        # Burned-in corners follow the choice, so the preview shows what will be written.
        self.deidentify.toggled.connect(self._preview_timer_start)

        self.kinds = ExportKindBox(self.study_image())
        self.kinds.sig_changed.connect(self._kind_changed)
        self._outputs_box = outputs

        self.folder = QLineEdit(str(self._default_folder()))
        self.folder.textChanged.connect(self._update_buttons)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton(
            "Export", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.export)
        self.close_button.clicked.connect(self._close_or_cancel)
        self.confirm_box: QMessageBox | None = None  # the filing question while it is asked

        form = QFormLayout()
        form.addRow("Figure layout", self.layout_box)
        form.addRow("Resolution", self.resolution_box)
        form.addRow("Folder", folder_row)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addWidget(self.kinds)
        side.addWidget(outputs)
        side.addWidget(self.deidentify)
        side.addWidget(self.identity_warning)
        side.addStretch(1)
        side.addWidget(self.progress)
        side.addWidget(self.status)
        body = QHBoxLayout()
        body.addWidget(self.preview, 3)
        body.addLayout(side, 2)
        root = QVBoxLayout(self)
        root.addLayout(body)
        root.addWidget(self.buttons)

        # Coalesce quick successive changes into one preview.
        self._preview_timer.timeout.connect(self._start_preview)
        self.layout_box.currentIndexChanged.connect(self._preview_timer.start)
        self._update_buttons()
        self._preview_timer.start()

    # -- state -------------------------------------------------------------------------------

    def options(self, dpi: int | None = None) -> FigureOptions:
        """The figure options the dialog's controls and the view describe."""
        return self.view.figure_options(kind=self.layout_box.currentData(),
                                        dpi=dpi or self.resolution_box.currentData())

    def study_image(self):
        """The DICOM image whose study an export is filed into (None when there is none)."""
        return self._image

    def _preview_timer_start(self, *_args) -> None:
        self._preview_timer.start()

    def kind(self) -> str:
        """The kind of export chosen: :data:`RESEARCH` or :data:`PATIENT_STUDY`."""
        return self.kinds.kind()

    def _kind_changed(self) -> None:
        filing = self.kind() == PATIENT_STUDY
        # Filing writes the identified DICOM objects; the research outputs do not apply.
        self._outputs_box.setVisible(not filing)
        self.deidentify.setVisible(not filing)
        self.identity_warning.setVisible(filing or not self.deidentify.isChecked())
        self.export_button.setText("File to study…" if filing else "Export")
        self._update_buttons()

    def formats(self) -> list[str]:
        """The chosen output formats."""
        return [fmt for fmt, box in self.output_checks.items() if box.isChecked()]

    def _default_folder(self) -> Path:
        from gui.export_folder import EXPORTS, export_root

        settings = getattr(self.parent(), "settings", None)
        root = export_root(settings) if settings is not None else Path.home() / EXPORTS
        return root / free_case_folder(root)

    def _update_buttons(self) -> None:
        busy = self._cancel is not None
        ready = self.kinds.node() is not None if self.kind() == PATIENT_STUDY \
            else bool(self.formats())
        self.export_button.setEnabled(ready and bool(self.folder.text()) and not busy)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    # -- preview -----------------------------------------------------------------------------

    def _start_preview(self) -> None:
        self._preview_generation += 1
        options = self.options()
        # Draw at roughly the label's size: a preview does not need print resolution.
        pixels = max(self.preview.width(), _PREVIEW_WIDTH) * self.devicePixelRatioF()
        options.dpi = max(30, int(pixels / options.width))
        try:
            draw, args = self.preview_call(options)
        except LucidaError as exc:
            self.preview.setText(f"No preview: {exc.one_line()}")
            return
        worker = create_worker(_preview_outcome, self._preview_generation, draw, *args,
                               _start_thread=False, _ignore_errors=True)
        # Bound methods of this dialog: Qt queues them to the GUI thread and drops them if the
        # dialog is gone.
        worker.returned.connect(self._show_preview)
        self._run(worker)

    def preview_call(self, options: FigureOptions) -> tuple:
        """What draws the preview off the GUI thread: ``(function, arguments)``; the function
        returns the figure (:func:`_preview_outcome` turns a failure into the line shown).

        Raises
        ------
        LucidaError
            When the view has nothing to draw (shown as "No preview").
        """
        shown = export_view(self._result, options, self.all_maps.isChecked()).figure
        return _draw_preview, (shown, self._image, options,
                               self.kind() == RESEARCH and not self.deidentify.isChecked())

    def _show_preview(self, outcome: tuple) -> None:
        generation, figure, error = outcome
        if generation != self._preview_generation:
            return  # a newer preview is on its way
        if figure is None:
            self.preview.setText(f"No preview: {error}")
            return
        self.preview_burned_in = list(figure.burned_in)
        pixmap = QPixmap.fromImage(qimage_from_array(figure.rgb))
        self.preview.setPixmap(
            pixmap.scaled(
                self.preview.size(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
        self.preview.setToolTip(figure.caption)

    # -- export ------------------------------------------------------------------------------

    def export(self) -> None:
        """Make the chosen kind of export on a worker thread; progress and outcome show here.

        Filing into the patient's study asks first (:meth:`confirm_filing`); declined, nothing
        is written or sent.
        """
        if self._cancel is not None:
            return
        if self.kind() == PATIENT_STUDY:
            self._file_to_study()
            return
        if not self.formats():
            return
        self._start("Exporting…")
        write, args, kwargs = self.write_call(Path(self.folder.text()).expanduser())
        worker = create_worker(write, *args, **kwargs,
                               progress=self._progress.sig_progress.emit, cancel=self._cancel,
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_exported)
        worker.errored.connect(self._on_failed)
        self._run(worker)

    def write_call(self, folder: Path) -> tuple:
        """What writes the research export into ``folder``: ``(function, args, kwargs)``; the
        function also takes ``progress`` and ``cancel`` and returns the paths written."""
        return write_reports, (self._result, self._image, folder, self.formats()), {
            "keep_identifiers": not self.deidentify.isChecked(),
            "figure_options": self.options(), "view": self.view,
            "all_maps": self.all_maps.isChecked()}

    def _start(self, text: str) -> None:
        self._cancel = CancelToken()
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setStyleSheet("")
        self.status.setText(text)
        self.close_button.setText("Cancel")
        self._update_buttons()

    def confirm_filing(self, node) -> bool:
        """Ask whether to file into the patient's study, naming the patient, study and node."""
        box = QMessageBox(QMessageBox.Icon.Warning, "File to the patient's study",
                          filing_question(self.study_image(), node),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setText("File to study")
        box.button(QMessageBox.StandardButton.No).setText("Don't file")
        self.confirm_box = box
        try:
            return box.exec() == QMessageBox.StandardButton.Yes
        finally:
            self.confirm_box = None

    def filing_call(self, folder: Path) -> tuple:
        """What files the reviewed maps into the study: ``(function, args, kwargs)``; the
        function also takes ``progress`` and ``cancel`` and returns one line.

        Raises
        ------
        LucidaError
            When the request cannot be built (said before the confirmation is asked).
        """
        from engine.pacs.filing import file_reviewed

        options = self.options()
        reviewed = export_view(self._result, options, self.all_maps.isChecked()).reviewed
        return file_reviewed, (reviewed, self._image, folder), {
            "options": options, "metrics": self.view.metrics, "verdict": self.view.verdict}

    def _file_to_study(self) -> None:
        node = self.kinds.node()
        if node is None:
            return
        folder = Path(self.folder.text()).expanduser()
        try:
            file, args, kwargs = self.filing_call(folder)
        except LucidaError as exc:
            self.status.setStyleSheet("color: #a00000;")
            self.status.setText(exc.one_line())
            return
        if not self.confirm_filing(node):
            self.status.setStyleSheet("")
            self.status.setText("Not filed: nothing was written or sent.")
            return
        self._start(f"Filing into the patient's study on {node.name}…")
        worker = create_worker(
            file, *args, node, **kwargs, progress=self._progress.sig_progress.emit,
            cancel=self._cancel, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda line, f=folder: self._on_filed(line, f))
        worker.errored.connect(self._on_failed)
        self._run(worker)

    def _on_filed(self, line: str, folder: Path) -> None:
        from engine.pacs.filing import FILED_FOLDER

        self._finish()
        self.status.setText(f"Filed into the patient's study (identifiers kept): {line}. "
                            f"A copy is in {folder / FILED_FOLDER}")
        self.sig_exported.emit(sorted((folder / FILED_FOLDER).glob("*.dcm")))

    def idle(self) -> bool:
        """Whether no preview, export or filing is running on a worker thread."""
        return not self._workers

    def _run(self, worker) -> None:
        self._workers.add(worker)
        worker.finished.connect(lambda w=worker: self._workers.discard(w))
        worker.start()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(100 * fraction)))
        self.status.setText(message[:1].upper() + message[1:] + "…")

    def _finish(self) -> None:
        self._cancel = None
        self.progress.setVisible(False)
        self.close_button.setText("Close")
        self._update_buttons()

    def _on_exported(self, paths: list) -> None:
        self._finish()
        folder = paths[0].parent if paths else self.folder.text()
        kind = ("de-identified, new UIDs" if self.deidentify.isChecked()
                else "identifiers kept, new UIDs")
        self.status.setText(f"Wrote {len(paths)} files to {folder} (research export: {kind})")
        self.sig_exported.emit(list(paths))

    def _on_failed(self, exc: BaseException) -> None:
        self._finish()
        if isinstance(exc, Cancelled):
            self.status.setText("Export cancelled; nothing was written.")
            return
        text = (
            exc.one_line()
            if isinstance(exc, LucidaError)
            else (f"Export failed ({type(exc).__name__}: {exc})")
        )
        self.status.setStyleSheet("color: #a00000;")
        self.status.setText(text)

    def done(self, result: int) -> None:
        """Close the dialog; an export still running is cancelled and writes nothing."""
        if self._cancel is not None:
            self._cancel.cancel()
        super().done(result)

    def _close_or_cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
        else:
            self.reject()
