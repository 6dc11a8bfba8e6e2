"""The Help menu's windows: the shortcut table and what Lucida is."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from gui.shortcuts import help_html


class HelpCommands:
    """A mixin of :class:`gui.main_window.QtMainWindow`: Help ▸ Shortcuts and Help ▸ About."""

    def show_help(self) -> None:
        """Show the shortcut table (non-modal)."""
        box = QMessageBox(self)
        box.setWindowTitle("Lucida shortcuts")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(help_html())
        box.setModal(False)
        box.show()
        self._help_box = box

    def about(self) -> None:
        """Say what Lucida is."""
        QMessageBox.about(self, "About Lucida",
                          "Lucida shows why an image classifier decided what it decided.\n"
                          "Heatmaps are explanations of a model, not findings.")
