"""Intended use in the window: a too-small image's prediction is dimmed and says why, the
weak-evidence warning is not cut off by a long badge, and a NIfTI file's unstated modality is
said plainly, not as a mismatch."""

from __future__ import annotations

import numpy as np
from gui_fixtures import WAIT_MS, click_item, pump
from PIL import Image

from gui.caption import BADGE_STYLES
from gui.explain_panel import DIMMED_COLOUR
from gui.file_opening import DEMO_CT


def _row(tree, name: str):
    return next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if tree.topLevelItem(i).text(0).split(" ")[0] == name)


def test_a_tiny_noise_image_gets_a_dimmed_prediction_and_a_readable_warning(
        window, qapp, qtbot, tmp_path):
    png = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (16, 16), np.uint8)).save(png)
    window.resize(1440, 900)
    window.open_paths([str(png)])
    qtbot.waitUntil(lambda: window.image is not None and window.image.path == png
                    and window.result is not None and window.use_check is not None,
                    timeout=WAIT_MS)
    panel = window.panel
    assert panel.caveat.isVisible()
    assert "16 × 16 px is below the model's minimum 64 × 64" in panel.caveat.text()
    explained = _row(panel.prediction, window.result.target_name)
    # Whatever the score, nothing reads as a finding: not bold, grey.
    assert not explained.font(0).bold() and not explained.font(1).bold()
    assert explained.foreground(0).color() == DIMMED_COLOUR
    assert explained.foreground(1).color() == DIMMED_COLOUR

    # The other class has almost nothing: its evidence is weak, beside a long mismatch badge.
    other = _row(panel.prediction, "normal" if window.result.target_name != "normal"
                 else "nodule")
    click_item(panel.prediction, other)
    qtbot.waitUntil(lambda: "is weak" in window.caption.warning.text(), timeout=WAIT_MS)
    pump(qapp, lambda: False, 50)  # the caption lays out its second line
    caption = window.caption
    assert caption.badge_status == "mismatch" and caption.badge.isVisible()
    assert caption.warning.sizeHint().width() <= caption.warning.width(), \
        (caption.warning.text(), caption.warning.width(), caption.badge.width())
    assert caption.warning.elided() == caption.warning.text()
    # The badge gave way, and keeps its whole text as a tooltip.
    assert "size 16x16 below 64x64" in caption.badge.toolTip()
    # The new prediction is dimmed too.
    explained = _row(panel.prediction, window.result.target_name)
    assert not explained.font(0).bold() and explained.foreground(0).color() == DIMMED_COLOUR

    # A demo image of the model's size: plain prediction again.
    window.open_demo()
    qtbot.waitUntil(lambda: window.image is not None and window.image.path != png
                    and window.result is not None and window.use_check is not None,
                    timeout=WAIT_MS)
    assert not panel.caveat.isVisible()
    explained = _row(panel.prediction, window.result.target_name)
    assert explained.font(0).bold()


def test_the_bundled_nifti_says_its_modality_is_not_stated(window, qapp, qtbot):
    nifti = DEMO_CT / "chest_ct.nii.gz"
    tree = window.browser.tree
    row = next(item for item in window.browser.volume_items()
               if item.toolTip(0).endswith(nifti.name) or nifti.name in item.text(0))
    click_item(tree, row)
    qtbot.waitUntil(lambda: window.image is not None and window.image.path == nifti
                    and window.use_check is not None, timeout=3 * WAIT_MS)
    caption = window.caption
    assert "modality not stated (NIfTI)" in caption.badge.text()
    assert "modality unknown" not in caption.text()
    assert caption.badge_status == "unstated"
    background = BADGE_STYLES["unstated"][0]
    assert background in caption.badge.styleSheet()
    assert BADGE_STYLES["mismatch"][0] not in caption.badge.styleSheet()
