"""The audit's outputs are published all-or-nothing: a failure keeps the previous audit."""

from __future__ import annotations

import errno
import json
import os

import pytest
from audit_fixtures import small_model, write_phantom_dataset

from engine.audit.manifest import load_dataset
from engine.audit.outputs import write_outputs
from engine.audit.runner import AuditSettings, run_audit
from engine.core import atomic
from engine.core.errors import ExportError


def test_a_full_disk_while_writing_leaves_the_previous_audit(tmp_path, monkeypatch):
    dataset = load_dataset(write_phantom_dataset(tmp_path / "data", 6, size=40))
    model = small_model(40)
    out = tmp_path / "out"
    store = run_audit(dataset, model, AuditSettings(method="gradcam", batch_size=3), out)
    header = json.loads((out / "run.json").read_text())
    first = write_outputs(store, dataset, model, header, out, pdf=True)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {"audit.json", "audit.csv", "report.pdf"} <= set(before)
    real_write = os.write

    def fill_on_the_pdf(fd, data):
        if bytes(data[:5]) == b"%PDF-":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", fill_on_the_pdf)
    with pytest.raises(ExportError, match="No space left"):
        write_outputs(store, dataset, model, header, out, pdf=True)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # audit.json and audit.csv were staged, and discarded with the PDF
    assert json.loads(after["audit.json"]) == first
    assert not [p for p in out.rglob(".*.part")]
