"""The trust panel groups the battery by family, marks each figure, shows the uncertainty line
beside the map, and runs on the worker with progress and a Cancel button."""

from __future__ import annotations

import torch
from gui_fixtures import WAIT_MS, demo_window
from PySide6.QtCore import Qt
from torch import nn

from engine.metrics.reading import FAMILIES
from engine.metrics.uncertainty import prediction_uncertainty
from engine.models.loaded import LoadedModel
from engine.models.preprocess import InputSpec
from gui.trust_panel import QtTrustPanel


def _uncertainty() -> dict:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2))
    model = LoadedModel.from_module(net, classes=["a", "b"], input=InputSpec(
        size=(16, 16), channels=1, mean=(0.5,), std=(0.25,)))
    return prediction_uncertainty(model, torch.randn(1, 1, 16, 16), 0, "gradcam", "0", n=5)


def test_families_meanings_and_markers(qtbot):
    panel = QtTrustPanel()
    qtbot.addWidget(panel)
    panel.show()
    u = _uncertainty()
    panel.set_metrics({
        "score": 0.9, "deletion_auc": 0.1, "lerf_auc": 0.8, "sanity_similarity": 0.7,
        "sanity_passed": False, "random_label_spearman": 0.95, "pointing_hit": True,
        "summary": "faithful: removing the top 10% salient pixels drops it", "uncertainty": u,
        "families": {"complexity": [{"name": "sparseness", "value": 0.61, "meaning": "Gini",
                                     "judgement": "good"}]},
    })
    order = [f for f, _m, _k in FAMILIES]
    shown = panel.families()
    assert shown == [f for f in order if f in shown]
    assert shown[:2] == ["uncertainty", "robustness"] and "complexity" in shown
    heads = [panel.table.item(i, 0).text() for i in range(panel.table.rowCount())
             if panel.table.item(i, 1) is None]
    meanings = dict((f, m) for f, m, _k in FAMILIES)
    assert heads[0] == f"Uncertainty: {meanings['uncertainty']}"
    marks = panel.markers()
    assert marks["Deletion AUC (lower is better)"] == "good"  # the verdict is "faithful"
    assert marks["Similarity, top layers randomised"] == "poor"
    assert marks["Other-class correlation"] == "poor"
    assert marks["Peak inside ROI"] == "good" and marks["sparseness"] == "good"
    n, flips = u["augmentations"], u["decision_flips"]
    assert panel.row_texts()["Augmentations that agree"] == f"{n - flips}/{n}"
    assert panel.uncertainty.isVisible()
    assert panel.uncertainty.text() == f"Uncertainty: {u['summary']}"


def test_the_battery_runs_on_the_worker_is_cancelled_then_completes(qapp, qtbot, tmp_path):
    win = demo_window(qapp, tmp_path)
    try:
        win.docks.get("trust") and win.docks["trust"].hide()
        win.open_trust_panel()
        panel = win.trust_panel
        # The window computes on opening: a click on Cancel stops that run.
        qtbot.waitUntil(lambda: panel.cancel.isVisible(), timeout=WAIT_MS)
        qtbot.mouseClick(panel.cancel, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.compute.isEnabled(), timeout=WAIT_MS)
        assert "uncertainty" not in panel.metrics and not panel.cancel.isVisible()
        messages = []
        panel.progress.valueChanged.connect(lambda _v: messages.append(panel.progress.format()))
        qtbot.mouseClick(panel.compute, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "uncertainty" in panel.metrics, timeout=WAIT_MS * 3)
        # The bar moved and named what it was doing (updates are coalesced, so which steps
        # are seen depends on the machine's speed; at least one is).
        assert messages and any(m.strip() and m.strip() != "%p%" for m in messages), messages
        families = panel.families()
        for family in ("uncertainty", "robustness", "faithfulness", "complexity",
                       "randomisation"):
            assert family in families, family
        # The families battery ran on the map on screen: its robustness figures are shown.
        rows = panel.row_texts()
        assert {"max sensitivity", "avg sensitivity", "local lipschitz", "sparseness"} <= set(rows)
        assert panel.uncertainty.isVisible()
        line = panel.metrics["uncertainty"]["summary"]
        assert panel.uncertainty.text().endswith(line)
        assert line in win.status.message.text()
    finally:
        win.close()
