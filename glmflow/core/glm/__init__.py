"""First-level GLM fit: the method of nilearn's ``FirstLevelModel`` / ``run_glm``, vectorised.

Why not call nilearn's public ``nilearn.glm.first_level.run_glm``: on a realistic masked run
(240 volumes x 238,023 voxels, the realistic preset's 2-mm brain, 20 columns, AR(1), one
BLAS thread) ``fit_glm`` takes 1.17 s and run_glm 11.84 s, 10.1x faster (5.7x at 100,000
voxels; minimum of 3, nilearn 0.14.1, 2 shared cores; ``benchmarks/bench_glm.py``,
``RESULTS-glm.md``). run_glm quantises the AR coefficients in a Python
loop over voxels, labels voxels with strings and selects each group with a string
comparison over all voxels, and keeps the OLS and whitened residuals of every voxel;
here labels are integers, voxels are sorted by group once per cache-sized chunk, and
memory stays flat. ``tests/test_glm.py::test_fit_equals_nilearn_run_glm`` pins betas,
residual variance, AR coefficients and t to the installed nilearn's run_glm.

Steps (nilearn 0.14.1 ``glm/first_level/first_level.py``, ``glm/regression.py``):

1. ``sample_mask`` keeps rows of Y and X (before scaling: the mean uses kept volumes only).
2. ``signal_scaling=0``: ``Y = 100 * (Y / max(mean_t(Y), 1) - 1)`` (percent signal change),
   computed in Y's dtype (float32) like nilearn.
3. OLS with ``pinv(X)``; for ``ar1`` the lag-1 Yule-Walker coefficient of the OLS residuals
   (nilearn removes the *global* residual mean first), truncated to ``1 / bins`` steps.
4. ``ar1``: per voxel, whiten Y with its coefficient (``w[0] = y[0]``,
   ``w[t] = y[t] - rho * y[t - 1]``) and refit with ``pinv`` of the design whitened the same
   way; voxels sharing a coefficient share that pseudo-inverse, so there is one small SVD per
   group and one matrix product per group and voxel chunk.
5. ``dispersion = sum(wresid**2) / (n - p)``; the t/F dof is ``n - rank(X)``.

Voxels are processed in chunks so float64 temporaries stay small whatever the run size.

Modules: :mod:`~glmflow.core.glm.engine` (``fit_glm``), :mod:`~glmflow.core.glm.inputs`
(design array, sample mask and option checks), :mod:`~glmflow.core.glm.results`
(``FirstLevelFit`` and its ``.npz`` file), :mod:`~glmflow.core.glm.files` (one run's fit
from the files the graph passes, for ``FitFirstLevel``).
"""

from glmflow.core.glm.engine import fit_glm
from glmflow.core.glm.files import fit_run_files
from glmflow.core.glm.inputs import NOISE_MODELS, read_sample_mask
from glmflow.core.glm.results import FirstLevelFit, load_fit, save_fit

__all__ = [
    "NOISE_MODELS",
    "FirstLevelFit",
    "fit_glm",
    "fit_run_files",
    "load_fit",
    "read_sample_mask",
    "save_fit",
]
