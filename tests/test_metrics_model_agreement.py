"""Two maps' energy shares in a common region, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import UsageError
from engine.metrics.model_agreement import model_agreement, top_region


def _spot(row: int, col: int, size: int = 20) -> np.ndarray:
    heat = np.zeros((size, size), np.float32)
    heat[row:row + 4, col:col + 4] = 1.0  # 16 of 400 pixels: inside the top 10 %
    return heat


def test_top_region_keeps_the_top_share_and_ties():
    heat = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert np.count_nonzero(top_region(heat)) == 10
    assert np.count_nonzero(top_region(_spot(2, 2))) == 16  # evidence on fewer pixels
    assert not top_region(np.ones((4, 4))).any()  # a flat map has no top
    with pytest.raises(UsageError):
        top_region(heat, 0.0)


def test_shares_in_the_other_models_top_region_and_in_an_roi():
    same = model_agreement(_spot(2, 2), _spot(2, 2))
    assert same.region == "top" and same.share_a == pytest.approx(1.0)
    assert same.share_b == pytest.approx(1.0) and same.top_iou == pytest.approx(1.0)
    apart = model_agreement(_spot(2, 2), _spot(14, 14))
    assert apart.share_a == pytest.approx(0.0) and apart.share_b == pytest.approx(0.0)
    assert apart.top_iou == pytest.approx(0.0)
    in_roi = model_agreement(_spot(2, 2), _spot(14, 14), roi=(0, 0, 10, 10))
    assert in_roi.region == "roi" and in_roi.baseline == pytest.approx(0.25)
    assert (in_roi.share_a, in_roi.share_b) == pytest.approx((1.0, 0.0))


def test_maps_of_two_shapes_are_one_line():
    with pytest.raises(UsageError, match="differ in shape"):
        model_agreement(np.zeros((4, 4)), np.zeros((5, 5)))
