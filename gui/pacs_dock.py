"""The PACS dock: search a node, see the studies, retrieve one (the button, or a double-click).

The node file is read again whenever it changes (and each time the dock is used), so a node
added while the window runs is there at once; with no node, the dock says where the file goes.

Searches and retrievals run on a thread of their own (network waits never block the window).
A retrieval can be cancelled, resumes what is already on disk, and reports the study folder as
instances arrive (:attr:`QtPacsDock.sig_study_arrived`), so the window can open the study in the
browser while the rest comes in; complete instances only ever appear there.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, Qt, QThread, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.core.cancel import Cancelled, CancelToken
from engine.core.errors import LucidaError
from engine.studies.names import person_name

#: Columns of the results table.
COLUMNS = ("Patient", "Study", "Date", "Modality", "Series")
#: Seconds between two "the study has grown" signals while a retrieve runs.
ARRIVAL_INTERVAL = 1.0


class _Task(QObject):
    """One piece of network work, run on its own thread; reports by queued signals."""

    sig_done = Signal(object)
    sig_failed = Signal(str)
    sig_progress = Signal(float, str)
    sig_cancelled = Signal()

    def __init__(self, work) -> None:
        super().__init__()
        self._work = work
        self.cancel = CancelToken()

    def run(self) -> None:
        try:
            self.sig_done.emit(self._work(self))
        except Cancelled:
            self.sig_cancelled.emit()
        except LucidaError as exc:
            self.sig_failed.emit(exc.one_line())
        except Exception as exc:  # noqa: BLE001 - a worker must report, never die silently
            self.sig_failed.emit(f"internal error ({type(exc).__name__}: {exc})")


class QtPacsDock(QWidget):
    """Search form, results table and retrieve progress for the PACS nodes of the node file.

    Parameters
    ----------
    config : PacsConfig, optional
        The nodes; read from the node file by default. A config read from a file
        (``load_config(path)``) follows that file as it changes.
    parent : QWidget, optional

    Signals
    -------
    sig_study_arrived(str folder)
        A retrieved study folder holds new complete instances (sent as they arrive, at most
        once a second, and once more at the end): open it in the study browser.
    sig_retrieved(str line)
        A retrieve finished; the line says what came, from where, how fast.
    sig_error(str one_line)
        A search or retrieve failed; the line names the node and the fix.
    """

    sig_study_arrived = Signal(str)
    sig_retrieved = Signal(str)
    sig_error = Signal(str)

    def __init__(self, config=None, parent=None) -> None:
        super().__init__(parent)
        from engine.pacs.cache import StudyCache
        from engine.pacs.config import NodeFile, PacsConfig

        #: The file the nodes come from, read again when it changes (None: a fixed config).
        self.node_file = (NodeFile(config.path if config is not None else None)
                          if config is None or config.path is not None else None)
        error = ""
        try:
            self.config = config if config is not None else self.node_file.read()
        except LucidaError as exc:
            self.config, error = PacsConfig(path=self.node_file.path), exc.one_line()
        if config is not None and self.node_file is not None:
            self.node_file.read()  # what was given is what the file holds now
        self.cache = StudyCache.from_config(self.config)
        self._threads: list[tuple[QThread, _Task]] = []
        self._retrieve: _Task | None = None
        self._build()
        if error:
            self.status.setText(error)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(lambda _path: self.reload())
        self._watcher.directoryChanged.connect(lambda _path: self.reload())
        self._watch()

    def _watch(self) -> None:
        """Watch the node file and its folder (an editor may replace the file)."""
        if self.node_file is None:
            return
        wanted = [str(p) for p in (self.node_file.path, self.node_file.path.parent)
                  if p.exists()]
        watched = self._watcher.files() + self._watcher.directories()
        missing = [p for p in wanted if p not in watched]
        if missing:
            self._watcher.addPaths(missing)

    def reload(self) -> None:
        """Read the node file again if it changed; the node list and the hint follow it."""
        from engine.pacs.cache import StudyCache

        self._watch()
        if self.node_file is None or not self.node_file.changed():
            return
        try:
            config = self.node_file.read()
        except LucidaError as exc:
            self.status.setText(exc.one_line())  # the nodes read before stay usable
            return
        chosen = self.node.currentText()
        self.config = config
        if self._retrieve is None:
            self.cache = StudyCache.from_config(config)
        self.node.clear()
        self.node.addItems(sorted(config.nodes))
        if chosen in config.nodes:
            self.node.setCurrentText(chosen)
        self.search_button.setEnabled(bool(config.nodes))
        self.status.setText(self._hint())

    def _hint(self) -> str:
        from engine.pacs.config import no_node_hint

        if not self.config.nodes:
            return no_node_hint(self.config.path)
        return "Select a study and press Retrieve (or double-click it)."

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.reload()
        super().showEvent(event)

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.node = QComboBox()
        self.node.addItems(sorted(self.config.nodes))
        self.patient_id, self.patient_name = QLineEdit(), QLineEdit()
        self.accession, self.modality = QLineEdit(), QLineEdit()
        self.date_from, self.date_to = QLineEdit(), QLineEdit()
        self.patient_name.setPlaceholderText("DOE^* (wildcards)")
        self.modality.setPlaceholderText("CT, MR, CR…")
        for field in (self.date_from, self.date_to):
            field.setPlaceholderText("YYYYMMDD")
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        form = QFormLayout()
        form.addRow("Node", self.node)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Accession", self.accession)
        form.addRow("Modality", self.modality)
        form.addRow("Date", dates)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.setToolTip("Retrieve the selected study and open it")
        self.retrieve_button.setEnabled(False)
        self.retrieve_button.clicked.connect(
            lambda: self.retrieve_row(self.table.currentRow()))
        for field in (self.patient_id, self.patient_name, self.accession, self.modality,
                      self.date_from, self.date_to):
            field.returnPressed.connect(self.search)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.cellDoubleClicked.connect(lambda row, _column: self.retrieve_row(row))
        self.table.itemSelectionChanged.connect(
            lambda: self.retrieve_button.setEnabled(bool(self.table.selectedItems())))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_retrieve)
        self.status = QLabel(self._hint())
        self.status.setWordWrap(True)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.retrieve_button)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        self.search_button.setEnabled(bool(self.config.nodes))

    # -- work --------------------------------------------------------------------------------

    def _start(self, work, on_done, on_progress=None) -> _Task:
        thread, task = QThread(self), _Task(work)
        task.moveToThread(thread)
        thread.started.connect(task.run)
        task.sig_done.connect(on_done)
        task.sig_failed.connect(self._failed)
        if on_progress is not None:
            task.sig_progress.connect(on_progress)
        for signal in (task.sig_done, task.sig_failed, task.sig_cancelled):
            signal.connect(thread.quit)
        thread.finished.connect(self._prune)
        self._threads.append((thread, task))
        thread.start()
        return task

    def _prune(self) -> None:
        for thread, _task in self._threads:
            if thread.isFinished():
                thread.deleteLater()
        self._threads = [(t, k) for t, k in self._threads if not t.isFinished()]

    def _failed(self, line: str) -> None:
        self.search_button.setEnabled(bool(self.config.nodes))
        self._end_retrieve()
        self.status.setText(line)
        self.sig_error.emit(line)

    def current_node(self):
        """The node chosen in the form."""
        return self.config.node(self.node.currentText())

    def query(self):
        """The search form as a :class:`~engine.pacs.query.StudyQuery`.

        Raises
        ------
        UsageError
            For a date that is not YYYYMMDD.
        """
        from engine.pacs.query import StudyQuery, parse_date_range

        start, end = self.date_from.text().strip(), self.date_to.text().strip()
        date = parse_date_range(f"{start}-{end}") if start or end else ""
        return StudyQuery(patient_id=self.patient_id.text().strip(),
                          patient_name=self.patient_name.text().strip(),
                          accession=self.accession.text().strip(),
                          modality=self.modality.text().strip().upper(), date=date)

    def search(self) -> None:
        """Search the chosen node with the form's keys, on a thread."""
        from engine.pacs import connect

        self.reload()
        try:
            node, query = self.current_node(), self.query()
        except LucidaError as exc:
            self._failed(exc.one_line())
            return

        def work(_task):
            conn = connect(node)
            try:
                return conn.find_studies(query)
            finally:
                conn.close()

        self.search_button.setEnabled(False)
        self.status.setText(f"Searching {node.name}…")
        self._start(work, self.set_results)

    def set_results(self, studies) -> None:
        """Fill the table with studies (a list of :class:`~engine.pacs.query.StudyMatch`)."""
        self.search_button.setEnabled(True)
        self.table.setRowCount(len(studies))
        for row, study in enumerate(studies):
            name = person_name(study.patient_name)
            patient = f"{name} ({study.patient_id})" if name and study.patient_id else (
                name or study.patient_id)
            date = study.date
            if len(date) == 8 and date.isdigit():
                date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
            values = (patient, study.description or "(no description)", date,
                      "/".join(study.modalities),
                      "" if study.series_count is None else str(study.series_count))
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, study.study_uid)
                item.setToolTip(study.study_uid)
                self.table.setItem(row, column, item)
        self.status.setText(f"{len(studies)} studies found. Select one and press Retrieve "
                            "(or double-click it).")

    def study_uid(self, row: int) -> str:
        """The Study Instance UID shown in a row."""
        return str(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))

    def retrieve_row(self, row: int) -> None:
        """Retrieve the study of a table row into the cache, on a thread."""
        self.retrieve(self.study_uid(row))

    def retrieve(self, study_uid: str) -> None:
        """Retrieve a study into the cache; a retrieve already running is cancelled first."""
        from engine.pacs.retrieve import retrieve, safe_name

        if self._retrieve is not None:
            self._retrieve.cancel.cancel()
        self.reload()
        try:
            node = self.current_node()
        except LucidaError as exc:
            self._failed(exc.one_line())
            return
        folder = str(self.cache.folder / safe_name(study_uid))
        last = [0.0]

        def work(task: _Task):
            def progress(fraction: float, message: str = "") -> None:
                task.sig_progress.emit(fraction, message)

            def arrived(_path: Path) -> None:
                now = time.monotonic()
                if now - last[0] >= ARRIVAL_INTERVAL:
                    last[0] = now
                    self.sig_study_arrived.emit(folder)

            return retrieve(node, study_uid, cache=self.cache, progress=progress,
                            cancel=task.cancel, on_instance=arrived)

        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.status.setText(f"Retrieving from {node.name}…")
        task = self._start(work, self._retrieved, self._retrieve_progress)
        task.sig_cancelled.connect(self._retrieve_cancelled)
        self._retrieve = task

    def _retrieve_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)

    def _retrieved(self, report) -> None:
        self._end_retrieve()
        self.status.setText(report.line())
        self.sig_study_arrived.emit(str(report.folder))
        self.sig_retrieved.emit(report.line())

    def _retrieve_cancelled(self) -> None:
        self._end_retrieve()
        self.status.setText("Retrieve cancelled; retrieve the study again to resume.")

    def _end_retrieve(self) -> None:
        self._retrieve = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)

    def cancel_retrieve(self) -> None:
        """Stop the running retrieve; complete instances stay, so the next one resumes."""
        if self._retrieve is not None:
            self._retrieve.cancel.cancel()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Cancel the work in flight and wait for its threads (call before closing)."""
        for thread, task in list(self._threads):
            task.cancel.cancel()
            thread.quit()
            thread.wait(timeout_ms)
