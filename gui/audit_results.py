"""The Audit view's results: the per-image table, the charts, the mean heatmap grid, the
cluster browser and the performance table.

It shows one audit, or two (another model on the same data) side by side, as
:mod:`engine.audit.view_model` and :mod:`engine.audit.opened` lay them out; the first audit is
compared with the second.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.audit import opened
from engine.audit import view_model as vm
from gui.adaptive_splitter import QtAdaptiveSplitter
from gui.audit_charts import QtBarChart
from gui.audit_clusters import QtClusterBrowser

#: Side of a mean heatmap in the grid, in pixels.
THUMB = 128
#: Least width of the Charts tab's words (finding, models table, verdicts), in pixels.
WORDS_WIDTH = 380


def _scrolling(widget: QWidget) -> QScrollArea:
    """A tab's page that scrolls rather than forcing its height on the view."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(widget)
    return area


class QtAuditResults(QTabWidget):
    """Tabs Images, Charts, Mean heatmaps, Clusters and Performance of the audits on show.

    Signals
    -------
    sig_open_image(str path, str method, str layer)
        A table row was clicked: open this image with its audit's method and layer, and with
        :attr:`audited_model`.
    sig_message(str)
        A line for the view's status (a row whose image is unknown here).

    Parameters
    ----------
    title_of : callable
        A method's registry key to its display title.
    """

    sig_open_image = Signal(str, str, str)
    sig_message = Signal(str)

    def __init__(self, title_of: Callable[[str], str], parent=None) -> None:
        super().__init__(parent)
        self._title_of = title_of
        #: Every audit on show, by name, in order: ``(spec, audit, folder)``.
        self.audits: dict[str, tuple[str | None, dict, Path]] = {}
        #: The model spec of the audit the table lists (its rows open with it).
        self.audited_model: str | None = None
        #: Per audit on show, its case names to their files (known for audits run here).
        self._case_paths: dict[str, dict[str, Path]] = {}
        #: Per audit on show, its clusters.json and performance.json (None where not written).
        self._findings: dict[str, dict] = {}
        self._table_audit: dict | None = None
        self._table_cases: dict[str, Path] = {}

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
        self.charts = {"share": QtBarChart("Saliency share per group"),
                       "enrichment": QtBarChart("Enrichment per group"),
                       "contrast": QtBarChart("Each group against the rest"),
                       "accuracy": QtBarChart("Accuracy per group")}
        self.role_combo = QComboBox()
        self.role_combo.currentTextChanged.connect(self._show_role)
        role_row = QHBoxLayout()
        role_row.addWidget(QLabel("Region"))
        role_row.addWidget(self.role_combo, 1)
        words = QWidget()
        words_layout = QVBoxLayout(words)
        words_layout.addLayout(role_row)
        words_layout.addWidget(self.finding)
        words_layout.addWidget(self.models_table)
        words_layout.addWidget(self.verdicts)
        words_layout.addStretch(1)
        plots = QWidget()
        chart_grid = QGridLayout(plots)
        for k, chart in enumerate(self.charts.values()):
            chart_grid.addWidget(chart, k // 2, k % 2)
        words_scroll = _scrolling(words)
        words_scroll.setMinimumWidth(WORDS_WIDTH)
        charts = QtAdaptiveSplitter(words_scroll, plots)

        self.grid_host = QWidget()
        self.grid_layout = QGridLayout(self.grid_host)
        self.clusters = QtClusterBrowser()
        self.clusters.sig_open_image.connect(self._open_exemplar)
        self.clusters.sig_message.connect(self.sig_message)
        self.performance_host = QWidget()
        self.performance_layout = QVBoxLayout(self.performance_host)

        self.addTab(images, "Images")
        self.addTab(_scrolling(charts), "Charts")
        self.addTab(_scrolling(self.grid_host), "Mean heatmaps")
        self.addTab(self.clusters, "Clusters")
        self.addTab(_scrolling(self.performance_host), "Performance")
        self.clear_results()

    @property
    def audit(self) -> dict | None:
        """The first audit on show (``audit.json``'s content), or None."""
        return next(iter(self.audits.values()))[1] if self.audits else None

    @property
    def out_dir(self) -> Path | None:
        """The folder of the first audit on show, or None."""
        return next(iter(self.audits.values()))[2] if self.audits else None

    def _audit_contents(self) -> dict[str, dict]:
        return {name: audit for name, (_, audit, _) in self.audits.items()}

    def clear_results(self) -> None:
        """Put every audit away: the table, charts and maps are empty until the next one."""
        self.audits, self._case_paths, self._findings = {}, {}, {}
        self.audited_model, self._table_audit, self._table_cases = None, None, {}
        for combo in (self.table_audit, self.role_combo):
            combo.blockSignals(True)
            combo.clear()
            combo.blockSignals(False)
        self.table_audit.setVisible(False)
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.models_table.setRowCount(0)
        self.models_table.setColumnCount(0)
        for label in (self.verdicts, self.finding):
            label.setText("")
        for chart in self.charts.values():
            chart.set_chart(vm.ChartData(""))
        self._fill_grid([])
        self.clusters.set_audits({})
        self._fill_performance()

    def show_results(self, out_dir: str | Path, audit: dict | None = None,
                     spec: str | None = None, case_paths: dict | None = None) -> None:
        """Show the audit written to ``out_dir``, putting away any audit shown before.

        ``spec`` is the model spec the audit ran with (rows open with it); without it, the
        model name audit.json records. ``case_paths`` maps the de-identified outputs' case
        names to their files (an audit run here); without it, rows open by a kept ``path``.
        """
        self.clear_results()
        self._add_audit(out_dir, audit, spec, case_paths)
        roles = list(self.audit["roi_share"])
        self.role_combo.blockSignals(True)
        self.role_combo.addItems(roles)
        self.role_combo.setCurrentText(vm.default_role(roles))
        self.role_combo.blockSignals(False)
        self._refresh()

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
        self._findings[name] = opened.findings(folder)

    def status_line(self) -> str:
        """The summary of every audit on show, in one line."""
        return vm.status_line(self._audit_contents())

    def comparison(self) -> dict | None:
        """The comparison of the audits on show on the region shown (None for one audit)."""
        return vm.comparison(self._audit_contents(), self.role_combo.currentText())

    def _refresh(self) -> None:
        """Redraw the table choice, the model comparison, the charts and the maps."""
        self.table_audit.blockSignals(True)
        self.table_audit.clear()
        self.table_audit.addItems(list(self.audits))
        self.table_audit.blockSignals(False)
        self.table_audit.setVisible(len(self.audits) > 1)
        self._show_table_of(self.table_audit.currentText())
        self.verdicts.setText(vm.verdict_text(self._audit_contents()))
        self._fill_grid([(name, folder / "mean_heatmaps")
                         for name, (_, _, folder) in self.audits.items()])
        self._show_role(self.role_combo.currentText())
        self.clusters.set_audits({name: (self._findings[name]["clusters"], audit,
                                         self._case_paths[name])
                                  for name, (_, audit, _) in self.audits.items()})
        self._fill_performance()

    def _fill_performance(self) -> None:
        """One read-only table per audit on show: each group and its complement, with CIs."""
        while self.performance_layout.count():
            widget = self.performance_layout.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)  # gone from findChildren at once
                widget.deleteLater()
        for name in self.audits:
            perf = self._findings[name]["performance"]
            title = QLabel(f"{name}: performance by group (95% bootstrap CI)" if perf else
                           f"{name}: no performance.json (audits write it since performance "
                           "by group): run the audit again for the table")
            title.setStyleSheet("font-weight: bold")
            self.performance_layout.addWidget(title)
            if not perf:
                continue
            cols, rows = opened.performance_table(perf)
            table = QTableWidget(len(rows), len(cols))
            table.setObjectName(f"performance:{name}")
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            table.verticalHeader().setVisible(False)
            table.setHorizontalHeaderLabels(cols)
            for r, cells in enumerate(rows):
                for c, text in enumerate(cells):
                    table.setItem(r, c, QTableWidgetItem(text))
            table.resizeColumnsToContents()
            table.setMinimumHeight(min(420, table.horizontalHeader().height() + 4 + sum(
                table.rowHeight(r) for r in range(len(rows)))))
            self.performance_layout.addWidget(table)
        self.performance_layout.addStretch(1)

    def performance_tables(self) -> list[QTableWidget]:
        """The performance tables on show, one per audit with a performance.json."""
        return self.performance_host.findChildren(QTableWidget)

    def _open_exemplar(self, name: str, path: str, method: str, layer: str) -> None:
        """An exemplar opens with its own audit's model, as its table rows do."""
        self.audited_model = self.audits[name][0]
        self.sig_open_image.emit(path, method, layer)

    def _show_table_of(self, name: str) -> None:
        if name not in self.audits:
            return
        spec, audit, folder = self.audits[name]
        self.audited_model = spec
        self._table_audit = audit
        self._table_cases = self._case_paths.get(name, {})
        cols, rows = vm.read_table(folder / "audit.csv")
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(len(rows))
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.DisplayRole, value)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def _fill_models_table(self, role: str) -> None:
        cols, rows = vm.models_table(self._audit_contents(), role, self._title_of)
        self.models_table.clear()
        self.models_table.setColumnCount(len(cols))
        self.models_table.setHorizontalHeaderLabels(cols)
        self.models_table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self.models_table.setItem(r, c, QTableWidgetItem(text))
        self.models_table.resizeColumnsToContents()
        header = self.models_table.horizontalHeader().height()
        self.models_table.setFixedHeight(header + 4 + sum(
            self.models_table.rowHeight(r) for r in range(self.models_table.rowCount())))
        self.finding.setText(vm.finding(self._audit_contents(), role))
        self.finding.setVisible(bool(self.finding.text()))

    def _show_role(self, role: str) -> None:
        if not self.audits or role not in self.audit["roi_share"]:
            return
        self._fill_models_table(role)
        for name, data in vm.charts(self._audit_contents(), role, self._title_of).items():
            self.charts[name].set_chart(data)

    def _row_clicked(self, row: int, _column: int) -> None:
        audit = self._table_audit
        if not audit:
            return
        self.audited_model = self.audits[self.table_audit.currentText()][0]
        cells = {self.table.horizontalHeaderItem(c).text(): self.table.item(row, c).text()
                 for c in range(self.table.columnCount())}
        path, message = vm.row_image(cells, self._table_cases)
        if path:
            self.sig_open_image.emit(path, audit["method"], audit["layer"])
        elif message:
            self.sig_message.emit(message)

    def _fill_grid(self, folders: list[tuple[str, Path]]) -> None:
        while self.grid_layout.count():
            widget = self.grid_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        groups, rows = vm.mean_map_grid(folders)
        for j, g in enumerate(groups):
            self.grid_layout.addWidget(QLabel(g), 0, j + 1, Qt.AlignmentFlag.AlignCenter)
        for i, (label, cells) in enumerate(rows, start=1):
            self.grid_layout.addWidget(QLabel(label), i, 0)
            for j, cell in enumerate(cells):
                if cell is None:
                    continue
                thumb = QLabel()
                thumb.setPixmap(QPixmap(str(cell.path)).scaled(
                    THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation))
                thumb.setToolTip(cell.tooltip)
                self.grid_layout.addWidget(thumb, i, j + 1)
