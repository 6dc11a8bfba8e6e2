"""The DICOM tag panel: every element of the current file, with a search box."""

from __future__ import annotations

from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

#: Values longer than this are cut in the table (the tooltip keeps the whole text).
MAX_VALUE_CHARS = 120


def _value_text(element) -> str:
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
        length = getattr(element, "length", None) or len(element.value or b"")
        return f"<{length} bytes>"
    return str(element.value)


class QtTagPanel(QWidget):
    """Tag, keyword, VR and value of each element; sequences nest; search filters rows."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search tags (keyword, tag number or value)…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.filter)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setUniformRowHeights(True)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)

    def set_dataset(self, dataset) -> None:
        """Show a pydicom Dataset (or nothing for ``None``, e.g. a PNG)."""
        self.tree.clear()
        if dataset is None:
            self.tree.addTopLevelItem(QTreeWidgetItem(["", "", "", "(not a DICOM file)"]))
            return
        self._add(dataset, self.tree.invisibleRootItem())
        self.tree.resizeColumnToContents(0)
        self.tree.resizeColumnToContents(1)
        self.filter(self.search.text())

    def _add(self, dataset, parent: QTreeWidgetItem) -> None:
        for element in dataset:
            tag = f"({element.tag.group:04X},{element.tag.element:04X})"
            if element.VR == "SQ":
                count = f"{len(element.value)} item(s)"
                item = QTreeWidgetItem([tag, element.keyword, "SQ", count])
                for n, child in enumerate(element.value):
                    child_item = QTreeWidgetItem(["", f"Item {n + 1}", "", ""])
                    self._add(child, child_item)
                    item.addChild(child_item)
            else:
                text = _value_text(element)
                item = QTreeWidgetItem([tag, element.keyword or element.name, element.VR,
                                        text[:MAX_VALUE_CHARS]])
                item.setToolTip(3, text)
            parent.addChild(item)

    def filter(self, text: str) -> int:
        """Show only rows containing ``text`` (and their parents); return how many match."""
        needle = text.strip().lower()

        def visit(item: QTreeWidgetItem) -> bool:
            own = not needle or any(needle in item.text(c).lower() for c in range(4))
            child_hit = False
            for i in range(item.childCount()):
                child_hit |= visit(item.child(i))
            item.setHidden(not (own or child_hit))
            return own or child_hit

        root = self.tree.invisibleRootItem()
        return sum(visit(root.child(i)) for i in range(root.childCount()))
