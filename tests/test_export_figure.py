"""Annotated figures: size and resolution, caption, overlay settings, PNG metadata."""

from __future__ import annotations

import io
from dataclasses import replace

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


def _blocky_case(tmp_path, size=16, seed=3):
    """A grey ramp image and a random map: every image pixel has its own heat."""
    from engine.explain.session import ExplainResult, MapResult

    ramp = (np.arange(size * size).reshape(size, size) * (200 // (size * size) + 1)) % 256
    path = tmp_path / "ramp.png"
    PILImage.fromarray(ramp.astype(np.uint8)).save(path)
    image = open_image(path)
    heat = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    heat[0, 0] = 1.0
    result = fake_result(image)
    key = next(iter(result.maps))
    result = ExplainResult(**{**result.__dict__, "maps": {key: MapResult(
        method=key[0], layer=key[1], raw=heat, heatmap=heat, scale=2.5, units="score")}})
    return image, result, heat


def test_figure_overlay_pixels_are_the_viewers_colours_with_a_threshold(tmp_path):
    from engine.explain.colour import heat_rgba

    image, result, heat = _blocky_case(tmp_path)
    options = FigureOptions(kind="overlay", dpi=200, caption=False, threshold=0.3, opacity=0.6)
    fig = render_figure(result, image, options)
    ((_title, (x0, y0, x1, y1)),) = fig.panels
    # What the viewer draws for each image pixel: heat_rgba over the displayed image.
    rgba = heat_rgba(heat, "jet", 0.6, 0.3).astype(np.float64)
    alpha = rgba[..., 3:] / 255.0
    base = image.render().astype(np.float64)
    expected = np.round(base * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)
    rows, cols = heat.shape
    step_y, step_x = (y1 - y0) / rows, (x1 - x0) / cols
    assert step_x > 10 and step_y > 10
    for r in range(rows):
        for c in range(cols):
            y, x = int(y0 + (r + 0.5) * step_y), int(x0 + (c + 0.5) * step_x)
            assert np.array_equal(fig.rgb[y, x], expected[r, c]), (r, c)
    assert (heat < 0.3).any() and (heat > 0.3).any()  # both sides of the threshold checked


def test_figure_follows_the_viewers_scale_and_labels_the_bar_in_units(tmp_path):
    image, result, heat = _blocky_case(tmp_path)
    options = FigureOptions(kind="overlay", dpi=100, caption=True, opacity=1.0)
    full = render_figure(result, image, options)
    faint = render_figure(result, image, replace(options, heat_gain=0.25))
    (_t, (x0, y0, x1, y1)), = full.panels
    strong = full.rgb[y0:y1, x0:x1].astype(int)
    weak = faint.rgb[y0:y1, x0:x1].astype(int)
    # jet at a quarter of the heat: blue, not red.
    assert strong[..., 0].mean() > weak[..., 0].mean() + 40
    assert "stands for 2.5 (score)" in full.caption
    assert "stands for 10 (score)" in faint.caption  # the bar's top is 1 / 0.25 of the scale
