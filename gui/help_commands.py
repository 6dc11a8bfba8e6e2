"""The Help menu's windows: the shortcut table and what Lucida is."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from engine.core.errors import UsageError
from engine.core.user_guide import guide_page
from gui.shortcuts import help_html


class HelpCommands:
    """A mixin of :class:`gui.main_window.QtMainWindow`: Help ▸ User guide, Shortcuts, About."""

    def open_user_guide(self, page: str = "index.html") -> bool:
        """Open a page of the locally built user guide in the desktop's browser.

        Returns whether it opened; when the site is not built, the error line says how to
        build it.
        """
        try:
            path = guide_page(page)
        except UsageError as exc:
            self.show_error(exc.one_line())
            return False
        url = QUrl.fromLocalFile(str(path))
        url.setFragment(page.partition("#")[2] or None)
        return QDesktopServices.openUrl(url)

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
