"""Pointing game, energy share and IoU against box and ellipse ROIs, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import UsageError
from engine.metrics.localisation import (
    energy_in_roi,
    iou_at_threshold,
    parse_roi,
    pointing_hit,
    roi_mask,
)


def test_box_and_ellipse_masks_have_the_right_area():
    box = roi_mask((100, 120), (10, 20, 50, 60))
    assert box.sum() == 40 * 40
    assert box[20, 10] and not box[60, 10] and not box[20, 50]
    ellipse = roi_mask((200, 200), (40, 60, 140, 120), kind="ellipse")
    assert ellipse.sum() == pytest.approx(np.pi * 50 * 30, rel=0.02)
    assert ellipse[90, 90] and not ellipse[61, 41]


def test_roi_outside_the_image_or_malformed_is_a_usage_error():
    with pytest.raises(UsageError):
        roi_mask((10, 10), (20, 20, 30, 30))
    with pytest.raises(UsageError):
        roi_mask((10, 10), (0, 0, 5, 5), kind="star")
    with pytest.raises(UsageError):
        parse_roi("1,2,3")
    with pytest.raises(UsageError):
        parse_roi("5,5,2,9")
    assert parse_roi("1,2,30,40") == (1, 2, 30, 40)


def test_pointing_hit_and_miss_with_tolerance():
    mask = roi_mask((50, 50), (10, 10, 20, 20))
    sal = np.zeros((50, 50))
    sal[15, 15] = 1.0
    assert pointing_hit(sal, mask)
    sal = np.zeros((50, 50))
    sal[15, 24] = 1.0
    assert not pointing_hit(sal, mask)
    assert pointing_hit(sal, mask, tolerance=5)
    assert not pointing_hit(np.ones((50, 50)), mask)


def test_energy_share_is_the_roi_area_for_a_uniform_map_plus_a_floor():
    mask = roi_mask((40, 40), (0, 0, 20, 10))
    sal = np.full((40, 40), 0.5)
    sal[0, 39] = 0.0  # min-max floor
    assert energy_in_roi(sal, mask) == pytest.approx(200 / 1599, rel=1e-6)
    sal = np.zeros((40, 40))
    sal[mask] = 3.0
    assert energy_in_roi(sal, mask) == pytest.approx(1.0)
    assert energy_in_roi(np.zeros((40, 40)), mask) == 0.0


def test_iou_at_threshold_known_overlap():
    mask = roi_mask((40, 40), (0, 0, 20, 20))
    sal = np.zeros((40, 40))
    sal[10:30, 0:20] = 1.0  # half overlaps the ROI
    assert iou_at_threshold(sal, mask) == pytest.approx(200 / 600)
    sal[10:30, 0:20] = 0.4
    sal[0:10, 0:20] = 1.0
    assert iou_at_threshold(sal, mask, threshold=0.5) == pytest.approx(0.5)
    assert iou_at_threshold(sal, mask, threshold=0.3) == pytest.approx(400 / 600)


def test_nan_in_the_map_is_ignored():
    mask = roi_mask((20, 20), (0, 0, 10, 10))
    sal = np.zeros((20, 20))
    sal[5, 5] = 1.0
    sal[15, 15] = np.nan
    assert pointing_hit(sal, mask)
    assert energy_in_roi(sal, mask) == pytest.approx(1.0)
