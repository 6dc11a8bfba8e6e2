"""The export dialog's choice of kind: a research export, or filing into the patient's study.

Filing is offered only for an image with a study, and only to a node of the node file; when it
cannot be offered, the box says why.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QRadioButton, QVBoxLayout

from engine.export.dicom_objects import PATIENT_STUDY, RESEARCH
from engine.pacs.filing_prompt import filing_nodes, filing_refusal

#: The label of each kind of export.
KIND_LABELS = {
    RESEARCH: "Research export: files, de-identified, new UIDs",
    PATIENT_STUDY: "File to the patient's study on a PACS node",
}


class ExportKindBox(QGroupBox):
    """The two kinds of export, the node to file to, and what filing sends.

    Parameters
    ----------
    source : Image or None
        The image whose study an export would be filed into.

    Signals
    -------
    sig_changed()
        The kind of export changed.
    """

    sig_changed = Signal()

    def __init__(self, source) -> None:
        super().__init__("Kind of export")
        self.kind_research = QRadioButton(KIND_LABELS[RESEARCH])
        self.kind_research.setChecked(True)
        self.kind_file = QRadioButton(KIND_LABELS[PATIENT_STUDY])
        self.node_box = QComboBox()
        self.nodes, why_not = filing_nodes()
        for name in sorted(self.nodes):
            self.node_box.addItem(f"{name} ({self.nodes[name].protocol})", name)
        why_not = filing_refusal(source) or why_not
        self.filing_note = QLabel(why_not)
        self.filing_note.setWordWrap(True)
        self.filing_note.setVisible(bool(why_not))
        self.kind_file.setEnabled(not why_not)
        self.node_box.setEnabled(False)
        self.kind_file.toggled.connect(self._kind_changed)
        layout = QVBoxLayout(self)
        layout.addWidget(self.kind_research)
        layout.addWidget(self.kind_file)
        node_row = QHBoxLayout()
        node_row.addWidget(QLabel("Node"))
        node_row.addWidget(self.node_box, 1)
        layout.addLayout(node_row)
        layout.addWidget(self.filing_note)
        study = getattr(getattr(source, "dataset", None), "StudyInstanceUID", "")
        self.filing_what = QLabel(
            "Sends a Secondary Capture of the figure, the Parametric Map(s) and a "
            "Comprehensive SR, with the patient's identifiers, as new series of study "
            f"{study}. A copy is kept in the folder.")
        self.filing_what.setWordWrap(True)
        self.filing_what.setVisible(False)
        layout.addWidget(self.filing_what)

    def kind(self) -> str:
        """The kind of export chosen: :data:`RESEARCH` or :data:`PATIENT_STUDY`."""
        return PATIENT_STUDY if self.kind_file.isChecked() else RESEARCH

    def node(self):
        """The chosen node (None when there is none)."""
        return self.nodes.get(self.node_box.currentData())

    def _kind_changed(self, *_args) -> None:
        self.node_box.setEnabled(self.kind() == PATIENT_STUDY)
        self.filing_what.setVisible(self.kind() == PATIENT_STUDY)
        self.sig_changed.emit()
