"""A volume's export is as complete as an image's: the export dialog with its options, the
multi-frame Parametric Map, filing with an SR, and a planes figure that says which way the
patient lies, what the colours mean and what the model predicted."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from gui_fixtures import WAIT_MS, pump
from pypdf import PdfReader
from PySide6.QtCore import QSettings, Qt

from engine.core.case import Verdict
from engine.core.resources import RESOURCES
from engine.explain.colour import colormap_lut
from engine.explain.session import ExplainRequest, Session
from engine.export.dicom_objects import PATIENT_STUDY, volume_map_objects
from engine.export.dicom_pm import PM_SERIES_DESCRIPTION
from engine.export.dicom_sr import SR_SERIES_DESCRIPTION
from engine.export.figure import prediction_line
from engine.export.volume import plane_figure, plane_letters
from engine.export.volume_report import PLANES_FIGURE, write_volume_exports
from engine.models.loaded import load_model
from engine.studies.tree import open_paths
from gui.main_window import QtMainWindow
from gui.volume_export import QtVolumeExportDialog
from tests.pacs_fixtures import dciodvfy_errors

LAYER = "features.6"


@pytest.fixture(scope="module")
def case():
    volume = open_paths([str(RESOURCES / "studies" / "demo-ct" / "chest_ct")]).all_volumes()[0]
    result = Session(device="cpu").explain(ExplainRequest(
        image=volume, model=load_model("demo-3d"), methods=["gradcam"], layers=[LAYER]))
    return volume, result


def test_each_plane_is_lettered_from_the_volume_s_affine(case):
    volume, _result = case
    letters = {p: tuple(vars(plane_letters(volume, p)).values())
               for p in ("axial", "coronal", "sagittal")}
    # Left, right, top, bottom, as the viewer's panes show them.
    assert letters == {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"),
                       "sagittal": ("A", "P", "S", "I")}


def test_the_planes_figure_has_a_colour_bar_and_the_prediction(case):
    volume, result = case
    heat = result.maps["gradcam", LAYER].heatmap
    bare = plane_figure(volume, [("Grad-CAM", heat)])
    full = plane_figure(volume, [("Grad-CAM", heat)], units="relevance",
                        prediction=prediction_line(result))
    assert full.shape[1] == bare.shape[1] and full.shape[0] > bare.shape[0] + 30
    # The bar holds the colour map's low and high ends, side by side on one row.
    lut = colormap_lut("jet").astype(int)
    rows = [r for r in full[-60:] if (np.abs(r.astype(int) - lut[0]).sum(1) < 30).any()
            and (np.abs(r.astype(int) - lut[-1]).sum(1) < 30).any()]
    assert rows, "no colour bar under the planes"
    # A prediction line on top: the first rows are no longer the planes' first rows.
    assert not np.array_equal(full[:18], bare[:18])
    text = prediction_line(result)
    assert text.startswith(f"Prediction: {result.classes[int(np.argmax(result.scores))]} (p")
    assert f"explained: {result.target_name}" in text


def test_the_export_writes_the_parametric_map_and_records_the_figure(case, tmp_path):
    volume, result = case
    written = write_volume_exports(result, volume, tmp_path, "pdf,png,pm",
                                   figure_options={"method": "gradcam", "layer": LAYER})
    names = {p.name for p in written}
    assert {PLANES_FIGURE, "report.pdf", "report.json",
            "explanation_pm_gradcam_features-6.dcm"} <= names
    pm_path = tmp_path / "explanation_pm_gradcam_features-6.dcm"
    assert dciodvfy_errors(pm_path) == []
    pm = pydicom.dcmread(pm_path)
    assert pm.SeriesDescription == PM_SERIES_DESCRIPTION
    assert int(pm.NumberOfFrames) == volume.shape[0] and pm.PatientName == "Anonymous"
    figure = json.loads((tmp_path / "report.json").read_text())["planes_figure"]
    assert figure["letters"]["axial"] == ["R", "L", "A", "P"]
    assert figure["colour_bar"]["units"] == result.maps["gradcam", LAYER].units
    assert figure["prediction"] == prediction_line(result)
    text = " ".join(" ".join(page.extract_text().split())
                    for page in PdfReader(tmp_path / "report.pdf").pages)
    assert result.target_name in text and "Research use only" in text


def test_filing_objects_are_a_parametric_map_and_an_sr_with_the_verdict(case, tmp_path):
    volume, result = case
    verdict = Verdict("disagree", "map on the table")
    objects = volume_map_objects(result.maps, volume, kind=PATIENT_STUDY, result=result,
                                 verdict=verdict)
    assert [o.name for o in objects] == ["pm_gradcam_features-6.dcm", "sr.dcm"]
    first = volume.images[0].dataset
    for obj, description in zip(objects, (PM_SERIES_DESCRIPTION, SR_SERIES_DESCRIPTION),
                                strict=True):
        path = tmp_path / obj.name
        path.write_bytes(obj.to_bytes())
        assert dciodvfy_errors(path) == [], obj.name
        ds = pydicom.dcmread(path)
        assert ds.SeriesDescription == description
        assert ds.StudyInstanceUID == first.StudyInstanceUID
    sr = pydicom.dcmread(tmp_path / "sr.dcm")
    flat = str(sr.ContentSequence)
    assert "map on the table" in flat and result.target_name in flat
    pm_uid = pydicom.dcmread(tmp_path / "pm_gradcam_features-6.dcm").SOPInstanceUID
    assert pm_uid in flat


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """The window on the demo study, its CT series shown and explained with demo-3d."""
    folder = tmp_path_factory.mktemp("volume_export")
    win = QtMainWindow(settings=QSettings(str(folder / "lucida.ini"),
                                          QSettings.Format.IniFormat))
    win.resize(1440, 900)
    win.show()
    drawn = []
    win.volumes.sig_map_drawn.connect(lambda: drawn.append(win.layer))
    win.open_demo()
    assert pump(qapp, lambda: win.result is not None), "the demo never explained its image"
    win.browser._clicked(win.browser.volume_items()[0])
    assert pump(qapp, lambda: drawn and win.volume_shown()), "the demo CT was never explained"
    yield win
    win.close()


def test_the_window_exports_a_volume_through_the_export_dialog(window, qapp, qtbot, tmp_path):
    window.actions_by_id["export"].trigger()
    dialog = window._export_dialog
    assert isinstance(dialog, QtVolumeExportDialog) and dialog.isVisible()
    assert dialog.deidentify.isChecked() and dialog.kinds.kind_research.isChecked()
    assert set(dialog.output_checks) == {"pdf", "html", "png", "nifti", "pm"}
    assert pump(qapp, lambda: dialog.preview.pixmap() is not None
                and not dialog.preview.pixmap().isNull()), dialog.preview.text()
    folder = tmp_path / "case"
    dialog.folder.setText(str(folder))
    # Ticked from the keyboard: two quick clicks in a row would make a double click.
    for fmt in ("pm", "nifti"):
        qtbot.keyClick(dialog.output_checks[fmt], Qt.Key.Key_Space)
    assert set(dialog.formats()) == {"pdf", "png", "pm", "nifti"}
    with qtbot.waitSignal(dialog.sig_exported, timeout=WAIT_MS) as exported:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    names = {p.name for p in exported.args[0]}
    key = f"gradcam_{window.layer.replace('.', '-')}"
    assert {"report.pdf", "report.json", PLANES_FIGURE, f"heatmap_{key}.nii.gz",
            f"explanation_pm_{key}.dcm"} <= names
    assert all((folder / name).is_file() for name in names)
    assert dciodvfy_errors(folder / f"explanation_pm_{key}.dcm") == []
    assert "Wrote" in dialog.status.text() and "de-identified" in dialog.status.text()
    assert pump(qapp, dialog.idle)
    dialog.reject()
