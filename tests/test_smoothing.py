"""glmflow.core.smoothing: scipy's gaussian_filter1d as matrices, pinned to scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from glmflow.core.smoothing import VolumeSmoother, smoothing_matrix


@pytest.mark.parametrize(
    ("n", "sigma"),
    [(81, 1.0616), (99, 1.0616), (40, 2.5), (5, 1.0616), (3, 2.0), (2, 0.4), (1, 1.0)],
)
def test_matrix_is_gaussian_filter1d(n, sigma):
    # (3, 2.0): the kernel (radius 8) is wider than the axis, reflected more than once
    vectors = np.random.default_rng(n).normal(size=(n, 4))
    expected = gaussian_filter1d(vectors, sigma, axis=0, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(smoothing_matrix(n, sigma) @ vectors, expected, atol=1e-15)


def test_zero_sigma_is_the_identity():
    np.testing.assert_array_equal(smoothing_matrix(4, 0.0), np.eye(4))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_volume_smoother_filters_x_y_z_and_returns_x_y_z(dtype):
    volume = np.random.default_rng(0).normal(size=(7, 9, 11)).astype(dtype)  # (z, y, x)
    sigma = (1.0, 1.5, 0.0)  # x, y, z; none along z
    expected = volume.astype(np.float64)
    for axis, s in enumerate(sigma):
        if s:
            expected = gaussian_filter1d(expected, s, axis=2 - axis, truncate=4.0)
    smoothed = VolumeSmoother(volume.shape, sigma, dtype)(volume)
    assert smoothed.shape == (11, 9, 7) and smoothed.dtype == dtype
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(smoothed, expected.transpose(2, 1, 0), atol=tolerance)
