"""core/group/contrasts.py::split_contrast: the tested variate and confounds that nilearn's
permuted_ols takes give the OLS t of the whole design, whatever the contrast weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from glmflow.core.group.contrasts import split_contrast

RNG = np.random.default_rng(11)
N = 20
GROUP = np.r_[np.ones(5), np.zeros(15)]  # unbalanced: 5 and 15
AGE = RNG.normal(40, 8, N)  # not centred
THREE = np.eye(3)[np.r_[[0] * 5, [1] * 7, [2] * 8]]

CASES = {
    # design, weights, sign flips (a test of the constant)
    "two-sample A - B": (np.c_[GROUP, 1 - GROUP], [1.0, -1.0], False),
    "mean of two groups": (np.c_[GROUP, 1 - GROUP], [0.5, 0.5], True),
    "covariate": (np.c_[np.ones(N), AGE], [0.0, 1.0], False),
    "mean with a covariate": (np.c_[np.ones(N), AGE], [1.0, 0.0], True),
    "A vs mean of B and C": (THREE, [1.0, -0.5, -0.5], False),
    "through the origin": (AGE[:, None], [1.0], False),
}


def _ols_t(x, c, y):
    beta = np.linalg.pinv(x) @ y
    sigma2 = ((y - x @ beta) ** 2).sum(0) / (len(x) - np.linalg.matrix_rank(x))
    return (c @ beta) / np.sqrt(sigma2 * (c @ np.linalg.inv(x.T @ x) @ c))


@pytest.mark.parametrize("case", CASES)
def test_split_gives_the_ols_t_of_the_whole_design(case):
    from nilearn.mass_univariate import permuted_ols

    x, weights, sign_flip = CASES[case]
    y = 3.0 + RNG.standard_normal((N, 25)) + 0.5 * x[:, :1]
    split = split_contrast(x, np.array(weights))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "multiple intercepts" from nilearn
        t = permuted_ols(split.tested, y, confounding_vars=split.confounds,
                         model_intercept=split.model_intercept, n_perm=0)["t"]  # fmt: skip
    np.testing.assert_allclose(np.ravel(t), _ols_t(x, np.array(weights), y), atol=1e-9)
    assert split.dof == N - x.shape[1]
    assert split.sign_flip == sign_flip
    # nilearn sign-flips exactly when the tested variate is constant
    assert (np.unique(split.tested).size == 1) == sign_flip
