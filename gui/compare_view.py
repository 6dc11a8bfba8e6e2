"""Compare views: methods (rows) × layers (columns), or model A | model B, zoom and pan synced.

:class:`QtCompareGrid` shows one model's maps for several methods and layers;
:class:`QtModelCompareView` shows two models' maps of the same image, method and class side by
side, with zoom, pan and window synced between them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.export.figure import probability_text
from gui.overlay_layer import OverlayLayer, map_info, owner_key
from gui.view_annotations import QtViewAnnotations
from gui.viewer import QtImageViewer, qimage_from_array

#: Display settings a cell copies from the main overlay layer.
SHARED_SETTINGS = ("opacity", "colormap", "threshold", "scale", "visible")
#: Cells built per pass of the event loop (each pass stays well under a frame's time).
CELLS_PER_PASS = 2
#: A cell's state while its map is being made; every job's end replaces it.
COMPUTING = "computing…"


class QtCompareCell(QWidget):
    """One titled viewer of the grid."""

    def __init__(self, method: str, layer: str, title: str, parent=None) -> None:
        super().__init__(parent)
        self.method, self.layer_name = method, layer
        self._warning = ""  # the map's own warning, kept while the scale or threshold change
        self.status = ""  # the state appended to the title (computing, failed, a warning)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet(
            "background: #202226; color: #e8e8e8; padding: 3px; font-weight: 600;"
        )
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.viewer = QtImageViewer(OverlayLayer(self))
        self.viewer.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.viewer.setMinimumSize(0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.viewer, 1)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_status(self, text: str) -> None:
        """Append a short state (computing, unavailable) to the title."""
        self.status = text
        base = self.title.text().split("  —  ")[0]
        self.title.setText(f"{base}  —  {text}" if text else base)

    def waiting(self) -> bool:
        """Whether the cell still waits for its map (no map, and no job has ended for it)."""
        return self.status == COMPUTING

    def show_map_state(self, warning: str | None = None) -> None:
        """Title the cell with its map's warning, and say when the map peaks under the
        threshold (on a shared scale a weaker method's map can draw nothing at all)."""
        if warning is not None:
            self._warning = warning
        layer = self.viewer.layer
        under = layer.heatmap is not None and layer.peak() < layer.threshold
        # Cells are narrow: the title says it in two words, its tooltip in full.
        self.set_status("; ".join(n for n in (self._warning, "under threshold" if under else "")
                                  if n))
        self.title.setToolTip(
            f"The map peaks at {100 * layer.peak():.0f} % of the scale, under the threshold "
            f"({100 * layer.threshold:.0f} %): nothing is drawn" if under else "")


class QtCompareGrid(QWidget):
    """Cells for every (method, layer) pair; all cells share zoom, pan and overlay settings.

    A new grid is built a few cells per pass of the event loop, each cell showing the image
    rendered once for all of them, so building a large grid never stalls the GUI thread.

    Parameters
    ----------
    settings : OverlayLayer
        The main overlay layer whose display settings every cell mirrors.
    """

    def __init__(self, settings: OverlayLayer, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.cells: dict[tuple[str, str], QtCompareCell] = {}
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._syncing = False
        self._spec: tuple | None = None
        self._todo: list[tuple] = []  # cells still to build: (row, col, method, layer, title)
        self._built: list = []  # called once every cell is built
        self._maps: dict[tuple[str, str], tuple] = {}  # maps that arrived before their cell
        # States for cells not built yet, per method or per (method, layer).
        self._status: dict[str | tuple[str, str], str] = {}
        self._outline: tuple = (None, None)  # a segmentation mask's (contours, frame)
        self._build_args: tuple = ()
        settings.sig_changed.connect(self._mirror)
        # The grid takes the room it is given; its cells must never make the window grow.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(0, 0)

    def set_grid(self, image, frame: int, methods: list[tuple[str, str]], layers: list[str],
                 window=None, invert: bool = False) -> bool:
        """Lay out one cell per (method, layer) over ``image``; return whether cells were made.

        Parameters
        ----------
        methods : list of (name, title)
            Rows, in order.
        layers : list of str
            Columns, in order.
        """
        spec = (image, frame, tuple(methods), tuple(layers))
        if spec == self._spec:
            # Same grid: keep the cells (and their zoom); only their maps are replaced.
            for cell in self.cells.values():
                cell.viewer.layer.heatmap = None
                cell.set_status(COMPUTING)
            self._maps.clear()
            self._status.clear()
            return False
        self._spec = spec
        self.clear()
        self._spec = spec
        rendered = None if image is None else QPixmap.fromImage(qimage_from_array(
            image.render(frame, window=window, invert=invert)))
        self._build_args = (image, frame, window, invert, rendered)
        self._todo = [(row, col, method, layer, f"{title} · {layer}")
                      for row, (method, title) in enumerate(methods)
                      for col, layer in enumerate(layers)]
        self._build_some()
        return True

    def clear(self) -> None:
        """Remove every cell."""
        for cell in self.cells.values():
            self._grid.removeWidget(cell)
            cell.deleteLater()
        self.cells.clear()
        self._maps.clear()
        self._status.clear()
        self._todo = []
        self._spec = None
        self._outline = (None, None)

    def set_outline(self, contours: list | None, frame: int | None = None) -> None:
        """Outline a segmentation model's predicted mask in every cell, as the main viewer does
        (:meth:`gui.viewer.QtImageViewer.set_outline`); None clears it."""
        self._outline = (contours, frame)
        for cell in self.cells.values():
            cell.viewer.set_outline(contours, frame=frame)

    def complete(self) -> bool:
        """Whether every cell of the grid is built."""
        return not self._todo

    def when_built(self, fn) -> None:
        """Call ``fn`` once every cell is built and has had a pass of the event loop to paint."""
        if self._todo:
            self._built.append(fn)
        else:
            QTimer.singleShot(0, fn)

    def _build_some(self) -> None:
        image, frame, window, invert, rendered = self._build_args
        for _ in range(min(CELLS_PER_PASS, len(self._todo))):
            row, col, method, layer, title = self._todo.pop(0)
            cell = QtCompareCell(method, layer, title)
            for name in SHARED_SETTINGS:
                setattr(cell.viewer.layer, name, getattr(self.settings, name))
            cell.viewer.set_image(image, frame, window, invert, rendered=rendered)
            cell.viewer.set_outline(self._outline[0], frame=self._outline[1])
            cell.viewer.sig_view_changed.connect(lambda v=cell.viewer: self._sync_from(v))
            cell.set_status(self._status.get((method, layer),
                                             self._status.get(method, COMPUTING)))
            self._grid.addWidget(cell, row, col)
            self.cells[(method, layer)] = cell
            if (method, layer) in self._maps:
                self._apply(cell, *self._maps.pop((method, layer)))
        if self._todo:
            QTimer.singleShot(0, self._build_some)
            return
        waiting, self._built = self._built, []
        for fn in waiting:
            QTimer.singleShot(0, fn)

    def set_map(self, method: str, layer: str, map_result, info=None) -> None:
        """Show a finished map in its cell (``layer`` is ignored by a cell of a model-agnostic
        method, which receives its map under the key ``"input"``)."""
        keys = list(self.cells) + [(row[2], row[3]) for row in self._todo]
        for key in keys:
            if key[0] == method and (key[1] == layer or layer == "input"):
                cell = self.cells.get(key)
                if cell is None:
                    self._maps[key] = (map_result, info)
                else:
                    self._apply(cell, map_result, info)

    def _apply(self, cell, map_result, info) -> None:
        image, frame = self._build_args[:2]
        cell.viewer.layer.set_map(map_result.heatmap, info, owner=owner_key(image, frame))
        cell.show_map_state(map_result.warning or "")

    def set_status(self, method: str, text: str) -> None:
        """Put a state on every cell of one method (e.g. why it is unavailable)."""
        for (m, _lay), cell in self.cells.items():
            if m == method:
                cell.set_status(text)
        self._status[method] = text

    def settle(self, method: str, maps: dict, text: str) -> None:
        """A job for ``method`` ended: no cell of it may go on saying it is computing.

        Parameters
        ----------
        maps : dict
            Column layer -> ``MapResult`` of the maps known for the method now: a cell still
            without a map shows its own from here.
        text : str
            The state of a cell whose map is not in ``maps`` (failed, cancelled, no map).
        """
        keys = [key for key in list(self.cells) + [(row[2], row[3]) for row in self._todo]
                if key[0] == method]
        for key in keys:
            cell, found = self.cells.get(key), maps.get(key[1])
            if cell is None:
                if key not in self._maps:
                    if found is not None:
                        self._maps[key] = (found, map_info(found))
                    else:
                        self._status[key] = text
            elif cell.viewer.layer.heatmap is None:
                if found is not None:
                    self._apply(cell, found, map_info(found))
                else:
                    cell.set_status(text)

    def set_window(self, center: float, width: float) -> None:
        """Apply a window to every cell."""
        for cell in self.cells.values():
            cell.viewer.set_window(center, width)

    def set_invert(self, invert: bool) -> None:
        """Invert every cell."""
        for cell in self.cells.values():
            cell.viewer.set_invert(invert)

    def _mirror(self, name: str) -> None:
        if name in SHARED_SETTINGS:
            for cell in self.cells.values():
                setattr(cell.viewer.layer, name, getattr(self.settings, name))
                if cell.viewer.layer.heatmap is not None:
                    cell.show_map_state()

    def _sync_from(self, source: QtImageViewer) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            follow_view(source, [cell.viewer for cell in self.cells.values()])
        finally:
            self._syncing = False


def follow_view(source: QtImageViewer, viewers) -> None:
    """Give every viewer of ``viewers`` the zoom and centre of ``source``."""
    if source.fitted():
        return  # a fitted view needs no echo: every view fits itself when resized
    state = source.view_state()
    for viewer in viewers:
        if viewer is not source:
            viewer.apply_view_state(*state)


class QtModelCompareView(QWidget):
    """Model A | model B over the same image, with zoom, pan and window synced.

    Each cell is titled with its model's name and its prediction for the shared class; both
    maps are drawn against their own peak (the raw values of two models share no unit), with
    the display settings (opacity, colour map, threshold) of the main overlay layer. A line
    under the header gives the numbers (:meth:`set_numbers`): each model's prediction and the
    share of its map's energy in a common region.

    Parameters
    ----------
    settings : OverlayLayer
        The main overlay layer whose opacity, colour map, threshold and visibility the cells
        mirror.

    Signals
    -------
    sig_export()
        The user asked for the two-panel figure.
    """

    sig_export = Signal()
    #: Display settings mirrored from the main layer (not the scale: see the class docstring).
    MIRRORED = ("opacity", "colormap", "threshold", "visible")

    def __init__(self, settings: OverlayLayer, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Lucida — model comparison")
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setStyleSheet("padding: 4px;")
        self.export_button = QPushButton("Export figure…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.sig_export)
        self.numbers = QLabel()
        self.numbers.setWordWrap(True)
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.numbers.setStyleSheet("padding: 0 4px 4px 4px;")
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.export_button)
        self.cells = [QtCompareCell(role, "", role) for role in ("A", "B")]
        row = QHBoxLayout()
        row.setSpacing(2)
        self._syncing = False
        for cell in self.cells:
            layer = cell.viewer.layer
            layer.scale = "fixed"
            for name in self.MIRRORED:
                setattr(layer, name, getattr(settings, name))
            cell.annotations = QtViewAnnotations(cell.viewer, corners=False)
            cell.viewer.sig_view_changed.connect(lambda v=cell.viewer: self._sync_view(v))
            cell.viewer.sig_window_changed.connect(
                lambda c, w, v=cell.viewer: self._sync_window(v, c, w))
            row.addWidget(cell, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.numbers)
        layout.addLayout(row, 1)
        settings.sig_changed.connect(self._mirror)

    def set_case(self, image, frame: int, window, invert: bool, titles: list[str],
                 header: str) -> None:
        """Show ``image`` in both cells, without maps, titled ``titles`` (model names)."""
        rendered = QPixmap.fromImage(qimage_from_array(
            image.render(frame, window=window, invert=invert)))
        self.header.setText(header)
        self.numbers.setText("")
        for cell, title in zip(self.cells, titles, strict=True):
            cell.title.setText(title)
            cell.viewer.set_image(image, frame, window, invert, rendered=rendered)
            cell.set_status(COMPUTING)
        self.export_button.setEnabled(False)

    def set_result(self, index: int, result) -> None:
        """Draw one model's result (its one map) in cell ``index`` and title it."""
        cell = self.cells[index]
        map_result = next(iter(result.maps.values()))
        viewer = cell.viewer
        viewer.layer.set_map(map_result.heatmap, map_info(map_result),
                             owner=owner_key(viewer.image, viewer.frame))
        p = probability_text(float(result.scores[result.target]))
        role = "AB"[index]
        cell.title.setText(f"{role}  {result.model.get('name', '?')} — {result.target_name} "
                           f"{'p ' + p if p[0] in '<>' else 'p = ' + p} — layer "
                           f"{map_result.layer}")
        cell.set_status(map_result.warning or "")

    def set_status(self, index: int, text: str) -> None:
        """Put a state on one cell (computing, failed and why)."""
        self.cells[index].set_status(text)

    def set_numbers(self, text: str) -> None:
        """Show the comparison's numbers (predictions and energy shares) under the header."""
        self.numbers.setText(text)

    def maps_drawn(self) -> bool:
        """Whether both cells show a map."""
        return all(cell.viewer.layer.heatmap is not None for cell in self.cells)

    def _mirror(self, name: str) -> None:
        if name in self.MIRRORED:
            for cell in self.cells:
                setattr(cell.viewer.layer, name, getattr(self.settings, name))

    def _sync_view(self, source: QtImageViewer) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            follow_view(source, [cell.viewer for cell in self.cells])
        finally:
            self._syncing = False

    def _sync_window(self, source: QtImageViewer, center: float, width: float) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            for cell in self.cells:
                if cell.viewer is not source:
                    cell.viewer.set_window(center, width)
        finally:
            self._syncing = False
