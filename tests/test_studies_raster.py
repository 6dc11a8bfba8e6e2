"""PNG, JPEG, TIFF and BMP files: 8/16-bit grey, RGB, RGBA and palette."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.studies.image import open_image


def _ramp(height=40, width=60, top=255):
    return np.linspace(0, top, height * width).reshape(height, width)


def test_png_8bit_grey_is_shown_as_stored(tmp_path):
    data = _ramp().astype(np.uint8)
    path = tmp_path / "grey.png"
    PILImage.fromarray(data).save(path)
    image = open_image(path)
    assert (image.kind, image.photometric, image.is_color) == ("raster", "MONOCHROME2", False)
    assert image.shape == (40, 60) and image.dataset is None and image.modality == "OT"
    rgb = image.render()
    assert np.array_equal(rgb[..., 0], data) and np.array_equal(rgb[..., 2], data)
    assert np.allclose(image.model_input(), data / 255.0, atol=1e-6)
    assert np.array_equal(image.render(invert=True)[..., 1], 255 - data)


def test_png_16bit_grey_keeps_values_and_windows_from_data(tmp_path):
    data = _ramp(top=4095).astype(np.uint16)
    data[0, 0] = 65535  # one hot pixel must not flatten the contrast
    path = tmp_path / "grey16.png"
    PILImage.fromarray(data).save(path)
    image = open_image(path)
    assert not image.is_color and image.info()["bits"] == 16
    assert np.array_equal(image.modality_frame(), data.astype(np.float32))
    window = image.default_window
    assert window.name == "auto" and window.center + window.width / 2 < 5000
    grey = image.render()[..., 0].astype(int).ravel()
    order = np.argsort(data.ravel(), kind="stable")
    assert np.all(np.diff(grey[order]) >= 0)
    assert grey.min() == 0 and grey.max() == 255
    centre = image.render(window=(2048, 10))[..., 0]
    assert set(np.unique(centre)) - {0, 255}, "a narrow window still has a ramp in it"


def test_png_rgba_is_composited_over_black(tmp_path):
    rgba = np.zeros((10, 12, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 1] = 100
    rgba[..., 3] = 255
    rgba[:, 6:, 3] = 0  # right half transparent
    rgba[:5, :6, 3] = 128
    path = tmp_path / "rgba.png"
    PILImage.fromarray(rgba, "RGBA").save(path)
    image = open_image(path)
    assert image.is_color and image.photometric == "RGB" and image.default_window is None
    rgb = image.render()
    assert rgb.shape == (10, 12, 3)
    assert tuple(rgb[9, 0]) == (200, 100, 0)
    assert tuple(rgb[9, 11]) == (0, 0, 0)
    assert tuple(rgb[0, 0]) == (100, 50, 0)
    assert np.allclose(image.model_input(), rgb / 255.0)


def test_palette_png_colour_and_grey(tmp_path):
    index = (np.arange(64).reshape(8, 8) % 4).astype(np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    pal = PILImage.fromarray(index, "P")
    pal.putpalette([c for rgb in colours for c in rgb] + [0] * (256 - 4) * 3)
    pal.save(tmp_path / "colour.png")
    image = open_image(tmp_path / "colour.png")
    assert image.is_color
    assert np.array_equal(image.render(), np.asarray(colours, dtype=np.uint8)[index])

    greys = PILImage.fromarray(index, "P")
    greys.putpalette([v for g in range(256) for v in (255 - g,) * 3])
    greys.save(tmp_path / "grey.png")
    image = open_image(tmp_path / "grey.png")
    assert not image.is_color and image.photometric == "MONOCHROME2"
    assert np.array_equal(image.render()[..., 0], 255 - index)


@pytest.mark.parametrize(("suffix", "lossless"), [(".jpg", False), (".bmp", True), (".tif", True)])
def test_rgb_formats(tmp_path, suffix, lossless):
    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, 48, dtype=np.uint8)
    rgb[..., 2] = 90
    path = tmp_path / f"rgb{suffix}"
    PILImage.fromarray(rgb).save(path)
    image = open_image(path)
    assert image.is_color and image.shape == (32, 48)
    tolerance = 0 if lossless else 12
    assert np.abs(image.render().astype(int) - rgb).max() <= tolerance


def test_tiff_float_and_multipage(tmp_path):
    data = _ramp(top=1.0).astype(np.float32) - 0.25
    path = tmp_path / "float.tif"
    PILImage.fromarray(data, "F").save(path)
    image = open_image(path)
    assert not image.is_color
    assert np.allclose(image.modality_frame(), data)
    assert np.allclose(image.model_input(window="minmax"), (data - data.min()) / np.ptp(data))

    pages = [PILImage.fromarray(np.full((8, 8), v, dtype=np.uint8)) for v in (10, 200)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    image = open_image(tmp_path / "pages.tif")
    assert image.n_frames == 2
    assert image.render(1)[0, 0, 0] == 200 and image.render(0)[0, 0, 0] == 10
