"""Typed errors that reach the user as one line naming the file and the fix."""

from __future__ import annotations

from pathlib import Path


class LucidaError(Exception):
    """An error the user can act on.

    Parameters
    ----------
    message : str
        What went wrong, without a trailing full stop.
    path : str or Path, optional
        The file the error is about; it leads the one-line message.
    fix : str, optional
        What the user can do about it.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Return the single line shown to the user (CLI stderr, GUI message bar)."""
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.fix:
            text = f"{text}. Fix: {self.fix}"
        return " ".join(text.split())


class UsageError(LucidaError):
    """A bad command-line argument or request."""


class StudyError(LucidaError):
    """An image file that cannot be read or displayed."""


class NotAnImage(StudyError):
    """A readable file that holds nothing to display: skipped, not a failure.

    Structured reports, RT plans, waveforms (ECG), presentation states, a DICOMDIR index, or a
    file that is neither DICOM nor an image (a README in a study folder).
    """


class CodecError(StudyError):
    """Compressed pixel data for which no decoder plugin is installed."""


class ModelError(LucidaError):
    """A model file or card that cannot be loaded or run."""


class TrustRequired(ModelError):
    """A model file that can execute code when loaded and was not explicitly trusted."""


class ExplainerUnavailable(LucidaError):
    """An explainer that cannot work on this model; the message says why."""


class ExportError(LucidaError):
    """An export that could not be written; nothing half-written is left behind."""
