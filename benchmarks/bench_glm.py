"""The GLM engine alone: glmflow's ``fit_glm`` vs nilearn's public ``run_glm`` on the same data.

One realistic run after masking: 240 volumes x 238,023 voxels (the realistic preset's 2-mm
brain mask), float32, AR(1) noise with coefficients spread over 0..0.6 as
in grey matter, and a 20-column design (4 conditions, 6 motion confounds, 9 cosine drifts,
constant). Both engines get Y already in percent signal change (``signal_scaling=False``
for ours), one BLAS thread (``threadpoolctl``; nodes run as one process each) and
``noise_model="ar1"``, ``bins=100``. Time is the minimum wall time over repeats (the
machine is shared), in-process, imports excluded.

Usage: ``python benchmarks/bench_glm.py [--voxels N] [--repeats N]``; prints a markdown
table and writes it to benchmarks/RESULTS-glm.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

N_VOLUMES, TR = 240, 2.0
HERE = Path(__file__).resolve().parent


def make_data(n_voxels: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    from nilearn.glm.first_level import make_first_level_design_matrix

    rng = np.random.default_rng(seed)
    onsets = np.arange(10.0, N_VOLUMES * TR - 20, 12.0)
    events = pd.DataFrame(
        {
            "onset": onsets,
            "duration": 3.0,
            "trial_type": [f"c{i % 4}" for i in range(onsets.size)],
        }
    )
    motion = pd.DataFrame(
        np.cumsum(rng.standard_normal((N_VOLUMES, 6)) * 0.02, axis=0),
        columns=[f"m{i}" for i in range(6)],
    )
    design = make_first_level_design_matrix(
        np.arange(N_VOLUMES) * TR, events, hrf_model="spm", add_regs=motion, high_pass=0.01
    )
    phi = rng.uniform(0.0, 0.6, n_voxels)
    noise = np.empty((N_VOLUMES, n_voxels))
    noise[0] = rng.standard_normal(n_voxels)
    for t in range(1, N_VOLUMES):
        noise[t] = phi * noise[t - 1] + rng.standard_normal(n_voxels)
    betas = rng.uniform(-1, 1, (design.shape[1], n_voxels))
    y = design.to_numpy() @ betas + noise
    return y.astype(np.float32), design


def best_of(repeats: int, function):
    """Minimum wall time over ``repeats`` calls, and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=238_023)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import nilearn
    from nilearn.glm.first_level import run_glm

    from glmflow.core.glm import fit_glm

    y, design = make_data(args.voxels)
    x = design.to_numpy()
    with threadpool_limits(limits=1, user_api="blas"):
        ours, fit = best_of(args.repeats, lambda: fit_glm(y, design, signal_scaling=False))
        theirs, (labels, results) = best_of(args.repeats, lambda: run_glm(y, x, n_jobs=1))
    theta = np.empty_like(fit.theta)
    for label, result in results.items():
        theta[:, labels == label] = result.theta
    table = "\n".join(
        [
            "# GLM engine benchmark (benchmarks/bench_glm.py)",
            "",
            f"{args.voxels} voxels x {N_VOLUMES} volumes, {design.shape[1]} columns, AR(1) "
            f"(100 bins), one BLAS thread; nilearn {nilearn.__version__}, Python "
            f"{platform.python_version()}, {platform.machine()}, minimum over {args.repeats} "
            "repeats (shared 2-core machine).",
            "",
            "| engine | s | speed-up | max abs d theta |",
            "|---|---|---|---|",
            f"| glmflow fit_glm | {ours:.2f} | {theirs / ours:.1f}x | "
            f"{np.abs(fit.theta - theta).max():.1e} |",
            f"| nilearn run_glm | {theirs:.2f} | 1.0x | |",
            "",
        ]
    )
    print(table)
    (HERE / "RESULTS-glm.md").write_text(table)


if __name__ == "__main__":
    main()
