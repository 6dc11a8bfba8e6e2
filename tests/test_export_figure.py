"""Annotated figures: size and resolution, caption, overlay settings, PNG metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
from export_fixtures import FAKE, fake_result, write_fake_dicom
from PIL import Image as PILImage

from engine.core.errors import UsageError
from engine.export.deid import Scrubber
from engine.export.figure import FigureOptions, figure_png, render_figure
from engine.studies.image import open_image


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return open_image(write_fake_dicom(tmp_path_factory.mktemp("fig") / "case.dcm", size=48))


def _saturation(rgb: np.ndarray) -> float:
    rgb = rgb.astype(np.float32)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean())


def test_resolution_sets_pixel_size_and_png_dpi(image):
    result = fake_result(image)
    for dpi in (100, 300):
        fig = render_figure(result, image, FigureOptions(kind="overlay", dpi=dpi))
        assert fig.rgb.shape[1] == round(3.5 * dpi)
        png = PILImage.open(io.BytesIO(figure_png(fig)))
        assert png.size == (fig.rgb.shape[1], fig.rgb.shape[0])
        assert round(png.info["dpi"][0]) == dpi


def test_side_by_side_shows_original_then_overlay(image):
    result = fake_result(image)
    fig = render_figure(result, image, FigureOptions(kind="side_by_side", dpi=80, caption=False))
    width = fig.rgb.shape[1]
    left, right = fig.rgb[:, : width * 4 // 10], fig.rgb[:, width * 45 // 100 : width * 85 // 100]
    assert _saturation(left) < 2.0  # grey original
    assert _saturation(right) > 20.0  # coloured overlay
    clear = render_figure(result, image, FigureOptions(dpi=80, caption=False, opacity=0.0))
    clear_right = clear.rgb[:, width * 45 // 100 : width * 85 // 100]
    assert _saturation(clear_right) < 2.0  # opacity 0: the overlay panel is the image


def test_caption_names_method_layer_target_and_model(image):
    result = fake_result(image)
    fig = render_figure(result, image, FigureOptions(dpi=60, threshold=0.3, colormap="inferno"))
    for needle in (
        "Grad-CAM",
        "features.3",
        "'nodule'",
        "p = 0.812",
        "model demo",
        "inferno",
        "shown above 0.30",
        "window C 1500 / W 2000",
        "Research use only",
    ):
        assert needle in fig.caption, needle
    with_caption = render_figure(result, image, FigureOptions(dpi=60))
    without = render_figure(result, image, FigureOptions(dpi=60, caption=False))
    assert with_caption.rgb.shape[0] > without.rgb.shape[0]


def test_grid_lays_out_methods_by_layers(image):
    result = fake_result(image, methods=("gradcam", "scorecam"), layers=("features.3", "head"))
    grid = render_figure(result, image, FigureOptions(kind="grid", dpi=60, caption=False))
    one = render_figure(result, image, FigureOptions(kind="side_by_side", dpi=60, caption=False))
    assert grid.rgb.shape[1] == one.rgb.shape[1] == 7 * 60
    assert grid.rgb.shape[0] > 1.7 * one.rgb.shape[0]  # two rows of panels
    assert "Grad-CAM" in grid.caption and "Score-CAM" in grid.caption
    assert "at layers features.3, head (rows: methods; columns: layers)" in grid.caption


def test_view_state_and_bad_options(image):
    opts = FigureOptions.from_view_state(
        {
            "window": [100, 50],
            "invert": True,
            "opacity": 0.25,
            "colormap": "viridis",
            "threshold": 0.1,
            "method": "gradcam",
            "layer": "features.3",
            "unknown": 1,
        },
        kind="overlay",
    )
    assert opts.window == (100.0, 50.0) and opts.invert and opts.colormap == "viridis"
    assert opts.kind == "overlay"
    with pytest.raises(UsageError):
        FigureOptions(kind="collage")
    with pytest.raises(UsageError):
        FigureOptions(dpi=5)
    with pytest.raises(UsageError, match="no map"):
        render_figure(fake_result(image), image, FigureOptions(method="rise"))


def test_png_text_chunks_are_scrubbed(image):
    result = fake_result(image)
    result.target_name = FAKE["PatientID"]  # a class label that happens to quote the patient
    fig = render_figure(result, image, FigureOptions(dpi=40))
    assert FAKE["PatientID"] in fig.caption
    data = figure_png(fig, Scrubber({"PatientID": FAKE["PatientID"]}))
    text = PILImage.open(io.BytesIO(data)).text
    assert "Grad-CAM" in text["Description"] and FAKE["PatientID"] not in text["Description"]
    assert text["Software"].startswith("Lucida")
