"""Two models, one case: demo against demo-biased side by side, synced, and as a figure."""

from __future__ import annotations

import numpy as np
from gui_fixtures import demo_window, image_named, pump

from engine.metrics.localisation import energy_in_roi, roi_mask
from gui.study_browser import IMAGE_ROLE

#: A nodule case of the site whose images carry the marker, and the marker's box.
CASE, MARKER_BOX = "phantom_0002.dcm", (113, 7, 124, 18)


def test_model_comparison_on_the_demo(qapp, tmp_path):
    win = demo_window(qapp, tmp_path)
    try:
        win.show_image(image_named(win, CASE).data(0, IMAGE_ROLE))
        assert pump(qapp, lambda: win.result is not None and win.image.path.name == CASE)
        compare = win.model_compare
        assert compare.compare("demo-biased") is not None
        view = compare.view
        assert pump(qapp, lambda: view.maps_drawn() and len(compare.results) == 2), \
            "the model comparison never drew both maps"
        first, second = compare.results
        # Same image, frame, method and class; two different models, each at its default layer.
        assert first.model["name"] == "demo" and second.model["name"] == "demo-biased"
        assert first.model["sha256"] != second.model["sha256"]
        assert (first.image_path, first.frame, first.target_name) == (
            second.image_path, second.frame, second.target_name)
        assert [m for m, _lay in first.maps] == [m for m, _lay in second.maps] == [win.method]
        assert (win.method, win.model.default_layer) in first.maps
        assert (win.method, compare.models["demo-biased"].default_layer) in second.maps
        a, b = (cell.viewer.layer.heatmap for cell in view.cells)
        assert a is not None and b is not None and a.shape == b.shape
        # The biased model looks at the marker, the unbiased one hardly at all.
        marker = roi_mask(a.shape, MARKER_BOX)
        assert energy_in_roi(b, marker) > 2 * energy_in_roi(a, marker)
        assert np.abs(a - b).mean() > 0.05
        assert "demo-biased" in view.cells[1].title.text()
        assert "demo" in view.cells[0].title.text()
        # Zoom, pan and window are synced.
        left, right = (cell.viewer for cell in view.cells)
        left.zoom_by(2.0)
        qapp.processEvents()
        assert right.zoom() == left.zoom()
        assert not right.fitted()
        left.horizontalScrollBar().setValue(left.horizontalScrollBar().value() + 15)
        qapp.processEvents()
        centre = left.view_state()[1]
        assert (right.view_state()[1] - centre).manhattanLength() < 1.0
        left.set_window(1800.0, 1200.0)
        assert right.window == (1800.0, 1200.0)
        # The figure export has the same layout.
        out = tmp_path / "cmp.png"
        assert compare.export(str(out)) is not None
        assert pump(qapp, out.exists)
        assert out.stat().st_size > 10_000
    finally:
        win.close()
