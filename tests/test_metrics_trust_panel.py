"""The trust panel shows what case_metrics returns: table, curves, summary and warning badge."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QImage

from gui.trust_panel import QtTrustPanel


def _metrics(passed: bool) -> dict:
    return {
        "score": 0.93,
        "deletion_auc": 0.12,
        "insertion_auc": 0.81,
        "average_drop": 12.5,
        "increase_in_confidence": False,
        "sanity_spearman": 0.37 if not passed else 0.05,
        "sanity_similarity": 0.91 if not passed else 0.05,
        "sanity_passed": passed,
        "pointing_hit": True,
        "energy_in_roi": 0.42,
        "curves": {
            "deletion": {"fractions": [0, 0.5, 1], "scores": [0.93, 0.2, 0.1], "auc": 0.12},
            "insertion": {"fractions": [0, 0.5, 1], "scores": [0.1, 0.8, 0.93], "auc": 0.81},
        },
        "summary": "faithful: removing the top 10% salient pixels drops the nodule probability "
        "from 0.93 to 0.21",
        "warnings": [] if passed else ["the map barely changes when the model is randomised"],
    }


def test_panel_shows_metrics_and_badge(qtbot):
    panel = QtTrustPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_metrics(_metrics(passed=True))
    rows = panel.row_texts()
    assert rows["Deletion AUC (lower is better)"] == "0.120"
    assert rows["Saliency share in ROI"] == "42%"
    assert rows["Peak inside ROI"] == "yes"
    assert "IoU at 50% of peak" not in rows  # absent keys are not shown
    assert panel.summary.text().startswith("faithful: removing the top 10%")
    assert not panel.badge.isVisible()
    panel.set_metrics(_metrics(passed=False))
    assert panel.badge.isVisible() and "0.91" in panel.badge.toolTip()
    assert panel.warnings.isVisible()
    panel.set_metrics({})
    assert panel.table.rowCount() == 0 and not panel.badge.isVisible()


def test_curves_are_drawn_in_their_colours(qtbot):
    panel = QtTrustPanel()
    qtbot.addWidget(panel)
    panel.resize(320, 420)
    panel.show()
    panel.set_metrics(_metrics(passed=True))
    pts = panel.plot.points("deletion")
    rect = panel.plot.plot_rect()
    assert pts[0].y() < pts[-1].y()  # deletion falls: first point is higher on screen
    assert pts[0].x() == pytest.approx(rect.left()) and pts[-1].x() == pytest.approx(rect.right())
    img = QImage(panel.plot.size(), QImage.Format.Format_RGB32)
    img.fill(0xFFFFFFFF)
    panel.plot.render(img)
    colours = {img.pixelColor(x, y).name() for x in range(img.width()) for y in range(img.height())}
    assert any(c.startswith("#c8") or c.startswith("#c7") for c in colours)  # red deletion curve


def test_busy_state_and_compute_signal(qtbot):
    panel = QtTrustPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_busy(True)
    assert panel.progress.isVisible() and not panel.compute.isEnabled()
    panel.set_progress(0.5, "deletion curve")
    assert panel.progress.value() == 500
    panel.set_busy(False)
    assert not panel.progress.isVisible() and panel.compute.isEnabled()
    with qtbot.waitSignal(panel.sig_compute_requested, timeout=1000):
        panel.compute.click()
