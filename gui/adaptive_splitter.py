"""A splitter that puts its two panes side by side when wide, and one above the other when tall.

A bottom dock is wide and short: a form above its results would take all of its height. The
same view floated, or docked at a side, is tall and narrow, and there the panes stack.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter

#: Width over height from which the panes sit side by side.
SIDE_BY_SIDE = 1.5
#: The largest part of the height a stacked first pane (a form, some words) takes at first.
FIRST_PANE_SHARE = 0.4


class QtAdaptiveSplitter(QSplitter):
    """Two panes; the first keeps its size, the second (the results) stretches.

    Parameters
    ----------
    first, second : QWidget
        The panes, in reading order.
    ratio : float
        Width over height from which they sit side by side.
    """

    def __init__(self, first, second, ratio: float = SIDE_BY_SIDE, parent=None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.ratio = ratio
        self.addWidget(first)
        self.addWidget(second)
        self.setStretchFactor(0, 0)
        self.setStretchFactor(1, 1)
        self.setChildrenCollapsible(False)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Turn to the orientation that suits the new size, with the panes' sizes to match."""
        size = event.size()
        wide = size.width() >= self.ratio * size.height()
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        super().resizeEvent(event)
        if orientation != self.orientation():
            self.setOrientation(orientation)
            hint = self.widget(0).sizeHint()
            if wide:
                first, total = hint.width(), size.width()
            else:
                total = size.height()
                first = min(hint.height(), int(FIRST_PANE_SHARE * total))
            self.setSizes([first, max(0, total - first)])
