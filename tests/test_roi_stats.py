"""ROI statistics against numpy on the same pixels, and pixel spacing, lengths, scale bars."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from engine.core.errors import UsageError
from engine.metrics.localisation import energy_in_roi, roi_mask
from engine.metrics.roi_stats import roi_statistics
from engine.studies.calibration import (
    Spacing,
    distance,
    length_text,
    modality_units,
    pixel_spacing,
    scale_bar,
)
from engine.studies.image import open_image


def _ellipse(shape, box):
    """An independent ellipse mask: pixel centres inside the ellipse inscribed in ``box``."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return ((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + (
        (yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 <= 1.0


def test_ct_box_statistics_match_numpy_in_hu():
    image = open_image(get_testdata_file("CT_small.dcm"))
    values = image.modality_frame(0)
    stats = roi_statistics(values, (20, 30, 70, 60), "box", spacing=pixel_spacing(image),
                           units=modality_units(image))
    inside = values[30:60, 20:70].astype(np.float64)
    assert stats.mean == pytest.approx(inside.mean())
    assert stats.sd == pytest.approx(inside.std())
    assert (stats.minimum, stats.maximum) == (inside.min(), inside.max())
    assert stats.pixels == 50 * 30
    assert stats.area == pytest.approx(1500 * 0.661468**2)
    assert stats.units == "HU" and stats.area_units == "mm²"
    # HU, not stored values: the file's intercept is -1024.
    raw = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array[30:60, 20:70]
    assert stats.mean == pytest.approx(raw.mean() - 1024)


def test_ellipse_statistics_and_energy_match_numpy():
    rng = np.random.default_rng(3)
    values = rng.normal(100, 20, (64, 80)).astype(np.float32)
    heat = rng.random((64, 80)).astype(np.float32)
    box = (10, 8, 41, 29)
    stats = roi_statistics(values, box, "ellipse", heatmap=heat)
    mask = _ellipse(values.shape, box)
    inside = values[mask].astype(np.float64)
    assert stats.pixels == int(mask.sum()) < 31 * 21
    assert stats.mean == pytest.approx(inside.mean())
    assert stats.sd == pytest.approx(inside.std())
    assert stats.maximum == pytest.approx(inside.max())
    shifted = heat - heat.min()
    assert stats.energy == pytest.approx(shifted[mask].sum() / shifted.sum())
    assert stats.energy == pytest.approx(energy_in_roi(heat, roi_mask(heat.shape, box,
                                                                      "ellipse")))
    assert stats.area_units == "px" and stats.area == stats.pixels


def test_roi_at_the_edge_is_clipped_and_an_empty_one_refused():
    values = np.arange(100, dtype=np.float32).reshape(10, 10)
    stats = roi_statistics(values, (8, 8, 14, 14))
    assert stats.pixels == 4 and stats.maximum == 99
    with pytest.raises(UsageError):
        roi_statistics(values, (20, 20, 30, 30))
    with pytest.raises(UsageError):
        roi_statistics(np.zeros((4, 4, 3)), (0, 0, 2, 2))


def test_spacing_sources_and_lengths(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(tmp_path / "half.dcm")
    spacing = pixel_spacing(open_image(tmp_path / "half.dcm"))
    assert spacing == Spacing(0.5, 0.5, "PixelSpacing")
    assert length_text(distance(spacing, (10, 20), (110, 20)), spacing) == "50.0 mm"
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.2, 0.4]
    ds.save_as(tmp_path / "detector.dcm")
    spacing = pixel_spacing(open_image(tmp_path / "detector.dcm"))
    assert spacing.units == "mm at detector"
    # Rows 0.2 mm apart, columns 0.4 mm: a 30-by-40 pixel diagonal is 12 by 8 mm.
    assert distance(spacing, (0, 0), (30, 40)) == pytest.approx(np.hypot(12.0, 8.0))
    del ds.ImagerPixelSpacing
    ds.save_as(tmp_path / "none.dcm")
    spacing = pixel_spacing(open_image(tmp_path / "none.dcm"))
    assert not spacing.known and length_text(distance(spacing, (0, 0), (3, 4)), spacing) \
        == "5.0 px"


def test_scale_bar_is_round_and_fits():
    bar = scale_bar(Spacing(0.5, 0.5, "PixelSpacing"), zoom=2.0, max_screen_px=150)
    # 150 screen px at 4 px/mm is 37.5 mm: the longest round length is 20 mm, 80 px.
    assert (bar.length, bar.screen_px, bar.label) == (20.0, 80.0, "2 cm")
    assert scale_bar(Spacing(), zoom=1.0, max_screen_px=120).label == "100 px"
    assert scale_bar(Spacing(), zoom=0.0, max_screen_px=120) is None
