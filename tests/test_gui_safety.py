"""Safe review on the real window: never the wrong image, the intended-use badge, weak evidence.

Each test drives the window as a reviewer would and checks what is on screen.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gui_fixtures import PYDICOM_FILES, WAIT_MS, image_named, pump

from engine.core.resources import DEMO_STUDY


@pytest.fixture(scope="module")
def pydicom_folder(tmp_path_factory):
    """A few of pydicom's test files: a good CT, an MR, and a JPEG the codecs cannot decode."""
    folder = tmp_path_factory.mktemp("pydicom")
    for name in ("693_J2KI.dcm", "JPGExtended.dcm", "MR_small.dcm"):
        shutil.copy(PYDICOM_FILES / name, folder / name)
    return folder


def _open(window, qapp, qtbot, folder):
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(folder)])
    assert pump(qapp, lambda: not window.worker.busy())


def _click(window, qtbot, name: str) -> None:
    item = image_named(window, name)
    window.browser.tree.itemClicked.emit(item, 0)


def test_a_file_that_cannot_be_shown_leaves_nothing_of_the_one_before(window, qapp, qtbot,
                                                                      pydicom_folder):
    _open(window, qapp, qtbot, pydicom_folder)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        _click(window, qtbot, "693_J2KI.dcm")
    assert window.layer_model.heatmap is not None
    assert pump(qapp, lambda: window.panel.prediction.topLevelItemCount() == 2)
    window.open_trust_panel()
    assert pump(qapp, lambda: "deletion_auc" in window.trust_panel.metrics)

    with qtbot.waitSignal(window.sig_error, timeout=WAIT_MS) as blocker:
        _click(window, qtbot, "JPGExtended.dcm")
    assert "JPGExtended.dcm" in blocker.args[0]
    assert pump(qapp, lambda: not window.worker.busy())
    # In place of the image: a message that names the file and the fix, and nothing else.
    assert window.viewer.rendered_image().isNull()
    message = window.viewer.message()
    assert message.startswith("Cannot display JPGExtended.dcm")
    assert "Fix: pip install" in message
    assert window.viewer.overlay_image().isNull() and window.layer_model.heatmap is None
    assert window.panel.prediction.topLevelItemCount() == 0
    caption = window.caption.text()
    assert "JPGExtended.dcm" in caption and "693_J2KI" not in caption
    assert "explaining" not in caption and window.caption.badge_status is None
    assert window.trust_panel.metrics == {}
    assert window.current_result() is None
    errors = []
    window.sig_error.connect(errors.append)
    window.open_export()
    assert errors and errors[-1].startswith("nothing to export yet")
    window.docks["trust"].hide()


def test_a_late_result_for_an_image_no_longer_shown_is_dropped(window, qapp, qtbot,
                                                                pydicom_folder):
    _open(window, qapp, qtbot, pydicom_folder)
    # Occlusion with a one-pixel stride runs long enough to be overtaken by a click.
    window.param_values["occlusion"] = {**window.params_for("occlusion"), "patch": 4,
                                        "stride": 1, "batch_size": 4}
    window.set_method("occlusion")
    _click(window, qtbot, "MR_small.dcm")
    assert pump(qapp, lambda: window.jobs.is_pending("explain"))
    pending = window.jobs.latest("explain")
    finished = []
    window.worker.sig_finished.connect(lambda job, _k, _r: finished.append(job))
    _click(window, qtbot, "JPGExtended.dcm")  # fails to decode, so it asks for no map
    assert pump(qapp, lambda: pending in finished)
    assert pump(qapp, lambda: not window.worker.busy())
    assert window.image.path.name == "JPGExtended.dcm"
    assert window.result is None and window.layer_model.heatmap is None
    assert window.panel.prediction.topLevelItemCount() == 0
    assert "MR_small" not in window.caption.text()
    window.set_method("gradcam")


def test_the_badge_says_when_an_image_is_outside_the_models_intended_use(window, qapp, qtbot,
                                                                       pydicom_folder):
    _open(window, qapp, qtbot, pydicom_folder)
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        _click(window, qtbot, "MR_small.dcm")
    assert pump(qapp, lambda: window.caption.badge_status is not None)
    assert window.caption.badge_status == "mismatch"
    assert window.caption.badge.isVisible()
    assert "model is for CR/DX chest; this is MR" in window.caption.badge.text()
    # A demo image is what the model is for.
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(DEMO_STUDY)])
    assert pump(qapp, lambda: window.caption.badge_status == "match")
    assert "intended use" in window.caption.badge.text()


