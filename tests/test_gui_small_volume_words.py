"""A volume speaks one convention everywhere: slices × rows × columns, counted from 1."""

from __future__ import annotations

import re

from gui_fixtures import click_item, demo_window, pump
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from engine.export.content import size_text


def test_crosshair_and_size_read_the_same_in_panel_status_bar_and_report(qapp, tmp_path):
    window = demo_window(qapp, tmp_path)
    try:
        click_item(window.browser.tree, window.browser.volume_items()[0])
        assert pump(qapp, lambda: window.volume_shown() and window.volumes.is_ready())
        axial = window.volume_view.panes["axial"]
        QTest.mouseClick(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         axial.to_widget(40.0, 100.0).toPoint())
        panel = re.search(r"Crosshair: (slice \d+, row \d+, column \d+)",
                          window.volume_view.info.text()).group(1)
        assert window.pixel_label.text().startswith(panel + ":")

        volume = window.volumes.volume
        s, r, c = volume.shape
        assert f"{s}×{r}×{c} volume" in window.caption.text()
        report = size_text({"size": list(volume.shape), "spacing_mm": volume.spacing})
        assert report.startswith(f"{s} × {r} × {c} voxels (slices × rows × columns)")
    finally:
        window.close()
