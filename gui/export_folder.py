"""Where exports go: the folder used last, else the user's documents folder, never the cwd."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths

#: Settings key of the last folder an export was written to.
LAST_FOLDER_KEY = "export/last_folder"
#: Folder made under the documents folder for exports.
EXPORTS = "Lucida exports"


def export_root(settings) -> Path:
    """The folder exports start in: the last one used, else ``Documents/Lucida exports``."""
    last = settings.value(LAST_FOLDER_KEY, "", type=str)
    if last:
        return Path(last)
    documents = QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents or Path.home()) / EXPORTS


def open_export(window) -> None:
    """Open the export dialog for the window's current result, in :func:`export_root`."""
    result = window.current_result()
    if result is None or window.image is None or window.image_error is not None:
        window.show_error("nothing to export yet. Fix: open an image and wait for its map")
        return
    from gui.export_dialog import QtExportDialog
    from gui.reviewed_state import reviewed_view

    dialog = QtExportDialog(window, result, window.image, reviewed_view(window))
    # The dialog names a per-case folder; it goes under the folder the user exports to.
    case = Path(dialog.folder.text()).name
    dialog.folder.setText(str(export_root(window.settings) / case))
    dialog.sig_exported.connect(lambda _paths: remember(window.settings, dialog.folder.text(),
                                                        case))
    dialog.show()
    window._export_dialog = dialog


def remember(settings, folder: str, case: str) -> None:
    """Remember where an export went: the folder that holds its case folder."""
    path = Path(folder).expanduser()
    settings.setValue(LAST_FOLDER_KEY, str(path.parent if path.name == case else path))
