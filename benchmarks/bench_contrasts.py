"""Contrast engine speed: glmflow's ``compute_contrast`` vs nilearn's public ``compute_contrast``.

Both engines get the same fit of the same data: a realistic run's shape (238,023 voxels, the
mask of ``make_synthetic_dataset(preset="realistic")`` on the 2-mm MNI grid, x 240 volumes,
20 design columns), ``Y = X @ beta + AR(1) noise``. nilearn fits with its public ``run_glm``
(AR(1), 100 bins) and contrasts with its public ``nilearn.glm.compute_contrast`` plus the
five maps (effect, variance, stat, p, z) that ``FirstLevelModel.compute_contrast(...,
output_type="all")`` returns; glmflow fits with ``fit_glm`` (no scaling, as ``run_glm``) and
computes the same five maps with ``glmflow.core.contrasts.compute_contrast``. Timed: the
contrast step only, one t and one F (3 rows) contrast, minimum over repeats. The maps are
compared too (max |dz|).

Usage: ``python benchmarks/bench_contrasts.py [--voxels N] [--repeats N]``; prints a markdown
table and writes it to benchmarks/RESULTS-contrasts.md.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_VOLUMES, N_COLUMNS = 240, 20


def _data(n_voxels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(N_VOLUMES)
    X = np.column_stack(
        [np.convolve(rng.random(N_VOLUMES) > 0.8, np.hanning(12), "same") for _ in range(3)]
        + [rng.standard_normal(N_VOLUMES).cumsum() / 10 for _ in range(6)]
        + [np.cos(np.pi * (t + 0.5) * k / N_VOLUMES) for k in range(1, N_COLUMNS - 9)]
        + [np.ones(N_VOLUMES)]
    )
    phi = rng.uniform(-0.2, 0.6, n_voxels)
    shocks = rng.standard_normal((N_VOLUMES, n_voxels))
    noise = np.empty_like(shocks)
    noise[0] = shocks[0]
    for i in range(1, N_VOLUMES):
        noise[i] = shocks[i] + phi * noise[i - 1]
    Y = X @ rng.uniform(-1, 3, (N_COLUMNS, n_voxels)) + 8 * noise
    return Y, X


def _best(func, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=238023)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from nilearn import __version__ as nilearn_version
    from nilearn.glm import compute_contrast as nilearn_contrast
    from nilearn.glm.first_level import run_glm

    from glmflow.core.contrasts import compute_contrast
    from glmflow.core.glm import fit_glm

    Y, X = _data(args.voxels)
    columns = [f"c{i}" for i in range(N_COLUMNS)]
    fit = fit_glm(Y, X, column_names=columns, signal_scaling=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels, results = run_glm(Y, X, noise_model="ar1", bins=100)
    del Y
    eye = np.eye(N_COLUMNS)
    cases = {
        "t": ({"name": "t", "weights": [{"c0": 1, "c1": -1}]}, eye[0] - eye[1]),
        "F": ({"name": "F", "stat_type": "F", "weights": [{"c0": 1}, {"c1": 1}, {"c2": 1}]},
              eye[:3]),
    }  # fmt: skip
    rows = []
    for stat_type, (spec, matrix) in cases.items():

        def theirs(matrix=matrix, stat_type=stat_type):
            con = nilearn_contrast(labels, results, matrix, stat_type)
            return con.z_score(), con.stat(), con.p_value(), con.effect, con.variance

        ours_s, ours = _best(lambda spec=spec: compute_contrast(fit, spec), args.repeats)
        theirs_s, reference = _best(theirs, args.repeats)
        dz = float(np.abs(ours["z"] - reference[0]).max())
        rows.append((stat_type, ours_s, theirs_s, theirs_s / ours_s, dz))
    lines = [
        "# Contrast engine benchmark (benchmarks/bench_contrasts.py)",
        "",
        f"{args.voxels} voxels x {N_VOLUMES} volumes, {N_COLUMNS} columns, AR(1) (100 bins); "
        f"nilearn {nilearn_version}, Python {platform.python_version()}, {platform.machine()}, "
        f"minimum over {args.repeats} repeats (shared 2-core machine).",
        "",
        "| contrast | glmflow s | nilearn compute_contrast s | speed-up | max abs dz |",
        "|---|---|---|---|---|",
        *(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.1f}x | {r[4]:.1e} |" for r in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "RESULTS-contrasts.md").write_text(text)


if __name__ == "__main__":
    main()
