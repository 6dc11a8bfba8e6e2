"""The Problems list: every file that was not opened, with its reason, failures first.

It also lists a series that opened slice by slice but is not a volume, and a PACS search or
retrieve that failed: whatever the user asked for and did not get, with why.
"""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.studies.filetypes import FAILED
from engine.studies.tree import NOT_A_VOLUME

#: Colour of a failed row's status.
FAILED_COLOUR = QColor(255, 140, 120)


class QtProblemsPanel(QWidget):
    """Lists ``engine.studies.tree.FileProblem`` entries: file, status and reason."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.summary = QLabel("No problems.")
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["File", "Status", "Reason"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setSortingEnabled(True)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        self.problems: list = []

    def set_problems(self, problems: list) -> None:
        """Show ``problems`` (replacing the list of the previous opening)."""
        self.problems = list(problems)
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        ordered = sorted(self.problems, key=lambda p: (p.kind != FAILED, str(p.path)))
        for problem in ordered:
            item = QTreeWidgetItem([problem.path.name, problem.kind, problem.reason])
            item.setToolTip(0, str(problem.path))
            item.setToolTip(2, problem.reason)
            if problem.kind in (FAILED, NOT_A_VOLUME):
                item.setForeground(1, QBrush(FAILED_COLOUR))
            self.tree.addTopLevelItem(item)
        self.tree.resizeColumnToContents(0)
        self.tree.resizeColumnToContents(1)
        failed = sum(p.kind == FAILED for p in self.problems)
        series = sum(p.kind == NOT_A_VOLUME for p in self.problems)
        skipped = len(self.problems) - failed - series
        if not self.problems:
            self.summary.setText("No problems.")
        else:
            self.summary.setText(
                f"{failed} failed (cannot be shown), {skipped} skipped (not images)"
                + (f", {series} series not a volume (their slices open one by one)"
                   if series else "") + ". Hover a reason to read all of it.")

    def add_problem(self, problem) -> None:
        """Add one problem to the list shown (a failed PACS search or retrieve)."""
        self.set_problems([*self.problems, problem])

    def rows(self) -> list[tuple[str, str, str]]:
        """The list as (file name, status, reason), in display order."""
        return [tuple(self.tree.topLevelItem(i).text(c) for c in range(3))
                for i in range(self.tree.topLevelItemCount())]
