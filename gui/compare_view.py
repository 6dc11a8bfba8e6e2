"""Compare mode: a grid of methods (rows) × layers (columns) with zoom and pan synced."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from gui.overlay_layer import OverlayLayer
from gui.viewer import QtImageViewer

#: Display settings a cell copies from the main overlay layer.
SHARED_SETTINGS = ("opacity", "colormap", "threshold", "scale", "visible")


class QtCompareCell(QWidget):
    """One titled viewer of the grid."""

    def __init__(self, method: str, layer: str, title: str, parent=None) -> None:
        super().__init__(parent)
        self.method, self.layer_name = method, layer
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet(
            "background: #202226; color: #e8e8e8; padding: 3px; font-weight: 600;"
        )
        self.viewer = QtImageViewer(OverlayLayer(self))
        layout.addWidget(self.title)
        layout.addWidget(self.viewer, 1)

    def set_status(self, text: str) -> None:
        """Append a short state (computing, unavailable) to the title."""
        base = self.title.text().split("  —  ")[0]
        self.title.setText(f"{base}  —  {text}" if text else base)


class QtCompareGrid(QWidget):
    """Cells for every (method, layer) pair; all cells share zoom, pan and overlay settings.

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
        settings.sig_changed.connect(self._mirror)

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
                cell.set_status("computing…")
            return False
        self._spec = spec
        for cell in self.cells.values():
            self._grid.removeWidget(cell)
            cell.deleteLater()
        self.cells.clear()
        for row, (method, title) in enumerate(methods):
            for col, layer in enumerate(layers):
                cell = QtCompareCell(method, layer, f"{title} · {layer}")
                for name in SHARED_SETTINGS:
                    setattr(cell.viewer.layer, name, getattr(self.settings, name))
                cell.viewer.set_image(image, frame, window, invert)
                cell.viewer.sig_view_changed.connect(
                    lambda v=cell.viewer: self._sync_from(v)
                )
                cell.set_status("computing…")
                self._grid.addWidget(cell, row, col)
                self.cells[(method, layer)] = cell
        return True

    def set_map(self, method: str, layer: str, heatmap, warning: str | None = None) -> None:
        """Show a finished map in its cell (``layer`` is ignored by a cell of a model-agnostic
        method, which receives its map under the key ``"input"``)."""
        targets = [c for (m, lay), c in self.cells.items()
                   if m == method and (lay == layer or layer == "input")]
        for cell in targets:
            cell.viewer.layer.heatmap = heatmap
            cell.set_status(warning or "")

    def set_status(self, method: str, text: str) -> None:
        """Put a state on every cell of one method (e.g. why it is unavailable)."""
        for (m, _lay), cell in self.cells.items():
            if m == method:
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

    def _sync_from(self, source: QtImageViewer) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            if source.fitted():
                return  # a fitted cell needs no echo: every cell fits itself when resized
            state = source.view_state()
            for cell in self.cells.values():
                if cell.viewer is not source:
                    cell.viewer.apply_view_state(*state)
        finally:
            self._syncing = False
