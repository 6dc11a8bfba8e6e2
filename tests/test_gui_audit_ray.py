"""The Audit view on the Ray engine: a local Ray instance, the local table, progress, Cancel."""

from __future__ import annotations

import json

import pytest
import ray
from audit_fixtures import start_local_ray, write_phantom_dataset

WAIT_MS = 240_000


@pytest.fixture(scope="module")
def local_ray():
    start_local_ray()
    yield
    ray.shutdown()


def _view(qtbot, manifest, out, engine):
    from gui.audit_view import QtAuditView

    view = QtAuditView()
    qtbot.addWidget(view)
    view.dataset_edit.setText(str(manifest))
    view.model_combo.setCurrentText("demo")
    view.out_edit.setText(str(out))
    view.engine_combo.setCurrentIndex(view.engine_combo.findData(engine))
    assert view.address_edit.isEnabled() == view.workers_spin.isEnabled() == (engine == "ray")
    view.workers_spin.setValue(2)
    return view


def _table(view) -> dict[str, list]:
    """Rows of the view's table by case name, values as displayed (numbers as numbers)."""
    from PySide6.QtCore import Qt

    cols = [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]
    rows = {}
    for r in range(view.table.rowCount()):
        values = [view.table.item(r, c).data(Qt.ItemDataRole.DisplayRole)
                  for c in range(len(cols))]
        rows[values[cols.index("case")]] = values
    return rows


def test_the_audit_view_on_ray_shows_the_local_table(local_ray, tmp_path, qtbot):
    manifest = write_phantom_dataset(tmp_path / "data", 10, size=64)
    tables, bars = {}, {}
    for engine in ("local", "ray"):
        view = _view(qtbot, manifest, tmp_path / engine, engine)
        bars[engine] = []
        view.progress.valueChanged.connect(bars[engine].append)
        view.start()
        assert view.is_running() and view.cancel_button.isEnabled()
        qtbot.waitUntil(lambda v=view: not v.is_running(), timeout=WAIT_MS)
        assert view.audit is not None, view.status.text()
        tables[engine] = _table(view)
    audit = json.loads((tmp_path / "ray" / "audit.json").read_text())
    assert audit["engine"]["name"] == "ray" and audit["engine"]["workers"] == 2
    assert bars["ray"][-1] == 1000 and len(bars["ray"]) > 1
    assert len(tables["ray"]) == 10 and set(tables["ray"]) == set(tables["local"])
    for path, row in tables["local"].items():
        assert tables["ray"][path] == pytest.approx(row, abs=1e-6), path


def test_cancel_stops_a_ray_audit_and_keeps_its_batches(local_ray, tmp_path, qtbot):
    manifest = write_phantom_dataset(tmp_path / "data", 96, size=64)
    view = _view(qtbot, manifest, tmp_path / "ray", "ray")
    view.start()
    # Cancel once the first batch is stored: the rest of the cluster work must stop.
    qtbot.waitUntil(lambda: "images/s" in view.status.text() or not view.is_running(),
                    timeout=WAIT_MS)
    view.cancel()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=WAIT_MS)
    assert view.status.text().startswith("Cancelled") and view.audit is None
    assert view.resume_box.isChecked() and view.run_button.isEnabled()
    stored = (tmp_path / "ray" / "results.jsonl").read_text().splitlines()
    assert 0 < len(stored) < 96
