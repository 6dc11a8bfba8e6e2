"""A segmentation model in the review window: the predicted mask outlined, a class, a region.

The demo window runs the shipped ``demo-seg`` model on the demo study's nodule case.
"""

from __future__ import annotations

import numpy as np
import pytest
from gui_fixtures import WAIT_MS, demo_window, pump
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter

from engine.explain.targets import label_map
from engine.models.loaded import load_model
from gui.overlay_layer import mask_contours


def _fill(path, shape) -> np.ndarray:
    """The pixels whose centres lie inside a painter path, as a boolean (H, W) mask."""
    rows, cols = shape
    image = QImage(cols, rows, QImage.Format.Format_Grayscale8)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(255, 255, 255))
    painter.drawPath(path)
    painter.end()
    bits = image.constBits()
    data = np.frombuffer(bits, np.uint8).reshape(rows, image.bytesPerLine())[:, :cols]
    return data > 127


@pytest.fixture(scope="module")
def seg_window(qapp, tmp_path_factory):
    win = demo_window(qapp, tmp_path_factory.mktemp("seg"))
    win.load_model("demo-seg")
    assert pump(qapp, lambda: win.model is not None and win.model.name == "demo-seg"
                and win.result is not None and win.result.model.get("name") == "demo-seg"
                and win.layer_model.heatmap is not None)
    yield win
    win.close()


def _nodule(win, qapp) -> int:
    nodule = win.result.classes.index("nodule")
    win.viewer.clear_roi()
    win.set_target(nodule)
    assert pump(qapp, lambda: win.result is not None and win.result.target == nodule
                and win.layer_model.heatmap is not None
                and not win.viewer.outline_path().isEmpty(), WAIT_MS)
    return nodule


def test_the_nodule_outline_is_the_models_argmax_mask(seg_window, qapp):
    win = seg_window
    nodule = _nodule(win, qapp)
    model = load_model("demo-seg")
    image = win.image
    logits = model.logits(model.preprocess(image, 0))
    expected = label_map(model, logits, tuple(image.shape[:2])).numpy() == nodule
    assert 0 < expected.sum() < expected.size // 4
    drawn = _fill(win.viewer.outline_path(), image.shape[:2])
    iou = (drawn & expected).sum() / (drawn | expected).sum()
    assert iou > 0.9
    assert "outlined: predicted nodule mask" in win.explain.outline_note(
        win.explain.context_key())
    # A small lesion has a small pixel share, which is not weak evidence.
    from gui.caption import describe_view

    _, details, warning = describe_view(win)
    assert any(d.startswith("explaining nodule (") and "% of the pixels)" in d for d in details)
    assert warning is None or "weak" not in warning
    assert win.panel.prediction.headerItem().text(1) == "Pixel share"
    # Another class outlines another mask.
    lung = win.result.classes.index("lung")
    win.set_target(lung)
    assert pump(qapp, lambda: win.result is not None and win.result.target == lung
                and not win.viewer.outline_path().isEmpty())
    lungs = _fill(win.viewer.outline_path(), image.shape[:2])
    assert (lungs & expected).sum() < 0.5 * expected.sum()


def test_a_drawn_region_is_what_gets_explained(seg_window, qapp):
    win = seg_window
    _nodule(win, qapp)
    before = np.array(win.layer_model.heatmap)
    rows, cols = win.image.shape[:2]
    # The upper-left quarter: lung and background, away from where the nodule map peaks.
    peak = np.unravel_index(int(np.argmax(before)), before.shape)
    x0 = 0 if peak[1] > cols // 2 else cols // 2
    win.viewer.set_roi((x0, 0, x0 + cols // 2, rows // 2))
    assert win.explain.context_key()[4][1] == (x0, 0, x0 + cols // 2, rows // 2)
    assert pump(qapp, lambda: win.layer_model.heatmap is not None and win.result is not None
                and win.explain.results.get(win.explain.context_key()) is win.result)
    after = np.array(win.layer_model.heatmap)
    assert np.abs(after - before).max() > 0.2
    assert "the drawn region" in win.explain.outline_note(win.explain.context_key())
    # Clearing the region explains the predicted mask again (from the cache).
    win.viewer.clear_roi()
    assert pump(qapp, lambda: win.layer_model.heatmap is not None)
    np.testing.assert_allclose(win.layer_model.heatmap, before)


def test_the_compare_grid_outlines_the_mask_in_every_cell(seg_window, qapp):
    win = seg_window
    _nodule(win, qapp)
    expected = _fill(win.viewer.outline_path(), win.image.shape[:2])
    win.set_compare(True)
    try:
        assert pump(qapp, lambda: win.compare.complete() and bool(win.compare.cells), WAIT_MS)
        for key, cell in win.compare.cells.items():
            drawn = _fill(cell.viewer.outline_path(), win.image.shape[:2])
            assert drawn.any() and (drawn == expected).all(), key
        # A map that draws nothing at the threshold says so in its title.
        assert pump(qapp, lambda: all(c.viewer.layer.heatmap is not None
                                      for c in win.compare.cells.values()), WAIT_MS)
        threshold, scale = win.layer_model.threshold, win.layer_model.scale
        win.layer_model.scale = "absolute"  # against the grid's shared maximum: weaker maps fade
        win.layer_model.threshold = 0.999
        try:
            for key, cell in win.compare.cells.items():
                under = cell.viewer.layer.peak() < 0.999
                assert ("under threshold" in cell.title.text()) == under, key
            assert any("under threshold" in c.title.text()
                       for c in win.compare.cells.values())
        finally:
            win.layer_model.threshold, win.layer_model.scale = threshold, scale
        assert not any("under threshold" in c.title.text()
                       for c in win.compare.cells.values() if c.viewer.layer.peak() >= threshold)
    finally:
        win.set_compare(False)


def test_switching_image_clears_the_outline(seg_window, qapp):
    from gui.study_browser import IMAGE_ROLE

    win = seg_window
    _nodule(win, qapp)
    shown = win.image
    other = next(item.data(0, IMAGE_ROLE) for item in win.browser.image_items()
                 if item.data(0, IMAGE_ROLE).path != shown.path)
    win.show_image(other)
    assert win.viewer.outline_path().isEmpty()


def test_mask_contours_run_along_pixel_edges():
    mask = np.zeros((6, 7), bool)
    mask[1:4, 2:6] = True
    mask[5, 0] = True  # touches the edge: still closed
    contours = mask_contours(mask)
    assert len(contours) == 2
    for points in contours:
        np.testing.assert_allclose(points[0], points[-1])
    box = max(contours, key=len)
    # Columns 2..5 and rows 1..3 cover x in [2, 6) and y in [1, 4) of the scene.
    assert box[:, 0].min() == pytest.approx(2.0) and box[:, 0].max() == pytest.approx(6.0)
    assert box[:, 1].min() == pytest.approx(1.0) and box[:, 1].max() == pytest.approx(4.0)
