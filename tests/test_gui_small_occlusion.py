"""3-D occlusion with its default patch finds the demo CT's nodule, not the edge of the volume."""

from __future__ import annotations

import csv

import numpy as np
from gui_fixtures import WAIT_MS, click_item, demo_window, pump
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui.file_opening import DEMO_CT
from plugins.occlusion import auto_sizes


def test_default_occlusion_on_the_demo_ct_peaks_in_the_nodule(qapp, tmp_path):
    window = demo_window(qapp, tmp_path)
    try:
        click_item(window.browser.tree, window.browser.volume_items()[0])
        assert pump(qapp, lambda: window.volume_shown() and window.result is not None)
        drawn = []
        window.sig_map_drawn.connect(lambda method, _layer: drawn.append(method))
        combo = window.panel.method_combo
        combo.setFocus()
        index = combo.findData("occlusion")
        if index < 0:
            index = combo.findText("Occlusion", Qt.MatchFlag.MatchStartsWith)
        while combo.currentIndex() != index:  # the keyboard, as a person steps through it
            QTest.keyClick(combo, Qt.Key.Key_Down if combo.currentIndex() < index
                           else Qt.Key.Key_Up)
        assert window.method == "occlusion"
        params = window.params_for("occlusion")
        assert params["patch"] == 0 and params["stride"] == 0  # not set: sized to the grid
        assert pump(qapp, lambda: "occlusion" in drawn, 3 * WAIT_MS)
        heat = window.layer_model.heatmap
        peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
        with (DEMO_CT / "manifest.csv").open() as f:
            x0, y0, z0, x1, y1, z1 = (int(v) for v in next(csv.DictReader(f))["nodule_box"]
                                      .split())
        # In the nodule's slices (the old cube of 16 put the peak at slice 3), within a voxel.
        assert z0 - 1 <= peak[0] <= z1 and y0 - 1 <= peak[1] <= y1 and x0 - 1 <= peak[2] <= x1
    finally:
        window.close()


def test_default_sizes_keep_16_by_8_in_2d_and_scale_on_a_shallow_grid():
    assert auto_sizes((64, 64), 0, 0) == (16, 8)
    assert auto_sizes((224, 224), 0, 0) == (16, 8)
    assert auto_sizes((32, 64, 64), 0, 0) == (8, 4)
    assert auto_sizes((32, 64, 64), 12, 0) == (12, 6)  # the user's patch is kept
    assert auto_sizes((32, 64, 64), 16, 8) == (16, 8)
