"""The pixel readout belongs to the image on screen: switching images never leaves the last
image's value (or its unit) in the status bar, and an image that cannot be shown reads nothing."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from gui_fixtures import PYDICOM_FILES, WAIT_MS, click_item, demo_window, image_named, pump
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest


@pytest.fixture
def window(qapp, tmp_path):
    win = demo_window(qapp, tmp_path)
    yield win
    win.close()



def hover_middle(window) -> None:
    """Move the mouse onto the middle of the viewer (two moves: the second one is a move even
    where the cursor already was there)."""
    port = window.viewer.viewport()
    middle = port.rect().center()
    QTest.mouseMove(port, middle - QPoint(3, 3))
    QTest.mouseMove(port, middle)


def _explained(qapp, window, name: str) -> bool:
    """Wait until ``name`` is shown, fitted and explained (the view has settled)."""
    return pump(qapp, lambda: window.image is not None and window.image.path.name == name
                and window.result is not None)


def test_switching_images_clears_the_readout_and_a_failed_image_reads_nothing(
        window, qapp, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "ct.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", folder / "mr.dcm")
    # A header that opens, with pixels no decoder reads: shown as "cannot be displayed".
    bad = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    bad.BitsAllocated = 12
    bad.save_as(folder / "bad_bits.dcm")
    window.open_paths([str(folder)])
    assert pump(qapp, lambda: {"ct.dcm", "mr.dcm"} <= {
        item.text(0).split()[-1] for item in window.browser.tree.findItems(
            "", Qt.MatchFlag.MatchContains | Qt.MatchFlag.MatchRecursive)}, WAIT_MS)

    click_item(window.browser.tree, image_named(window, "ct.dcm"))
    assert _explained(qapp, window, "ct.dcm")
    hover_middle(window)
    assert " HU" in window.pixel_label.text()

    click_item(window.browser.tree, image_named(window, "mr.dcm"))
    assert _explained(qapp, window, "mr.dcm")
    assert "HU" not in window.pixel_label.text()  # the CT's value is gone with the CT
    hover_middle(window)
    readout = window.pixel_label.text()
    assert readout.startswith("x ") and "HU" not in readout  # an MR value has no HU

    click_item(window.browser.tree, image_named(window, "bad_bits.dcm"))
    assert pump(qapp, lambda: window.viewer.message() != "")
    assert window.pixel_label.text() == ""
    hover_middle(window)
    assert window.pixel_label.text() == ""  # nothing shown, nothing to read
