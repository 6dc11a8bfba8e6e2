"""The two-model view gives numbers: each model's prediction and its map's energy share in a
common region, the other model's top region until an ROI is drawn, then the ROI."""

from __future__ import annotations

from gui_fixtures import click_item, demo_window, drag, image_named, pump
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QInputDialog

from engine.export.figure import probability_text
from engine.metrics.model_agreement import model_agreement

#: A nodule case of the site whose images carry the marker, and the marker's box.
CASE, MARKER_BOX = "phantom_0002.dcm", (113, 7, 124, 18)


def answer_model_question(qtbot, spec: str) -> None:
    """Answer Tools ▸ Compare with model…'s question like a person: type ``spec``, press OK."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog):
            QTimer.singleShot(20, answer)  # not shown yet
            return
        dialog.setTextValue(spec)
        box = dialog.findChild(QDialogButtonBox)
        qtbot.mouseClick(box.button(QDialogButtonBox.StandardButton.Ok),
                         Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)


def _percent(share: float) -> str:
    return f"<b>{share:.0%}</b>"


def test_the_two_model_view_gives_predictions_and_shares(qapp, qtbot, tmp_path):
    win = demo_window(qapp, tmp_path)
    try:
        click_item(win.browser.tree, image_named(win, CASE))
        assert pump(qapp, lambda: win.image.path.name == CASE and win.result is not None
                    and not win.worker.busy())
        answer_model_question(qtbot, "demo-biased")
        win.actions_by_id["compare_models"].trigger()
        compare = win.model_compare
        view = compare.view
        assert pump(qapp, lambda: view.maps_drawn() and len(compare.results) == 2
                    and view.numbers.text() != "")
        a, b = (cell.viewer.layer.heatmap for cell in view.cells)
        text = view.numbers.text()
        # No ROI: each map's share in the other model's top 10 % region.
        top = model_agreement(a, b)
        assert "top 10% region" in text, text
        assert _percent(top.share_a) in text and _percent(top.share_b) in text, text
        for result in compare.results:
            assert result.model["name"] in text
            assert probability_text(float(result.scores[result.target])) in text
        assert f"IoU {top.top_iou:.2f}" in text

        # An ROI drawn over the marker: both shares in the same region, updated at once.
        win.actions_by_id["roi_box"].trigger()
        with qtbot.waitSignal(win.viewer.sig_roi_changed, timeout=5000):
            drag(win.viewer, QPointF(*MARKER_BOX[:2]), QPointF(*MARKER_BOX[2:]))
        assert win.roi is not None
        text = view.numbers.text()
        assert "in the drawn ROI" in text, text
        in_roi = model_agreement(a, b, roi=win.roi, roi_shape=win.roi_shape)
        assert _percent(in_roi.share_a) in text and _percent(in_roi.share_b) in text, text
        assert in_roi.share_b > 2 * in_roi.share_a
    finally:
        win.close()
