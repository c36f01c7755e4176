from __future__ import annotations

import numpy as np
import pytest

from i2v_dagster.verify.lab import lab_to_srgb_u8, srgb_to_lab


@pytest.mark.parametrize(
    ("rgb", "lab"),
    [
        ((255, 255, 255), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((255, 0, 0), (53.24, 80.09, 67.20)),
        ((0, 255, 0), (87.73, -86.18, 83.18)),
        ((0, 0, 255), (32.30, 79.19, -107.86)),
        ((128, 128, 128), (53.59, 0.0, 0.0)),
    ],
)
def test_known_values(rgb, lab):
    got = srgb_to_lab(np.array(rgb, dtype=np.uint8))
    np.testing.assert_allclose(got, lab, atol=0.02)


def test_float_input_matches_uint8_input():
    rgb = np.random.default_rng(0).integers(0, 256, size=(50, 3), dtype=np.uint8)
    np.testing.assert_allclose(srgb_to_lab(rgb / 255.0), srgb_to_lab(rgb), atol=1e-3)


def test_round_trip_is_exact_for_uint8():
    rgb = np.random.default_rng(1).integers(0, 256, size=(4, 5, 3, 3), dtype=np.uint8)
    lab = srgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    np.testing.assert_array_equal(lab_to_srgb_u8(lab), rgb)


def test_out_of_gamut_is_clipped():
    assert lab_to_srgb_u8(np.array([150.0, 0.0, 0.0])).tolist() == [255, 255, 255]
