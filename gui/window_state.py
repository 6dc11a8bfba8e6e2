"""The review window's size and dock layout: restored at start, saved at close, resettable."""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QWidget

from gui.screen_fit import fit_to_screen

#: Width the window asks for on a screen that has room (it never exceeds the screen).
PREFERRED_SIZE = (1440, 900)


class WindowState:
    """A mixin of :class:`gui.main_window.QtMainWindow`: its geometry and dock layout persist
    in the window's ``settings``."""

    def _restore_layout(self) -> None:
        self.resize(*PREFERRED_SIZE)
        self._default_state = self.saveState()
        geometry = self.settings.value("geometry")
        state = self.settings.value("window_state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        fit_to_screen(self)

    def reset_layout(self) -> None:
        """Put the docks back where they start."""
        self.restoreState(self._default_state)

    def save_layout(self) -> None:
        """Persist window geometry and dock layout."""
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.sync()

    def add_dock(self, title: str, widget: QWidget, area, orientation=None) -> QDockWidget:
        """Add a dock named after ``title`` (its object name keeps the saved layout)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        if orientation is None:
            self.addDockWidget(area, dock)
        else:
            self.addDockWidget(area, dock, orientation)
        return dock
