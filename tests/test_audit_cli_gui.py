"""The audit command line and the Audit view, on a tiny model and a few phantoms."""

from __future__ import annotations

import json

import pytest
from audit_fixtures import small_model, write_phantom_dataset

import engine.models.loaded
from engine.cli import main as cli_main

N = 12


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    """A manifest of phantoms, and load_model answering every spec with the tiny model."""
    manifest = write_phantom_dataset(tmp_path / "data", N, size=40)
    model = small_model(40)
    monkeypatch.setattr(engine.models.loaded, "load_model", lambda spec, **kw: model)
    return manifest, model


def test_cli_writes_every_output_and_prints_verdicts(tiny, tmp_path, capsys):
    manifest, _ = tiny
    out = tmp_path / "out"
    code = cli_main(["audit", str(manifest), "--model", "tiny", "--method", "gradcam",
                     "--out", str(out), "--batch-size", "5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{N} images audited" in printed and "site=" in printed
    for name in ("audit.json", "audit.csv", "report.pdf", "mean_heatmaps/grid.png"):
        assert (out / name).is_file(), name
    # Resuming a finished run redoes nothing and gives the same numbers.
    before = (out / "audit.json").read_text()
    assert cli_main(["audit", str(manifest), "--model", "tiny", "--method", "gradcam",
                     "--out", str(out), "--resume", "--no-pdf"]) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == N
    assert json.loads((out / "audit.json").read_text()) == json.loads(before)


def test_cli_exit_codes_for_bad_input(tiny, tmp_path, capsys):
    manifest, _ = tiny
    assert cli_main(["audit", str(tmp_path / "nope.csv"), "--model", "x", "--out",
                     str(tmp_path / "o")]) == 2
    assert "dataset not found" in capsys.readouterr().err
    assert cli_main(["audit", str(manifest), "--model", "x", "--method", "nosuch",
                     "--out", str(tmp_path / "o")]) == 2
    assert "unknown method" in capsys.readouterr().err
    with manifest.open("a") as fh:
        fh.write("missing.png,normal,A,\n")
    code = cli_main(["audit", str(manifest), "--model", "x", "--out", str(tmp_path / "o2"),
                     "--no-pdf"])
    assert code == 1
    assert "missing.png" in capsys.readouterr().err


def test_audit_view_runs_off_the_gui_thread_and_opens_clicked_images(tiny, tmp_path, qtbot):
    from gui.audit_view import QtAuditView

    manifest, model = tiny
    view = QtAuditView()
    qtbot.addWidget(view)
    view.dataset_edit.setText(str(manifest))
    view.method_combo.setCurrentText("gradcam")
    view.out_edit.setText(str(tmp_path / "gui"))
    view.start()
    # start() returns with the audit still running on the worker (bench/bench_latency.py times it).
    assert view.is_running() and not view.run_button.isEnabled()
    qtbot.waitUntil(lambda: not view.is_running() and view.audit is not None, timeout=60000)
    assert view.progress.value() == 1000
    assert view.table.rowCount() == N
    assert view.share_chart.entries and view.accuracy_chart.entries
    assert view.grid_layout.count() > 4
    headers = [view.table.horizontalHeaderItem(c).text() for c in range(view.table.columnCount())]
    view.table.sortItems(headers.index("share_border"))
    with qtbot.waitSignal(view.sig_open_image) as blocker:
        view._row_clicked(0, 0)
    path, method, layer = blocker.args
    assert path.endswith(".png") and method == "gradcam" and layer == model.default_layer
    exported = view.export_to(tmp_path / "export")
    assert (tmp_path / "export" / "audit.json").is_file() and exported


def test_audit_view_cancel_keeps_finished_work(tiny, tmp_path, qtbot):
    from gui.audit_view import QtAuditView

    manifest, _ = tiny
    view = QtAuditView()
    qtbot.addWidget(view)
    view.dataset_edit.setText(str(manifest))
    view.out_edit.setText(str(tmp_path / "gui"))
    view.start()
    view.cancel()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=60000)
    assert view.audit is None and view.resume_box.isChecked()
    assert view.status.text().startswith("Cancelled") and view.run_button.isEnabled()


def test_demo_audit_compares_both_demo_models(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["audit", "--demo", "--n", "2", "--out", str(out), "--no-pdf"]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["models"]) == ["demo", "demo-biased"]
    assert set(comparison["models"]["demo"]["accuracy_by_set"]) == {"correlated",
                                                                    "counterfactual"}
    assert "finding" in comparison and "cis_overlap" in comparison
    table = (out / "comparison.md").read_text()
    assert "| `demo-biased` |" in table and "accuracy, counterfactual" in table
    assert (out / "comparison_mean_heatmaps.png").stat().st_size > 1000
    for name in ("demo", "demo-biased"):
        assert json.loads((out / name / "audit.json").read_text())["n"] == 4
