"""The window list, the caption, the corner and the readout agree on the window and its unit."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from gui_fixtures import PYDICOM_FILES, WAIT_MS, click_item, demo_window, image_named, pump
from PIL import Image as PILImage
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from engine.studies.windows import window_text, window_value
from gui.view_commands import CUSTOM_WINDOW


@pytest.fixture
def window(qapp, tmp_path):
    win = demo_window(qapp, tmp_path)
    yield win
    win.close()



def _open_folder(qapp, window, folder, names) -> None:
    window.open_paths([str(folder)])

    def listed() -> bool:
        try:
            return all(image_named(window, name) for name in names)
        except KeyError:
            return False

    assert pump(qapp, listed, WAIT_MS)


def _shown(qapp, window, name: str) -> bool:
    return pump(qapp, lambda: window.image is not None and window.image.path.name == name
                and not window.viewer.rendered_image().isNull())


def test_the_window_list_says_custom_only_after_a_drag_and_rt_dose_reads_in_gy(
        window, qapp, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = np.arange(60, dtype=np.uint8) * 4
    PILImage.fromarray(rgb).save(folder / "colour.png")
    dose = pydicom.dcmread(PYDICOM_FILES / "rtdose.dcm")
    dose.DoseUnits = "GY"  # the bundled file is in relative units
    dose.save_as(folder / "dose.dcm")
    _open_folder(qapp, window, folder, ["colour.png", "dose.dcm"])
    combo = window.preset_combo

    click_item(window.browser.tree, image_named(window, "colour.png"))
    assert _shown(qapp, window, "colour.png")
    # A colour image has no window: the list says so, and never "Custom" (nothing was dragged).
    assert not combo.isEnabled() and combo.currentIndex() == -1
    assert "Custom" not in combo.placeholderText()

    click_item(window.browser.tree, image_named(window, "dose.dcm"))
    assert _shown(qapp, window, "dose.dcm")
    assert combo.isEnabled() and combo.currentText() == "File default"
    center, width = window.viewer.window
    assert width < 10  # a dose window in Gy, where whole numbers say nothing
    caption = window.caption.text()
    corner = window.measure_tools.annotations.corners.bottom_right[0]
    assert window_text(center, width) in caption
    assert corner == f"W {window_value(width)}  L {window_value(center)}"
    assert "W 0 / L 1" not in caption
    port = window.viewer.viewport()
    QTest.mouseMove(port, port.rect().center() - QPoint(2, 2))
    QTest.mouseMove(port, port.rect().center())
    assert window.pixel_label.text().split("   ")[1].endswith(" Gy")

    # A right drag sets a window of its own: only now the list says "Custom".
    start = port.rect().center()
    QTest.mousePress(port, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(port, start + QPoint(30, 20))
    QTest.mouseRelease(port, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                       start + QPoint(30, 20))
    assert combo.currentIndex() == -1 and combo.placeholderText() == CUSTOM_WINDOW
    assert window_text(*window.viewer.window) in window.caption.text()
