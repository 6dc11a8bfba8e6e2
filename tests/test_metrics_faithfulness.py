"""Deletion/insertion curves, AUC, Average Drop and Increase in Confidence on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.core.cancel import Cancelled, CancelToken
from engine.metrics.faithfulness import (
    average_drop_increase,
    baseline_image,
    impute,
    perturbation_curve,
    saliency_ranks,
    trapezoid_auc,
)

SIZE = 32


def _lesion_case(size: int = SIZE):
    """A dark noisy image with a bright 6-px square: the square is the whole cause of the score.

    The background fill erases structures narrower than about 1/12 of the image side, so tests
    of that fill use a 96-px image, where the square is blob-sized.
    """
    g = torch.Generator().manual_seed(1)
    x = 0.2 + 0.05 * torch.rand(1, 1, size, size, generator=g)
    region = torch.zeros(size, size, dtype=torch.bool)
    c = size // 2
    region[c - 4 : c + 2, c - 2 : c + 4] = True
    x[0, 0][region] = 0.9

    def forward(batch):
        evidence = batch[:, 0][:, region].mean(dim=1)
        logit = 12.0 * (evidence - 0.5)
        return torch.softmax(torch.stack([torch.zeros_like(logit), logit], dim=1), dim=1)

    return x, region, forward


def test_trapezoid_auc_known_areas():
    assert trapezoid_auc([0, 1], [1, 1]) == pytest.approx(1.0)
    assert trapezoid_auc([0, 0.5, 1], [1, 0.5, 0]) == pytest.approx(0.5)
    assert trapezoid_auc([0, 0.5, 1], [0, 1, 0]) == pytest.approx(0.5)


def test_ranks_put_the_maximum_first_and_break_ties_at_random():
    sal = torch.zeros(8, 8)
    sal[3, 4] = 5.0
    sal[0, 0] = 2.0
    ranks = saliency_ranks(sal, seed=0)
    assert ranks[3, 4] == 0 and ranks[0, 0] == 1
    assert sorted(ranks.flatten().tolist()) == list(range(64))
    tied = ranks.flatten()[2:].float()
    # Ties are not in raster order: the zeros' ranks are shuffled.
    assert not torch.equal(tied, torch.sort(tied).values)


def test_deletion_curve_matches_closed_form_with_mean_baseline():
    # Score = mean of the region; x is 1 inside a region covering a quarter of the image, 0
    # elsewhere. The mean baseline is 0.25 everywhere, so removing a fraction f <= 1/4 of the
    # image inside the region gives ((a - f) * 1 + f * a) / a with a = 1/4.
    x = torch.zeros(1, 1, 16, 16)
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[:8, :8] = True
    x[0, 0][region] = 1.0

    def forward(batch):
        s = batch[:, 0][:, region].mean(dim=1)
        return torch.stack([1 - s, s], dim=1)

    curve = perturbation_curve(
        forward, x, region.float().numpy(), 1, "deletion", baseline="mean", steps=8
    )
    a = 0.25
    expected = [((a - f) + f * a) / a if f <= a else a for f in curve.fractions]
    np.testing.assert_allclose(curve.scores, expected, atol=1e-5)
    assert curve.auc == pytest.approx(trapezoid_auc(curve.fractions, expected), abs=1e-6)
    assert curve.fractions[0] == 0 and curve.fractions[-1] == 1


@pytest.mark.parametrize("baseline", ["background", "linear", "blur", "mean"])
def test_true_cause_beats_random_and_inverted_maps(baseline):
    size = 96 if baseline == "background" else SIZE
    x, region, forward = _lesion_case(size)
    truth = region.float().numpy() + 0.01 * np.random.rand(size, size)
    rand = np.random.rand(size, size)
    inverted = -truth

    def aucs(kind):
        return [
            perturbation_curve(forward, x, m, 1, kind, baseline=baseline, steps=16).auc
            for m in (truth, rand, inverted)
        ]

    d_true, d_rand, d_inv = aucs("deletion")
    assert d_true < d_rand - 0.1 and d_true < d_inv - 0.1
    # Insertion separates less: scattered random pixels let the imputation rebuild the lesion
    # early, so only the ordering is required.
    i_true, i_rand, i_inv = aucs("insertion")
    assert i_true > i_rand + 0.02 and i_true > i_inv + 0.02


@pytest.mark.parametrize("baseline", ["background", "linear"])
def test_lerf_keeps_the_score_when_the_map_is_right(baseline):
    x, region, forward = _lesion_case(96 if baseline == "background" else SIZE)
    morf = perturbation_curve(forward, x, region.numpy(), 1, baseline=baseline, steps=10)
    lerf = perturbation_curve(
        forward, x, region.numpy(), 1, baseline=baseline, steps=10, order="lerf"
    )
    assert lerf.auc > morf.auc + 0.3


def test_linear_imputation_fills_a_hole_from_its_neighbours():
    # A bright square removed from a flat background must be filled with the background, not
    # with a value that leaves the square's outline visible (ROAD's point).
    x = torch.full((1, 1, 24, 24), 0.3)
    x[0, 0, 8:16, 8:16] = 1.0
    removed = torch.zeros(1, 1, 24, 24)
    removed[0, 0, 8:16, 8:16] = 1
    filled = impute(x, removed, "linear", noise=0.0)
    assert filled[0, 0, 8:16, 8:16].sub(0.3).abs().max() < 0.05
    blurred = impute(x, removed, "blur")
    assert blurred[0, 0, 8:16, 8:16].mean() > filled[0, 0, 8:16, 8:16].mean()
    assert baseline_image(x, "mean").unique().numel() == 1


def test_curve_is_independent_of_batch_size_and_reports_progress():
    x, region, forward = _lesion_case()
    seen = []
    a = perturbation_curve(forward, x, region.numpy(), 1, steps=10, batch_size=3,
                           progress=lambda f, m: seen.append(f))
    b = perturbation_curve(forward, x, region.numpy(), 1, steps=10, batch_size=64)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    assert seen[-1] == pytest.approx(1.0) and len(seen) == 4


def test_curve_stops_when_cancelled():
    x, region, forward = _lesion_case()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        perturbation_curve(forward, x, region.numpy(), 1, cancel=token)


def test_saliency_map_is_resized_to_the_input():
    x, region, forward = _lesion_case()
    small = region.float()[::4, ::4].numpy()
    full = perturbation_curve(forward, x, region.float().numpy(), 1, baseline="mean", steps=8)
    coarse = perturbation_curve(forward, x, small, 1, baseline="mean", steps=8)
    assert abs(full.auc - coarse.auc) < 0.1


def test_average_drop_and_increase_known_cases():
    x, region, forward = _lesion_case()
    # The map is 1 on the cause: the explanation map keeps the lesion, and the model reads only
    # the lesion, so the score is unchanged.
    drop, increased, y, o = average_drop_increase(forward, x, region.float().numpy(), 1)
    assert drop == pytest.approx(0.0) and not increased and o == pytest.approx(y)
    # The inverted map blacks out the lesion: the score collapses.
    drop, increased, y, o = average_drop_increase(forward, x, 1 - region.float().numpy(), 1)
    assert drop == pytest.approx(100 * (y - o) / y) and drop > 90 and not increased


def test_bad_arguments_are_usage_errors():
    from engine.core.errors import UsageError

    x, region, forward = _lesion_case()
    for kwargs in ({"baseline": "zero"}, {"kind": "both"}, {"order": "random"}, {"steps": 0}):
        with pytest.raises(UsageError):
            perturbation_curve(forward, x, region.numpy(), 1, **kwargs)
    with pytest.raises(UsageError):
        perturbation_curve(forward, x, np.zeros((2, 2, 2)), 1)


def test_noise_level_recovers_the_added_noise_and_fills_holes_with_it():
    from engine.metrics.faithfulness import noise_level

    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.2, 0.6, 64).view(1, 1, 1, 64).expand(1, 1, 64, 64)
    x = ramp + 0.05 * torch.randn(1, 1, 64, 64, generator=g)
    assert noise_level(x) == pytest.approx(0.05, rel=0.1)
    removed = torch.zeros(1, 1, 64, 64)
    removed[..., 16:48, 16:48] = 1
    filled = impute(x, removed, "linear", generator=g)[0, 0, 20:44, 20:44]
    # The hole has the image's texture, not a smooth patch.
    assert float((filled - _smooth(filled)).std()) == pytest.approx(0.05, rel=0.3)


def _smooth(t):
    from engine.metrics.faithfulness import gaussian_blur

    return gaussian_blur(t[None, None], 2.0)[0, 0]


def _valley_case():
    """A bright body with a narrow dark field (a lung) holding a faint blob (a nodule)."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    field = torch.sigmoid((8 - ((xx - 32) ** 2 / 64 + (yy - 32) ** 2 / 400).sqrt() * 8) / 1.5)
    anatomy = 0.5 - 0.3 * field
    blob = 0.12 * torch.exp(-((xx - 33) ** 2 + (yy - 30) ** 2) / (2 * 1.75**2))
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 26:35, 29:38] = 1
    return anatomy[None, None], (anatomy + blob)[None, None], hole


