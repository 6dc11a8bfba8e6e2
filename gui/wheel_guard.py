"""Keep the mouse wheel from changing a form's combo and spin boxes as it scrolls past them.

Scrolling a long form moves the cursor over its fields; Qt lets an unfocused combo box take
the wheel and change its value. Guarded fields take the wheel only once clicked or tabbed
into; otherwise the wheel goes on to the scroll area around them.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget

#: The fields whose value the wheel changes.
GUARDED = (QComboBox, QAbstractSpinBox)


class WheelGuard(QObject):
    """An event filter that passes the wheel of an unfocused field on to its parents."""

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        """Hand an unfocused field's wheel event on; let a focused field have it."""
        if event.type() == QEvent.Type.Wheel and not watched.hasFocus():
            # Ignored and filtered: Qt offers the event to the parent widgets instead.
            event.ignore()
            return True
        return False

    def guard(self, root: QWidget) -> None:
        """Guard every combo and spin box in ``root``; the wheel no longer gives them focus.

        Call it again after fields are added (it guards each field once).
        """
        for kind in GUARDED:
            for field in root.findChildren(kind):
                if field.property("wheel_guarded"):
                    continue
                field.setProperty("wheel_guarded", True)
                field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
                field.installEventFilter(self)
