"""Occlusion and RISE on networks whose answer is known in closed form.

The network scores an image by the mean pixel value ``q`` of one known region ``R`` (pixel space,
through the model card's mean/std): its softmax output is ``[1 - q, q]`` exactly, so every
perturbed score is a closed-form function of which pixels were hidden.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.explain import core
from engine.explain.capture import run_capture
from tests.explain_fixtures import ArrayImage, TorchModel

SIZE = 32
REGION = (slice(8, 16), slice(20, 28))  # rows, cols of R
VALUE = 0.8  # pixel value inside R; the rest of the image is 0.2


class RegionMean(nn.Module):
    """Logits ``[log(1 - q), log(q)]`` with ``q`` the mean pixel value of ``REGION``."""

    def __init__(self, constant: float | None = None):
        super().__init__()
        self.constant = constant

    def forward(self, x):
        pixels = x * 0.25 + 0.5  # the fixture's normalisation, undone
        if self.constant is None:
            q = pixels[:, 0, REGION[0], REGION[1]].mean(dim=(1, 2))
        else:
            q = torch.full((x.shape[0],), self.constant)
        q = q.clamp(1e-6, 1 - 1e-6)
        return torch.stack([torch.log1p(-q), torch.log(q)], dim=1)


def _model(constant=None) -> TorchModel:
    return TorchModel(RegionMean(constant), ["background", "region"], size=SIZE, channels=1)


def _image() -> ArrayImage:
    pixels = np.full((SIZE, SIZE), 0.2, np.float32)
    pixels[REGION] = VALUE
    return ArrayImage(pixels)


def _run(model, method: str, **params) -> np.ndarray:
    the_plan = core.plan(model, [method], params={method: params})
    cap = run_capture(model, model.preprocess(_image()), 1, [], gradients=False)
    got = core.explain(cap, the_plan)
    assert not got.errors[0], got.errors[0]
    return got.maps[0][(method, "input")].numpy()


def test_occlusion_equals_the_closed_form_drop():
    patch = 8
    ours = _run(_model(), "occlusion", patch=patch, stride=patch)
    # Occlusion sets the normalised input to 0, i.e. pixel value 0.5 (the card's mean). With
    # non-overlapping patches every pixel's value is its own patch's drop of q.
    area = (REGION[0].stop - REGION[0].start) * (REGION[1].stop - REGION[1].start)
    expected = np.zeros((SIZE, SIZE), np.float32)
    for r in range(0, SIZE, patch):
        for c in range(0, SIZE, patch):
            rows = range(max(r, REGION[0].start), min(r + patch, REGION[0].stop))
            cols = range(max(c, REGION[1].start), min(c + patch, REGION[1].stop))
            overlap = len(rows) * len(cols)
            expected[r : r + patch, c : c + patch] = overlap / area * (VALUE - 0.5)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    # R straddles two patches, each hiding half of it: q drops by (0.8 - 0.5) / 2.
    np.testing.assert_allclose(ours[REGION], 0.15, atol=1e-6)
    assert np.all(ours[:8, :16] == 0.0)


def test_rise_with_baseline_is_exactly_zero_for_a_model_that_ignores_the_image():
    ours = _run(_model(constant=0.7), "rise", n_masks=256, baseline=True, seed=3)
    np.testing.assert_allclose(ours, 0.0, atol=1e-6)


def test_rise_without_baseline_averages_to_the_constant_score():
    # E[M(x)] = p for every pixel, so E[S(x)] = 1/(N p) * N * c * p = c.
    ours = _run(_model(constant=0.7), "rise", n_masks=4000, baseline=False, seed=3)
    assert float(ours.mean()) == pytest.approx(0.7, rel=0.02)
    assert float(ours.std()) < 0.05


def test_rise_puts_its_mass_on_the_region_the_model_reads():
    ours = _run(_model(), "rise", n_masks=4000, grid=8, p=0.5, seed=1)
    peak = np.unravel_index(np.argmax(ours), ours.shape)
    assert REGION[0].start <= peak[0] < REGION[0].stop
    assert REGION[1].start <= peak[1] < REGION[1].stop
    # Two cells (4 px each) away from R the masks are independent of R's: covariance 0.
    far = ours[24:, :8]
    assert abs(float(far.mean())) < 0.1 * float(ours[REGION].mean())
