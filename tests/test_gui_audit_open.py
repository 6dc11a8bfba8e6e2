"""Finished audits in the window: File ▸ Open audit…, the cluster browser, comparing any two."""

from __future__ import annotations

import json

import pytest
from audit_fixtures import write_phantom_dataset
from gui_fixtures import WAIT_MS, pump
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog
from sklearn.metrics import roc_auc_score

from engine.audit.compare import compare
from engine.cli import main as cli_main

#: Phantoms audited: enough for each class to be clustered (discovery's MIN_CLASS is 20).
N = 44


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """Two audits written by the command line on the same phantoms: demo and demo-biased."""
    root = tmp_path_factory.mktemp("cli_audits")
    manifest = write_phantom_dataset(root / "data", N, size=64)
    folders = {}
    for model in ("demo", "demo-biased"):
        folders[model] = root / "audits" / model
        assert cli_main(["audit", str(manifest), "--model", model, "--out",
                         str(folders[model]), "--keep-identifiers", "--no-pdf"]) == 0
    return folders


def _answer_dialogs(monkeypatch, *folders) -> list:
    """The folder dialogs answer ``folders`` in turn; returns the titles they were asked with."""
    answers, asked = iter(str(f) for f in folders), []

    def answer(_parent, title, *_args, **_kw):
        asked.append(title)
        return next(answers)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", answer)
    return asked


def _open_from_menu(window, monkeypatch, folder):
    _answer_dialogs(monkeypatch, folder)
    window.actions_by_id["open_audit"].trigger()
    return window.audit_view


def test_a_folder_that_is_not_an_audit_is_named_in_one_line(window, monkeypatch, tmp_path,
                                                            audits):
    (tmp_path / "notes.txt").write_text("not an audit")
    view = _open_from_menu(window, monkeypatch, tmp_path)
    text = view.status.text()
    assert "\n" not in text and text.startswith(f"{tmp_path}: not an audit folder")
    assert "Fix: choose the folder an audit wrote" in text and not view.audits
    # The folder above a demo's audits names them.
    _open_from_menu(window, monkeypatch, audits["demo"].parent)
    assert view.status.text() == (f"{audits['demo'].parent}: not an audit folder; it holds the "
                                  "audits demo, demo-biased. Fix: choose one of them")
    # A broken audit.json says which file and what to do.
    (tmp_path / "audit.json").write_text("{\"n\": 3")
    _open_from_menu(window, monkeypatch, tmp_path)
    assert view.status.text().startswith(f"{tmp_path / 'audit.json'}: audit.json cannot be read")
    assert not view.audits


def test_a_cli_audit_opens_from_the_file_menu(window, monkeypatch, audits):
    view = _open_from_menu(window, monkeypatch, audits["demo"])
    assert window.docks["audit"].isVisible()
    assert list(view.audits) == ["demo"] and view.out_dir == audits["demo"]
    assert view.table.rowCount() == N
    assert view.status.text().startswith(f"{N} images")
    # The performance table: every group and its complement, AUROC as scikit-learn has it on
    # the stored scores.
    records = [json.loads(line) for line in
               (audits["demo"] / "results.jsonl").read_text().splitlines()]
    perf = json.loads((audits["demo"] / "performance.json").read_text())
    (table,) = view.results.performance_tables()
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    cells = [[table.item(r, c).text() for c in range(table.columnCount())]
             for r in range(table.rowCount())]
    groups = {row[0] for row in cells}
    assert {"all", *perf["by_group"], *(f"not {g}" for g in perf["by_group"])} <= groups
    auroc = roc_auc_score([r["label"] == "nodule" for r in records],
                          [r["scores"][1] for r in records])
    overall = next(row for row in cells if row[0] == "all" and row[1] == "nodule")
    assert overall[header.index("AUROC")].startswith(f"{auroc:.2f} (")
    assert overall[header.index("n")] == str(N)


def test_a_cluster_click_lists_exemplars_and_one_opens_with_its_map(window, monkeypatch, qapp,
                                                                    qtbot, audits):
    view = _open_from_menu(window, monkeypatch, audits["demo"])
    browser = view.results.clusters
    view.tabs.setCurrentWidget(browser)
    clusters = json.loads((audits["demo"] / "clusters.json").read_text())
    expected = {(c["class"], i): k for c in clusters["classes"]
                for i, k in enumerate(c.get("clusters", []))}
    assert expected and set(browser.buttons) == set(expected)
    for key, cluster in expected.items():
        assert browser.buttons[key].text().startswith(
            f"#{cluster['id']} · {cluster['size']} images")
    key, cluster = next(iter(expected.items()))
    qtbot.mouseClick(browser.buttons[key], Qt.MouseButton.LeftButton)
    assert browser.buttons[key].isChecked()
    members = cluster["exemplars"]["central"] + cluster["exemplars"]["atypical"]
    items = [browser.exemplar_list.item(i) for i in range(browser.exemplar_list.count())]
    assert [it.text().split(" · ")[0] for it in items] == [m["case"] for m in members]
    # The exemplar opens with the audited model, method and layer, whatever the window shows.
    window.load_model("demo-biased")
    assert pump(qapp, lambda: window.model_spec == "demo-biased")
    window.set_method("gradcampp")
    target = members[-1]  # the most atypical listed
    item = items[-1]
    browser.exemplar_list.scrollToItem(item)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS,
                          check_params_cb=lambda method, _layer: method == "gradcam"):
        qtbot.mouseClick(browser.exemplar_list.viewport(), Qt.MouseButton.LeftButton,
                         pos=browser.exemplar_list.visualItemRect(item).center())
    # The image is on show with its map, drawn with the audited model's method and layer.
    assert pump(qapp, lambda: window.model_spec == "demo" and window.image is not None
                and str(window.image.path) == target["path"] and window.result is not None)
    assert window.method == "gradcam" and window.layer == view.audit["layer"]


def test_any_two_opened_audits_are_compared(window, monkeypatch, qtbot, audits):
    window.open_audit_view()
    view = window.audit_view
    view.results.clear_results()
    # Nothing ran in this window, yet Compare with… works: it asks for both audits.
    assert not view.audits and view.compare_button.isEnabled()
    asked = _answer_dialogs(monkeypatch, audits["demo"], audits["demo-biased"])
    qtbot.mouseClick(view.compare_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 2 and list(view.audits) == ["demo", "demo-biased"]
    contents = {n: json.loads((f / "audit.json").read_text()) for n, f in audits.items()}
    role = view.role_combo.currentText()
    assert view.comparison() == compare(contents, role=role)
    assert view.finding.text() == compare(contents, role=role)["finding"] + "."
    assert len(view.results.performance_tables()) == 2
    assert view.results.clusters.audit_combo.count() == 2
    # A third folder that is not an audit leaves the two on show and says why.
    _answer_dialogs(monkeypatch, audits["demo"].parent)
    qtbot.mouseClick(view.compare_button, Qt.MouseButton.LeftButton)
    assert list(view.audits) == ["demo", "demo-biased"]
    assert "not an audit folder" in view.status.text()
