"""The status bar (message, pixel readout, device, progress, cancel) and the error banner."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QStatusBar,
    QToolButton,
)

from engine.core.log import TRACEBACK_NOTE, log_path
from engine.core.user_guide import page_for_error


def error_status(text: str) -> str:
    """What the status line says while the banner shows the error ``text``.

    An internal error's line names the log that holds its traceback; the status line says
    where that is, and how to open it.
    """
    if TRACEBACK_NOTE in text:
        return f"Internal error: {TRACEBACK_NOTE} {log_path()} (Help ▸ Show log)"
    return "Error — see the message above the image"


class QtErrorBanner(QFrame):
    """A non-modal one-line message over the viewer, dismissed by its close button.

    Signals
    -------
    sig_guide(str)
        The message's "Read more" link was clicked: open this page of the user guide.
    """

    sig_guide = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setStyleSheet(
            "QFrame { background: #5a1d1d; } QLabel { color: #ffe0e0; padding: 4px; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 2, 0)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Long messages wrap instead of widening the window.
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # A link to the guide page that explains the fix, when there is one.
        self.guide = QLabel()
        self.guide.setStyleSheet("QLabel { color: #ffe0e0; } a { color: #ffffff; }")
        self.guide.linkActivated.connect(self.sig_guide.emit)
        self.guide.hide()
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.guide)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        """Show ``text`` (one line from ``LucidaError.one_line``)."""
        self.label.setText(text)
        page = page_for_error(text)
        self.guide.setText(f'<a href="{page}">Read more</a>' if page else "")
        self.guide.setVisible(page is not None)
        self.show()


class QtStatus(QStatusBar):
    """Message, pixel readout, compute device, progress bar and Cancel button.

    Signals
    -------
    sig_cancel()
        The user pressed Cancel.
    """

    sig_cancel = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.message = QLabel("Ready")
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.pixel_label = QLabel()
        self.pixel_label.setMinimumWidth(260)
        self.device_label = QLabel("Device: auto")
        self.device_label.setToolTip("Where models run (View ▸ Compute device)")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.sig_cancel)
        self.addWidget(self.message, 1)
        self.addPermanentWidget(self.pixel_label)
        self.addPermanentWidget(self.device_label)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.cancel_button)
        self.set_progress(-1.0)

    def set_progress(self, fraction: float) -> None:
        """Show ``fraction`` in [0, 1]; a negative value hides the bar (nothing runs)."""
        busy = fraction >= 0
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setValue(int(1000 * min(fraction, 1.0)))

    def set_device(self, choice: str, resolved: str | None) -> None:
        """Show the chosen device and, once known, the one it resolved to."""
        if resolved is None:
            self.device_label.setText(f"Device: {choice} …")
        elif choice == "auto":
            self.device_label.setText(f"Device: {resolved.upper()} (auto)")
        else:
            self.device_label.setText(f"Device: {resolved.upper()}")