def test_a_card_without_intended_use_says_so(window, qapp, qtbot, tmp_path):
    from engine.models.loaded import model_dir

    card = model_dir("demo") / "card.toml"
    text = card.read_text().split("[intended_use]")[0]
    mine = tmp_path / "plain.toml"
    mine.write_text(text.replace('weights = "', f'weights = "{card.parent}/'))
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.load_model(str(mine))
    assert pump(qapp, lambda: window.caption.badge_status == "unknown")
    assert window.caption.badge.text().endswith("the model's intended use is unknown")
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.load_model("demo")


def test_a_map_for_an_unlikely_class_looks_faint_on_the_absolute_scale(window, qapp, qtbot):
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(DEMO_STUDY)], prefer="nodule")
    assert pump(qapp, lambda: not window.worker.busy())
    window.set_method("gradcam")
    assert pump(qapp, lambda: window.result is not None and window.layer_model.heatmap is not None)
    layer = window.layer_model
    layer.scale = "absolute"  # a choice: the default draws each map against its own maximum
    top = window.result.target
    # Raw values against the largest map of this model, method and layer seen so far.
    strong = layer.scaled().max()
    assert strong == pytest.approx(layer.info.scale / layer.shared_max, rel=1e-3)
    unlikely = 1 - top
    assert window.result.scores[unlikely] < 0.10
    window.set_target(unlikely)
    # The top class's map stays the shared maximum: the unlikely class's map is drawn faint.
    assert pump(qapp, lambda: window.result is not None and window.result.target == unlikely
                and layer.heatmap is not None and not window.worker.busy())
    faint = layer.scaled().max()
    assert faint < 0.6 * strong
    shared = layer.shared_max
    assert shared > layer.info.scale  # the top class's peak, in the explainer's units
    # The colour bar names the numbers and the units; the caption says the evidence is weak.
    bar = window.overlay_controls.colorbar
    assert bar.labels() == ("0", f"{shared:.3g}")
    assert layer.info.units in bar.units()
    assert "evidence for" in window.caption.text() and "is weak" in window.caption.text()
    # A map the threshold hides entirely is said to be hidden, not left to look absent.
    threshold = layer.threshold
    layer.threshold = min(1.0, faint + 0.1)
    assert "under the threshold: nothing is drawn" in window.caption.text()
    layer.threshold = threshold
    # The same map stretched to its own range looks strong: that is what the scale is for.
    layer.scale = "image"
    assert layer.scaled().max() == pytest.approx(1.0, abs=1e-3)
    layer.scale = "absolute"
    alpha = window.viewer.overlay_image()
    assert not alpha.isNull()
    window.set_target(None)


def test_the_pixel_readout_gives_the_heat_in_its_units(window, qapp, qtbot):
    from PySide6.QtCore import QPointF
    from PySide6.QtTest import QTest

    assert pump(qapp, lambda: window.layer_model.heatmap is not None)
    heat = window.layer_model.heatmap
    row, col = (int(v) for v in np.unravel_index(np.argmax(heat), heat.shape))
    viewer = window.viewer
    point = viewer.mapFromScene(QPointF(col + 0.5, row + 0.5))
    QTest.mouseMove(viewer.viewport(), point)
    scene = viewer.mapToScene(point)
    x, y = int(np.floor(scene.x())), int(np.floor(scene.y()))
    text = window.pixel_label.text()
    assert text.startswith(f"x {x}  y {y}")
    scaled, raw = window.layer_model.value_at(y, x)
    assert f"heat {scaled:.2f} ({raw:.3g} {window.layer_model.info.units})" in text


def test_a_signed_map_is_drawn_diverging_with_a_signed_colour_bar(window, qapp, qtbot):
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS):
        window.open_paths([str(DEMO_STUDY)], prefer="nodule")
    with qtbot.waitSignal(window.sig_map_drawn, timeout=WAIT_MS,
                          check_params_cb=lambda m, _l: m == "inputxgrad"):
        window.set_method("inputxgrad")
    layer = window.layer_model
    assert layer.info.signed
    heat = layer.scaled()
    assert heat.min() < 0 < heat.max()
    labels = window.overlay_controls.colorbar.labels()
    assert len(labels) == 3 and labels[0].startswith("−") and labels[1] == "0" \
        and labels[2].startswith("+")
    drawn = window.viewer.overlay_image()
    low_y, low_x = np.unravel_index(np.argmin(heat), heat.shape)
    high_y, high_x = np.unravel_index(np.argmax(heat), heat.shape)
    most_against = drawn.pixelColor(int(low_x), int(low_y))
    most_for = drawn.pixelColor(int(high_x), int(high_y))
    # Blue against the class, red for it: the diverging map, not a heat map of |values|.
    assert most_against.blue() > most_against.red() and most_for.red() > most_for.blue()
    window.set_method("gradcam")
