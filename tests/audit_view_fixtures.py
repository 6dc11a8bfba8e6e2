"""Driving the Audit view as a person does: clicking a table row, on the dark theme."""

from __future__ import annotations

from contextlib import contextmanager


def click_row(qtbot, table, row: int) -> None:
    """Click the first cell of ``row`` in a shown table, with real mouse events."""
    from PySide6.QtCore import Qt

    table.scrollToItem(table.item(row, 0))
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


@contextmanager
def dark_theme(qapp):
    """The application's dark theme (``gui.app.apply_dark_theme``) for a while; its palette."""
    from gui.app import apply_dark_theme

    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    apply_dark_theme(qapp)
    qapp.processEvents()  # widgets take the new palette
    try:
        yield qapp.palette()
    finally:
        qapp.setStyleSheet(sheet)
        qapp.setStyle(style)
        qapp.setPalette(palette)
