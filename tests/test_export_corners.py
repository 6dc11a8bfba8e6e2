"""Burned-in corners are de-identified unless identifiers are kept; the two-model figure."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom
from PIL import Image as PILImage

from engine.core.errors import UsageError
from engine.export import write_reports
from engine.export.compare_figure import render_model_comparison, write_model_comparison
from engine.export.figure import FigureOptions, render_figure
from engine.studies.annotations import DEIDENTIFIED
from engine.studies.image import open_image

#: Identifying texts as the corners would write them.
IDENTIFYING = ("TESTCASE JANE QUINCY", FAKE["PatientID"], FAKE["InstitutionName"], "1970-02-03",
               "2024-01-15")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return open_image(write_fake_dicom(tmp_path_factory.mktemp("corners") / "case.dcm", size=48))


def _panel(fig, index: int = -1) -> np.ndarray:
    _title, (x0, y0, x1, y1) = fig.panels[index]
    return fig.rgb[y0:y1, x0:x1].astype(int)


def test_figure_burns_in_only_deidentified_corners_by_default(image):
    result = fake_result(image)
    options = FigureOptions(kind="overlay", dpi=200, caption=False)
    plain = render_figure(result, image, options)
    deid = render_figure(result, image, replace(options, corners=True))
    kept = render_figure(result, image, replace(options, corners=True), keep_identifiers=True)
    assert plain.burned_in == []
    assert DEIDENTIFIED in deid.burned_in
    burned = " ".join(deid.burned_in)
    assert not any(text in burned for text in IDENTIFYING)
    assert "TESTCASE JANE QUINCY" in kept.burned_in and f"ID {FAKE['PatientID']}" in kept.burned_in
    # The text is in the pixels: corners change the panel, and the kept name changes it more.
    assert np.abs(_panel(deid) - _panel(plain)).sum() > 0
    assert np.abs(_panel(kept) - _panel(deid)).sum() > 0


def test_written_reports_pass_the_identifier_check_with_corners(image, tmp_path):
    result = fake_result(image)
    state = {"corners": True, "method": "gradcam", "layer": "features.3"}
    written = write_reports(result, image, tmp_path / "deid", ["png", "dicom"],
                            figure_options=state)
    assert {p.name for p in written} >= {"figure.png", "figure_sc.dcm"}
    kept = write_reports(result, image, tmp_path / "kept", ["png"], keep_identifiers=True,
                         figure_options=state)
    deid_png = np.asarray(PILImage.open(tmp_path / "deid" / "figure.png"))
    kept_png = np.asarray(PILImage.open(next(p for p in kept if p.name == "figure.png")))
    assert deid_png.shape == kept_png.shape and np.abs(
        deid_png.astype(int) - kept_png.astype(int)).sum() > 0


def _two_models(image):
    a = fake_result(image)
    b = fake_result(image)
    heat = np.roll(b.maps["gradcam", "features.3"].heatmap, 12, axis=1)
    b = replace(b, model=dict(b.model, name="demo-biased"), scores=[0.4, 0.6],
                maps={("gradcam", "block2"): replace(b.maps["gradcam", "features.3"],
                                                     layer="block2", heatmap=heat)})
    return a, b


def test_model_comparison_figure_has_one_titled_panel_per_model(image, tmp_path):
    a, b = _two_models(image)
    fig = render_model_comparison([a, b], image, FigureOptions(dpi=100))
    assert [title for title, _box in fig.panels] == ["demo", "demo-biased"]
    assert "(a) demo, layer features.3" in fig.caption
    assert "(b) demo-biased, layer block2, 'nodule' p = 0.600" in fig.caption
    # Different maps, different panels.
    first, second = _panel(fig, 0), _panel(fig, 1)
    side = min(first.shape[1], second.shape[1])  # rounding may give one a column more
    assert np.abs(first[:, :side] - second[:, :side]).mean() > 1.0
    path = write_model_comparison([a, b], image, tmp_path / "cmp.png",
                                  FigureOptions(dpi=100, corners=True))
    data = path.read_bytes()
    assert PILImage.open(io.BytesIO(data)).size == (fig.rgb.shape[1], fig.rgb.shape[0])
    assert FAKE["PatientID"].encode() not in data


def test_model_comparison_refuses_results_of_different_cases(image):
    a, b = _two_models(image)
    with pytest.raises(UsageError):
        render_model_comparison([a, replace(b, target_name="normal", target=0)], image)
    with pytest.raises(UsageError):
        render_model_comparison([a], image)
