"""The Audit view's cluster browser: each class's heatmap clusters, their exemplars, the images.

The clusters are those discovery wrote to ``clusters.json``; what each cell and exemplar says
is laid out by :mod:`engine.audit.opened`. A click on a cluster lists its exemplars (the members
closest to its centre, then the most atypical); a click on an exemplar opens that image in the
viewer with the audit's method and layer, as a click on a table row does.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.audit import opened
from engine.audit.outputs import heat_rgb
from engine.audit.view_model import row_image

#: Side of a cluster's mean map in the grid, in pixels.
THUMB = 112


def map_icon(mean_map: np.ndarray) -> QIcon:
    """A mean map coloured as the audit's figures are, as an icon."""
    rgb = np.ascontiguousarray(heat_rgb(mean_map))
    image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1],
                   QImage.Format.Format_RGB888).copy()  # the copy owns its pixels
    return QIcon(QPixmap.fromImage(image).scaled(
        THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation))


class QtClusterBrowser(QWidget):
    """The clusters of the audits on show, one grid row per class, and a cluster's exemplars.

    Signals
    -------
    sig_open_image(str audit, str path, str method, str layer)
        An exemplar was clicked: open this image with its audit's (by its name on show)
        model, method and layer.
    sig_message(str)
        A line for the view's status (an exemplar whose image is unknown here).
    """

    sig_open_image = Signal(str, str, str, str)
    sig_message = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        #: Per audit on show: ``(clusters.json content or None, audit.json content, cases)``.
        self._sources: dict[str, tuple[dict | None, dict, dict]] = {}
        #: The cluster buttons of the grid, by ``(class, index)``.
        self.buttons: dict[tuple[str, int], QToolButton] = {}
        self._group = QButtonGroup(self)
        self.audit_combo = QComboBox()
        self.audit_combo.setToolTip("Whose clusters the grid shows")
        self.audit_combo.currentTextChanged.connect(self._show_audit)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.grid_host = QWidget()
        # The cluster whose exemplars are listed stands out from the others.
        self.grid_host.setStyleSheet("QToolButton:checked { border: 2px solid palette(highlight);"
                                     " border-radius: 4px; }")
        self.grid = QGridLayout(self.grid_host)
        grid_scroll = QScrollArea()
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setWidget(self.grid_host)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.audit_combo)
        left_layout.addWidget(self.note)
        left_layout.addWidget(grid_scroll, 1)

        self.exemplar_title = QLabel("Click a cluster to list its exemplars.")
        self.exemplar_title.setWordWrap(True)
        self.exemplar_list = QListWidget()
        self.exemplar_list.setToolTip("Click an exemplar to open it in the viewer with its map; "
                                      "the number is its distance from the cluster's centre")
        self.exemplar_list.itemClicked.connect(self._exemplar_clicked)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.exemplar_title)
        right_layout.addWidget(self.exemplar_list, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        # The grid gets most of the width: its cells are what the user compares.
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter)
        self.set_audits({})

    def set_audits(self, sources: dict[str, tuple[dict | None, dict, dict]]) -> None:
        """Show the clusters of ``{name: (clusters, audit, case paths)}``, the first audit first."""
        self._sources = dict(sources)
        self.audit_combo.blockSignals(True)
        self.audit_combo.clear()
        self.audit_combo.addItems(list(self._sources))
        self.audit_combo.blockSignals(False)
        self.audit_combo.setVisible(len(self._sources) > 1)
        self._show_audit(self.audit_combo.currentText())

    def _clear_grid(self) -> None:
        for button in self.buttons.values():
            self._group.removeButton(button)
        self.buttons = {}
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.exemplar_list.clear()
        self.exemplar_title.setText("Click a cluster to list its exemplars.")

    def _show_audit(self, name: str) -> None:
        self._clear_grid()
        clusters = self._sources.get(name, (None,))[0]
        if not clusters:
            self.note.setText("" if not self._sources else
                              "This audit has no clusters.json (written by audits since "
                              "heatmap discovery): run it again to cluster its maps.")
            return
        self.note.setText("Clusters of each class's heatmaps (spectral clustering); the line "
                          "under each names its most over-represented metadata.")
        for r, (cls, note, cells) in enumerate(opened.cluster_grid(clusters)):
            self.grid.addWidget(QLabel(cls), r, 0)
            if not cells:
                self.grid.addWidget(QLabel(note), r, 1)
            for c, cell in enumerate(cells, start=1):
                button = QToolButton()
                button.setCheckable(True)
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
                button.setIcon(map_icon(cell.mean_map))
                button.setIconSize(QSize(THUMB, THUMB))
                button.setText(cell.caption)
                button.setToolTip(cell.tooltip)
                button.clicked.connect(lambda _c=False, k=(cell.cls, cell.index):
                                       self._cluster_clicked(*k))
                self._group.addButton(button)
                self.buttons[(cell.cls, cell.index)] = button
                self.grid.addWidget(button, r, c)
        self.grid.setColumnStretch(self.grid.columnCount(), 1)
        self.grid.setRowStretch(self.grid.rowCount(), 1)

    def _cluster_clicked(self, cls: str, index: int) -> None:
        clusters = self._sources[self.audit_combo.currentText()][0]
        cluster = opened.cluster_of(clusters, cls, index)
        self.exemplar_title.setText(f"{cls}, cluster #{cluster['id']} ({cluster['size']} "
                                    "images): the members closest to its centre (central), "
                                    "then the most atypical. Click one to open it.")
        self.exemplar_list.clear()
        for ex in opened.exemplars(cluster):
            item = QListWidgetItem(ex.text)
            item.setData(Qt.ItemDataRole.UserRole, (ex.case, ex.path))
            self.exemplar_list.addItem(item)

    def _exemplar_clicked(self, item: QListWidgetItem) -> None:
        name = self.audit_combo.currentText()
        _, audit, cases = self._sources[name]
        case, path = item.data(Qt.ItemDataRole.UserRole)
        path, message = row_image({"case": case, "path": path}, cases)
        if path:
            self.sig_open_image.emit(name, path, audit["method"], audit["layer"])
        elif message:
            self.sig_message.emit(message)
