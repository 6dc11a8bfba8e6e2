"""Bias audit: where a model looks, per class and per subgroup, over a whole dataset.

``load_dataset`` reads a manifest CSV or a DICOM folder, ``run_audit`` explains every image in
batches and streams the results to disk, and ``write_outputs`` merges them into audit.json,
audit.csv, mean heatmaps and report.pdf.
"""

from engine.audit.manifest import AuditRow, Manifest, RowProblem, load_dataset
from engine.audit.outputs import write_outputs
from engine.audit.runner import AuditSettings, audit_batch, run_audit

__all__ = [
    "AuditRow",
    "AuditSettings",
    "Manifest",
    "RowProblem",
    "audit_batch",
    "load_dataset",
    "run_audit",
    "write_outputs",
]
