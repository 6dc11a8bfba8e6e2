"""Trust metrics in 3-D: deletion/insertion over voxels, pointing and energy in a voxel box."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.errors import UsageError
from engine.metrics.volume import (
    blur3d,
    box_mask,
    parse_box3d,
    roi_metrics_3d,
    voxel_curve,
)


def _evidence_model(region: torch.Tensor):
    """Probability of class 1 rises with the brightness of one region of the input."""
    def forward(batch):
        signal = (batch[:, 0] * region).sum(dim=(1, 2, 3)) / region.sum()
        p = torch.sigmoid(12.0 * (signal - 0.5))
        return torch.stack([1 - p, p], dim=1)
    return forward


def test_deletion_falls_fast_and_insertion_rises_fast_for_the_true_evidence():
    shape = (8, 12, 10)
    region = torch.zeros(shape)
    region[2:5, 3:7, 4:8] = 1.0
    x = (0.1 + 0.9 * region)[None, None]
    forward = _evidence_model(region)
    faithful = region.numpy()
    rng = np.random.default_rng(0)
    arbitrary = rng.random(shape).astype(np.float32)
    good = voxel_curve(forward, x, faithful, 1, "deletion", baseline="mean")
    bad = voxel_curve(forward, x, arbitrary, 1, "deletion", baseline="mean")
    assert good.scores[0] == pytest.approx(bad.scores[0]) and good.scores[0] > 0.99
    assert good.auc < 0.3 < bad.auc
    rise = voxel_curve(forward, x, faithful, 1, "insertion", baseline="mean")
    slow = voxel_curve(forward, x, arbitrary, 1, "insertion", baseline="mean")
    assert rise.auc > slow.auc + 0.2
    # A coarse map over the same input is resampled onto its voxels.
    coarse = voxel_curve(forward, x, faithful[::2, ::2, ::2], 1, "deletion", baseline="blur")
    assert len(coarse.fractions) == 21 and coarse.fractions[-1] == 1.0


def test_blur3d_keeps_a_constant_and_spreads_a_point():
    const = torch.full((1, 1, 5, 6, 7), 0.3)
    np.testing.assert_allclose(blur3d(const, 1.5).numpy(), 0.3, atol=1e-6)
    point = torch.zeros((1, 1, 9, 9, 9))
    point[0, 0, 4, 4, 4] = 1.0
    out = blur3d(point, 1.0)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5) and float(out.max()) < 0.1


def test_pointing_and_energy_in_a_voxel_box():
    heat = np.zeros((6, 8, 10), np.float32)
    heat[3, 4, 5] = 1.0
    heat[0, 0, 0] = 0.2
    inside = roi_metrics_3d(heat, (4, 3, 2, 7, 6, 5))  # x0 y0 z0 x1 y1 z1
    assert inside["pointing_hit"] is True and inside["energy_in_roi"] == pytest.approx(1 / 1.2)
    outside = roi_metrics_3d(heat, (0, 0, 4, 3, 3, 6))
    assert outside["pointing_hit"] is False and outside["energy_in_roi"] == 0.0
    mask = box_mask(heat.shape, (4, 3, 2, 7, 6, 5))
    assert mask.sum() == 27 and mask[3, 4, 5]


def test_bad_boxes_are_usage_errors():
    assert parse_box3d("1,2,3,4,5,6") == (1, 2, 3, 4, 5, 6)
    with pytest.raises(UsageError, match="not six numbers"):
        parse_box3d("1,2,3,4")
    with pytest.raises(UsageError, match="start < end"):
        parse_box3d("5,2,3,4,5,6")
    with pytest.raises(UsageError, match="does not overlap"):
        box_mask((4, 4, 4), (10, 0, 0, 12, 2, 2))
