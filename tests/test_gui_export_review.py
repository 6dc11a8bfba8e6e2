"""The window hands its export what is on screen: the trust metrics measured for the map shown,
the colour scale, the ROI and the display, as one :class:`engine.export.ReviewedView`."""

from __future__ import annotations

from pathlib import Path

from gui_fixtures import WAIT_MS
from pypdf import PdfReader


def test_the_export_dialog_gets_the_metrics_of_the_map_on_screen(window, qtbot, tmp_path):
    window.open_export()
    before = window._export_dialog
    assert before.view.metrics is None  # nothing measured yet: the report says none
    assert before.view.method == window.method and before.view.scale == window.layer_model.scale
    assert Path(before.folder.text()).name.startswith("case-")  # no file name in the folder
    before.reject()
    window.open_trust_panel()
    qtbot.waitUntil(lambda: "deletion_auc" in window.trust_panel.metrics, timeout=WAIT_MS)
    shown = dict(window.trust_panel.metrics)
    window.open_export()
    dialog = window._export_dialog
    assert dialog.view.metrics["deletion_auc"] == shown["deletion_auc"]
    assert dialog.view.metrics["method"] == window.method
    out = tmp_path / "export"
    dialog.folder.setText(str(out))
    dialog.resolution_box.setCurrentIndex(0)
    for fmt, box in dialog.output_checks.items():
        box.setChecked(fmt == "pdf")
    with qtbot.waitSignal(dialog.sig_exported, timeout=WAIT_MS):
        dialog.export_button.click()
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(out / "report.pdf").pages)
    assert f"{shown['deletion_auc']:.4g}" in text and "Trust metrics" in text
    dialog.reject()
    window.docks["trust"].hide()
