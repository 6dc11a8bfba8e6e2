"""The export dialog: de-identified by default, previews, writes off the GUI thread."""

from __future__ import annotations

import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom
from export_leaks import found

from engine.studies.image import open_image

VIEW_STATE = {
    "window": (1500, 2000),
    "invert": False,
    "opacity": 0.6,
    "colormap": "turbo",
    "threshold": 0.0,
    "method": "gradcam",
    "layer": "features.3",
}


@pytest.fixture()
def dialog(qtbot, tmp_path):
    from gui.export_dialog import QtExportDialog

    image = open_image(write_fake_dicom(tmp_path / "LUCIDA-ID-424242.dcm", size=32))
    widget = QtExportDialog(None, fake_result(image), image, VIEW_STATE)
    qtbot.addWidget(widget)
    return widget


def test_defaults_are_safe_and_preview_appears(dialog, qtbot):
    assert dialog.deidentify.isChecked()
    assert FAKE["PatientID"] not in dialog.folder.text()  # the file name carries the ID
    qtbot.waitUntil(
        lambda: dialog.preview.pixmap() is not None and not dialog.preview.pixmap().isNull(),
        timeout=20000,
    )
    assert "Grad-CAM" in dialog.preview.toolTip()
    opts = dialog.options()
    assert opts.colormap == "turbo" and opts.opacity == 0.6 and opts.dpi == 300
    dialog.deidentify.setChecked(False)
    assert not dialog.identity_warning.isHidden()


def test_export_writes_deidentified_files(dialog, qtbot, tmp_path):
    out = tmp_path / "out"
    dialog.folder.setText(str(out))
    dialog.resolution_box.setCurrentIndex(0)
    dialog.layout_box.setCurrentIndex(0)
    for fmt, box in dialog.output_checks.items():
        box.setChecked(fmt in ("png", "dicom"))
    with qtbot.waitSignal(dialog.sig_exported, timeout=30000) as blocker:
        dialog.export_button.click()
        assert not dialog.export_button.isEnabled()  # busy: the GUI thread is free, not blocked
    names = sorted(p.name for p in blocker.args[0])
    assert names == ["figure.png", "figure_sc.dcm", "report.json"]
    assert "Wrote 3 files" in dialog.status.text()
    for path in blocker.args[0]:
        assert not found(path, FAKE["PatientName"]) and not found(path, FAKE["PatientID"])


def test_failed_export_says_why(dialog, qtbot, tmp_path):
    blocker_file = tmp_path / "file"
    blocker_file.write_text("x")
    dialog.folder.setText(str(blocker_file))
    dialog.resolution_box.setCurrentIndex(0)
    dialog.export_button.click()
    qtbot.waitUntil(lambda: "not a folder" in dialog.status.text(), timeout=30000)
    assert dialog.export_button.isEnabled()
    assert blocker_file.read_text() == "x"


def _four_maps_dialog(qtbot, tmp_path, view_state):
    from gui.export_dialog import QtExportDialog

    image = open_image(write_fake_dicom(tmp_path / "case.dcm", size=32))
    result = fake_result(image, methods=("gradcam", "scorecam"), layers=("features.3", "head"))
    widget = QtExportDialog(None, result, image, view_state)
    qtbot.addWidget(widget)
    return widget


def _export(dialog, qtbot, out, formats=("pdf",)):
    import json

    dialog.folder.setText(str(out))
    dialog.resolution_box.setCurrentIndex(0)
    for fmt, box in dialog.output_checks.items():
        box.setChecked(fmt in formats)
    with qtbot.waitSignal(dialog.sig_exported, timeout=30000):
        dialog.export_button.click()
    return json.loads((out / "report.json").read_text())


def test_export_holds_the_map_on_screen_unless_all_layers_is_chosen(qtbot, tmp_path):
    view = {**VIEW_STATE, "method": "scorecam", "layer": "head"}
    dialog = _four_maps_dialog(qtbot, tmp_path, view)
    assert not dialog.all_maps.isChecked() and "(4)" in dialog.all_maps.text()
    content = _export(dialog, qtbot, tmp_path / "shown")
    assert [(m["method"], m["layer"]) for m in content["maps"]] == [("scorecam", "head")]
    dialog.all_maps.setChecked(True)
    content = _export(dialog, qtbot, tmp_path / "all")
    assert len(content["maps"]) == 4


def test_a_shown_compare_grid_is_the_default_layout_and_is_exported(qtbot, tmp_path):
    compare = [("gradcam", "features.3"), ("gradcam", "head")]
    dialog = _four_maps_dialog(qtbot, tmp_path, {**VIEW_STATE, "compare": compare})
    assert dialog.layout_box.currentData() == "grid"
    qtbot.waitUntil(lambda: bool(dialog.preview.toolTip()), timeout=20000)
    assert "at layers features.3, head" in dialog.preview.toolTip()
    content = _export(dialog, qtbot, tmp_path / "grid", formats=("png", "pdf"))
    assert [(m["method"], m["layer"]) for m in content["maps"]] == compare


def test_the_preview_burns_in_what_the_export_will(qtbot, tmp_path):
    from gui.export_dialog import QtExportDialog

    image = open_image(write_fake_dicom(tmp_path / "case.dcm", size=32))
    widget = QtExportDialog(None, fake_result(image), image, {**VIEW_STATE, "corners": True})
    qtbot.addWidget(widget)

    def burned():
        return " ".join(widget.preview_burned_in)

    qtbot.waitUntil(lambda: bool(widget.preview_burned_in), timeout=20000)
    assert FAKE["PatientID"] not in burned()
    widget.deidentify.setChecked(False)  # identified research export: the corners name the patient
    qtbot.waitUntil(lambda: FAKE["PatientID"] in burned(), timeout=20000)
    widget.deidentify.setChecked(True)
    qtbot.waitUntil(lambda: FAKE["PatientID"] not in burned(), timeout=20000)