def test_background_fill_erases_a_blob_without_brightening_a_dark_field():
    # Filling the hole from its rim (ROAD's linear imputation) pulls the bright body into the
    # dark field: the fill is a faint bright patch, which is what a nodule looks like. The
    # background fill must come back to the field's own floor.
    anatomy, x, hole = _valley_case()
    inside = hole.bool()
    background = impute(x, hole, "background", noise=0.0)[inside] - anatomy[inside]
    linear = impute(x, hole, "linear", noise=0.0)[inside] - anatomy[inside]
    # The blob peaks 0.12 above the field; the fill keeps at most its faint base.
    assert float(background.max()) < 0.05
    assert float(background.mean()) < 0.6 * float(linear.mean())


def test_background_fill_has_the_image_texture():
    from engine.metrics.faithfulness import noise_level

    g = torch.Generator().manual_seed(0)
    anatomy, x, hole = _valley_case()
    noisy = x + 0.03 * torch.randn(x.shape, generator=g)
    filled = impute(noisy, hole, "background", generator=g)[0, 0, 26:35, 29:38]
    residual = filled - impute(noisy, hole, "background", noise=0.0)[0, 0, 26:35, 29:38]
    assert float(residual.std()) == pytest.approx(noise_level(noisy), rel=0.35)


def test_background_fill_keeps_structures_wider_than_its_square():
    # The documented limit: a 6-px square on a 32-px image is wider than the fill's 3-px
    # square, so the fill keeps it and deleting it does not lower the score.
    x, region, forward = _lesion_case(SIZE)
    removed = region.float()[None, None]
    filled = impute(x, removed, "background", noise=0.0)
    assert float(filled[0, 0][region].mean()) > 0.8
