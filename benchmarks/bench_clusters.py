"""Cluster tables: glmflow.core.clusters vs nilearn's get_clusters_table, side by side.

Data: group z maps on the realistic preset's grid (97x115x97, 2-mm MNI affine) inside an
ellipsoid "brain" (~240,000 voxels): one-sample t of smooth-noise effect maps (8 mm FWHM)
with four blobs (4 and 1.5 noise SDs), converted to z. Cases, each the table of the map
thresholded the way ``run_group_inference`` thresholds it (nilearn's
``threshold_stats_img``, two-sided) and tabulated above 0 with min_distance 8 mm:

- ``fdr``: 8 subjects, FDR q < 0.05 (the group level of issue 13's study);
- ``p<0.01``: 4 subjects, uncorrected p < 0.01 (issue 13's "common first look").

And the cluster-extent threshold (``cluster_threshold`` 5 voxels, the packaged model's):
glmflow's ``threshold_map`` (nilearn's height, ``drop_small_clusters``' extent) against
nilearn's ``threshold_stats_img`` with the extent, thresholded maps checked equal.

One run of each engine in this process (the machine is shared: read CPU beside wall); the
tables are checked equal with ``pandas.testing.assert_frame_equal(check_exact=True)``.

Usage: ``python benchmarks/bench_clusters.py``; prints a markdown table and writes it to
benchmarks/RESULTS-clusters.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from nilearn.glm import threshold_stats_img  # noqa: E402
from nilearn.reporting import get_clusters_table  # noqa: E402
from scipy import ndimage, stats  # noqa: E402

from glmflow.core.clusters import clusters_table  # noqa: E402
from glmflow.core.inference import threshold_map  # noqa: E402

HERE = Path(__file__).resolve().parent
SHAPE = (97, 115, 97)
AFFINE = np.array([[-2.0, 0, 0, 96], [0, 2.0, 0, -132], [0, 0, 2.0, -78], [0, 0, 0, 1]])
#: case -> (subjects, blob amplitude in noise SDs, height control, alpha)
CASES = {"fdr": (8, 4.0, "fdr", 0.05), "p<0.01": (4, 1.5, "fpr", 0.01)}


def group_z(n_subjects: int, seed: int = 0, amplitude: float = 1.5) -> nib.Nifti1Image:
    """One-sample z map of ``n_subjects`` smooth-noise effect maps with four blobs."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE).astype(np.float32)
    centre = np.array(SHAPE, dtype=np.float32)[:, None, None, None] / 2
    brain = (((grid - centre) / (centre * 0.85)) ** 2).sum(0) < 1
    signal = np.zeros(SHAPE, dtype=np.float32)
    for point in ((30, 40, 50), (65, 70, 40), (48, 90, 60), (50, 30, 30)):
        signal += np.exp(-(((grid - np.array(point)[:, None, None, None]) ** 2).sum(0)) / 40)
    sigma = 8 / 2 / 2.3548
    maps = []
    for _ in range(n_subjects):
        noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), sigma)
        maps.append(noise / noise[brain].std() + amplitude * signal)
    maps = np.stack(maps)
    t = maps.mean(0) / (maps.std(0, ddof=1) / np.sqrt(n_subjects))
    z = stats.norm.isf(stats.t.sf(t, n_subjects - 1)).clip(-10, 10)
    return nib.Nifti1Image(np.where(brain, z, 0).astype(np.float32), AFFINE)


def _timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = function(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


EXTENT = 5
TABLE_COLUMNS = (
    "| case | subjects | clusters | rows | glmflow wall (s) | nilearn wall (s) "
    "| glmflow CPU (s) | nilearn CPU (s) | speed-up (wall) | speed-up (CPU) | tables |"
)
EXTENT_COLUMNS = (
    "| case | glmflow wall (s) | nilearn wall (s) | glmflow CPU (s) | nilearn CPU (s) "
    "| speed-up (wall) | voxels kept | maps |"
)


def _table_row(name: str, n_subjects: int, z, control: str, alpha: float) -> str:
    """One case's cluster table: glmflow against nilearn on the same thresholded map."""
    thresholded, _ = threshold_map(z, alpha=alpha, height_control=control)
    options = {"stat_threshold": 0.0, "two_sided": True, "min_distance": 8.0}
    ours, wall, cpu = _timed(clusters_table, thresholded, **options)
    theirs, nwall, ncpu = _timed(get_clusters_table, thresholded, **options)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    n_clusters = int((theirs["Cluster Size (mm3)"] != "").sum())
    return (
        f"| {name} | {n_subjects} | {n_clusters} | {len(theirs)} | {wall:.2f} | {nwall:.1f} "
        f"| {cpu:.2f} | {ncpu:.1f} | {nwall / wall:.0f}x | {ncpu / cpu:.0f}x | identical |"
    )


def _extent_row(name: str, n_subjects: int, z, control: str, alpha: float) -> str:
    """One case's extent threshold: glmflow against nilearn, the same voxels."""
    options = dict(alpha=alpha, height_control=control, cluster_threshold=EXTENT)
    (ours, _), wall, cpu = _timed(threshold_map, z, **options)
    (theirs, _), nwall, ncpu = _timed(threshold_stats_img, z, **options)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
    kept = int(np.count_nonzero(np.asanyarray(ours.dataobj)))
    return (
        f"| {name} | {wall:.2f} | {nwall:.2f} | {cpu:.2f} | {ncpu:.2f} "
        f"| {nwall / wall:.1f}x | {kept} | identical |"
    )


def main() -> None:
    tables, extents = [TABLE_COLUMNS, "| --- " * 11 + "|"], [EXTENT_COLUMNS, "| --- " * 8 + "|"]
    for name, (n_subjects, amplitude, control, alpha) in CASES.items():
        z = group_z(n_subjects, amplitude=amplitude)  # once, for both tables
        for lines, row in ((tables, _table_row), (extents, _extent_row)):
            lines.append(row(name, n_subjects, z, control, alpha))
            print(lines[-1], flush=True)
    header = (
        "# Cluster tables: glmflow vs nilearn\n\n"
        f"Generated by `python benchmarks/bench_clusters.py` on {platform.machine()} "
        f"(2 cores, shared), Python {sys.version.split()[0]}, one run each.\n\n"
        "Maps: one-sample group z maps on the 97x115x97 2-mm grid (see the script), "
        "thresholded two-sided by nilearn's `threshold_stats_img` as `run_group_inference` "
        "does, tabulated above 0, min_distance 8 mm. `tables`: the whole tables equal "
        "(`assert_frame_equal(check_exact=True)`).\n\n"
    )
    extent_header = (
        f"\n\n## The cluster-extent threshold ({EXTENT} voxels)\n\n"
        "The same maps thresholded with an extent: glmflow's `threshold_map` (nilearn's "
        "height threshold, then `drop_small_clusters`) against nilearn's `threshold_stats_img`"
        " with `cluster_threshold`; `maps`: the thresholded maps equal voxel for voxel.\n\n"
    )
    text = header + "\n".join(tables) + extent_header + "\n".join(extents) + "\n"
    (HERE / "RESULTS-clusters.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
