"""Gaussian smoothing of BOLD volumes as three matrix products, one per axis.

nilearn's ``smooth_img`` (and so ``FirstLevelModel``) filters each axis with
``scipy.ndimage.gaussian_filter1d`` (mode ``"reflect"``, truncated at 4 sigma): a scalar
loop of a few taps per voxel. The same filter along an axis of ``n`` voxels is one
``(n, n)`` banded matrix, whose product with the volume BLAS computes many times faster
than the loop even with its zeros: on a realistic run (97 x 115 x 97, 2 mm, fwhm 5, the
mask's box 81 x 99 x 77) 5-6 ms a volume against 10-12 ms. The values are scipy's to
float32 rounding (the sums are taken in the data's precision, in another order: relative
differences of ~3e-7 of the volume's largest value); tests/test_bold.py pins them to
nilearn's ``NiftiMasker`` within that and tests/test_smoothing.py the matrices to
``gaussian_filter1d`` to 1e-15.

The three products also turn the volume's layout from the file's (z, y, x) C order (x
fastest) into (x, y, z) C order, the order of a NumPy mask's voxels, so that reading the
mask's voxels out of the smoothed volume walks memory forwards.
"""

from __future__ import annotations

import numpy as np

#: scipy.ndimage.gaussian_filter1d's default: the kernel reaches int(truncate * sigma + 0.5)
TRUNCATE = 4.0


def gaussian_weights(sigma: float) -> np.ndarray:
    """gaussian_filter1d's kernel: exp(-x^2 / (2 sigma^2)) over int(4 sigma + 0.5) voxels on
    each side, normalised to sum 1."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / sigma**2 * x**2)
    return weights / weights.sum()


def _reflected(n: int, radius: int) -> np.ndarray:
    """The voxel, in [0, n), that each position -radius .. n - 1 + radius reads under mode
    "reflect" (d c b a | a b c d | d c b a), repeated for kernels wider than the axis."""
    position = np.arange(-radius, n + radius) % (2 * n)
    return np.where(position < n, position, 2 * n - 1 - position)


def smoothing_matrix(n: int, sigma: float, dtype=np.float64) -> np.ndarray:
    """The ``(n, n)`` matrix ``M`` with ``M @ v == gaussian_filter1d(v, sigma)`` (mode
    "reflect", truncate 4) for a vector of ``n`` voxels; the identity for ``sigma == 0``."""
    if sigma <= 0:
        return np.eye(n, dtype=dtype)
    weights = gaussian_weights(sigma)
    radius = len(weights) // 2
    source = _reflected(n, radius)
    rows = np.arange(n)
    matrix = np.zeros((n, n))
    for offset, weight in enumerate(weights):  # output i reads position i + offset - radius
        np.add.at(matrix, (rows, source[rows + offset]), weight)
    return matrix.astype(dtype)


class VolumeSmoother:
    """Smooth (z, y, x) C-ordered volumes of one shape; each call returns (x, y, z).

    ``sigma`` is per axis x, y, z in voxels. The result is a buffer reused by the next call.
    """

    def __init__(self, shape_zyx: tuple[int, int, int], sigma, dtype) -> None:
        nz, ny, nx = shape_zyx
        self.shape = (nz, ny, nx)
        self._x = smoothing_matrix(nx, sigma[0], dtype)
        self._y_t = np.ascontiguousarray(smoothing_matrix(ny, sigma[1], dtype).T)
        self._z_t = np.ascontiguousarray(smoothing_matrix(nz, sigma[2], dtype).T)
        self._xzy = np.empty((nx, nz * ny), dtype)
        self._xz_y = np.empty((nx * nz, ny), dtype)
        self._out = np.empty((nx, ny, nz), dtype)

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        nz, ny, nx = self.shape
        np.matmul(self._x, volume.reshape(-1, nx).T, out=self._xzy)  # along x: (x, z, y)
        np.matmul(self._xzy.reshape(-1, ny), self._y_t, out=self._xz_y)  # along y: (x, z, y)
        sheets = self._xz_y.reshape(nx, nz, ny).transpose(0, 2, 1)  # (x, y, z) views
        np.matmul(sheets, self._z_t, out=self._out)  # along z: (x, y, z)
        return self._out
