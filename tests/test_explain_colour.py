"""Heatmap colouring: signed maps get the diverging map, and unsigned colouring is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import UsageError
from engine.explain.colour import EDGE, blend, diverging_lut, heat_rgba, signed_rgba


def test_unsigned_colouring_fades_in_above_the_threshold():
    heat = np.linspace(0.0, 1.0, 101, dtype=np.float32)[None, :]
    rgba = heat_rgba(heat, "jet", 0.5, 0.2)
    alpha = rgba[0, :, 3]
    assert (alpha[:20] == 0).all()
    assert 0 < alpha[21] < alpha[21 + int(EDGE * 100)] == round(0.5 * 255)
    assert (heat_rgba(heat, "jet", 0.5, 0.0)[..., 3] == round(0.5 * 255)).all()


def test_signed_maps_are_centred_at_zero_and_symmetric():
    lut = diverging_lut()
    heat = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]], dtype=np.float32)
    rgba = signed_rgba(heat, 1.0, 0.0)
    assert (rgba[0, 0, :3] == lut[0]).all() and (rgba[0, 4, :3] == lut[255]).all()
    assert (rgba[0, 2, :3] == lut[128]).all()
    assert rgba[0, 0, 2] > rgba[0, 0, 0] and rgba[0, 4, 0] > rgba[0, 4, 2]
    faded = signed_rgba(heat, 1.0, 0.6)[0, :, 3]
    assert list(faded > 0) == [True, False, False, False, True]
    with pytest.raises(UsageError):
        signed_rgba(heat, 1.5)


def test_blend_draws_signed_maps_with_the_same_colours():
    rgb = np.zeros((1, 5, 3), np.uint8)
    heat = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]], dtype=np.float32)
    out = blend(rgb, heat, opacity=1.0, signed=True)
    np.testing.assert_array_equal(out, signed_rgba(heat, 1.0)[..., :3])
