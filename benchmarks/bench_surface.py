"""Surfaces (issue 12): one fsLR 91k run against reading it; the FWER of surface inference.

``run``: one CIFTI dense time series, 91282 grayordinates x 240 volumes (float32,
uncompressed, 87.6 MB), from :func:`glmflow.data.surface.add_surface_runs`. Each case runs in
a fresh process after its imports, interleaved, repeated (shared machine: min and median):

- read: ``nibabel.load(dtseries).get_fdata()``, reading it as nibabel does (the unit);
- glmflow: ``read_surface_bold`` + ``fit_glm`` (AR(1)) + 3 t contrasts, each contrast's five
  maps written as ``.dscalar.nii`` (``compute_surface_contrast_maps``);
- nilearn: the same read + ``run_glm`` + ``compute_contrast`` (nilearn has no CIFTI I/O:
  no files written).

``fwer``: 100 null datasets (12 subjects, a connected patch of 300 fsaverage5 vertices,
standard normal maps smoothed by 3 passes of neighbour averaging), one-sample test, 100
sign flips each: the share of datasets with any FWE-significant vertex (alpha 0.05) for
max-t (nilearn's permuted_ols), TFCE and cluster size (p < 0.001) on the mesh. Target:
5 % +- 3 %.

Usage: ``python benchmarks/bench_surface.py [--repeats N] [--skip-fwer]``; writes
``benchmarks/RESULTS-surface.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import sys, time, json
kind, path, design_file, out = sys.argv[1:5]
import numpy as np, nibabel as nib, pandas as pd
design = pd.read_csv(design_file, sep="\\t")
names = ["face - house", "face", "house"]
if kind == "glmflow":
    from glmflow.core.glm import fit_glm, save_fit
    from glmflow.core.surface.io import read_surface_bold, write_geometry
    from glmflow.core.surface.maps import compute_surface_contrast_maps
    import nilearn.glm  # imports before the clock, as the nilearn case's
else:
    from nilearn.glm.first_level import run_glm
    from nilearn.glm.contrasts import compute_contrast
t0 = time.perf_counter()
if kind == "read":
    data = nib.load(path).get_fdata()
elif kind == "glmflow":
    bold = read_surface_bold(path)
    stages = {"read": time.perf_counter() - t0}
    fit = fit_glm(bold.data, design, noise_model="ar1", signal_scaling=0)
    save_fit(fit, out + "/fit.npz")
    stages["fit"] = time.perf_counter() - t0 - stages["read"]
    contrasts = [{"name": n, "expressions": [n], "stat_type": "t"} for n in names]
    compute_surface_contrast_maps(out + "/fit.npz", write_geometry(bold, out), contrasts,
                                  out_dir=out)
    stages["contrasts"] = time.perf_counter() - t0 - stages["read"] - stages["fit"]
else:
    data = nib.load(path).get_fdata()
    y = 100 * (data / data.mean(0) - 1)
    labels, results = run_glm(y, design.to_numpy(), noise_model="ar1")
    for n in names:
        w = np.zeros(design.shape[1])
        for term, sign in (("face", 1.0), ("house", -1.0 if "-" in n else 1.0)):
            if term in n:
                w[list(design.columns).index(term)] = sign
        compute_contrast(labels, results, w, stat_type="t").z_score()
print(json.dumps({"wall": time.perf_counter() - t0, "stages": locals().get("stages", {})}))
"""


def make_run(root: Path) -> tuple[Path, Path]:
    """A 240-volume synthetic dataset with its fsLR 91k run, and a design TSV for it."""
    import pandas as pd
    from nilearn.glm.first_level import make_first_level_design_matrix

    from glmflow.data import make_synthetic_dataset
    from glmflow.data.surface import add_surface_runs

    ds = make_synthetic_dataset(root / "bids", n_subjects=1, n_runs=1, n_volumes=240)
    add_surface_runs(ds, spaces=("fsLR",))
    func = ds / "derivatives" / "fmriprep" / "sub-01" / "func"
    events = pd.read_csv(ds / "sub-01" / "func" / "sub-01_task-faces_run-1_events.tsv", sep="\t")
    events = events[events["trial_type"] != "fixation"][["onset", "duration", "trial_type"]]
    times = (pd.RangeIndex(240).to_numpy() + 0.5) * 2.0
    design = make_first_level_design_matrix(times, events, hrf_model="spm")
    design_file = root / "design.tsv"
    design.to_csv(design_file, sep="\t", index=False)
    return func / "sub-01_task-faces_run-1_space-fsLR_den-91k_bold.dtseries.nii", design_file


def time_cases(path: Path, design: Path, repeats: int) -> tuple[dict, list[dict]]:
    """Each case's wall seconds per repeat, and the glmflow case's stages per repeat."""
    import json

    walls: dict[str, list[float]] = {"read": [], "glmflow": [], "nilearn": []}
    stages: list[dict[str, float]] = []
    for _ in range(repeats):
        for kind in walls:
            with tempfile.TemporaryDirectory(prefix="surf-bench-") as out:
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, kind, str(path), str(design), out],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(proc.stdout.splitlines()[-1])
                walls[kind].append(result["wall"])
                if kind == "glmflow":
                    stages.append(result["stages"])
                print(kind, f"{walls[kind][-1]:.2f} s", file=sys.stderr, flush=True)
    return walls, stages


def null_fwer(n_datasets: int = 100, n_perm: int = 100) -> tuple[dict[str, float], float]:
    """Share of null datasets with a FWE-significant vertex, per method, and the seconds."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from glmflow.core.surface.group import surface_group_inference
    from glmflow.core.surface.meshes import fsaverage5_mesh, hemisphere_adjacency

    coords, _ = fsaverage5_mesh("L", "sphere")
    unit = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    patch = np.argsort(-(unit @ unit[0]))[:300]
    adjacency = hemisphere_adjacency("fsaverage5", "L")[patch][:, patch].tocsr()
    smooth = adjacency + sp.eye(300)
    smooth = sp.csr_matrix(smooth.multiply(1 / smooth.sum(axis=1)))
    design = pd.DataFrame({"intercept": np.ones(12)})
    rng = np.random.default_rng(1)
    hits = {"max-t": 0, "TFCE": 0, "cluster size": 0}
    start = time.perf_counter()
    for i in range(n_datasets):
        data = rng.standard_normal((12, 300))
        for _ in range(3):
            data = (smooth @ data.T).T
        out = surface_group_inference(data, design, [1.0], adjacency, n_perm=n_perm, seed=i)
        for name, key in (
            ("max-t", "logp_max_t"),
            ("TFCE", "logp_max_tfce"),
            ("cluster size", "logp_max_size"),
        ):
            hits[name] += bool(out[key].max() > -np.log10(0.05))
    return {k: v / n_datasets for k, v in hits.items()}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-fwer", action="store_true")
    args = parser.parse_args()
    lines = ["# Surface benchmark (benchmarks/bench_surface.py)", ""]
    with tempfile.TemporaryDirectory(prefix="surf-bench-data-") as tmp:
        path, design = make_run(Path(tmp))
        walls, stages = time_cases(path, design, args.repeats)
        size_mb = path.stat().st_size / 1e6
    unit = min(walls["read"])
    lines += [
        f"Run: fsLR 91k CIFTI, 91282 grayordinates x 240 volumes float32 "
        f"({size_mb:.1f} MB, uncompressed); AR(1), 3 t contrasts.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {os.getloadavg()[0]:.1f} at the end); Python {platform.python_version()}. "
        f"Wall seconds after imports, min (median) over {args.repeats} fresh processes.",
        "",
        "| case | wall s | wall / read |",
        "|---|---|---|",
    ]
    for kind, values in walls.items():
        lines.append(
            f"| {kind} | {min(values):.2f} ({statistics.median(values):.2f}) | "
            f"{min(values) / unit:.2f} |"
        )
    fastest = min(stages, key=lambda s: sum(s.values()))
    lines += [
        "",
        "glmflow's fastest repeat by stage: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in fastest.items())
        + " (read: glmflow's own read of the run, bad grayordinates found; fit: AR(1), "
        "saved; contrasts: 3 t contrasts, nilearn's z_score, 15 .dscalar.nii written).",
        "",
        "Target: glmflow <= 1.5x read.",
    ]
    if not args.skip_fwer:
        rates, seconds = null_fwer()
        lines += [
            "",
            "## FWER on null surface data",
            "",
            "100 null datasets, 12 subjects, 300-vertex fsaverage5 patch, 100 sign flips "
            f"each ({seconds:.0f} s). Target 5 % +- 3 %.",
            "",
            "| method | datasets with a FWE-significant vertex |",
            "|---|---|",
        ]
        lines += [f"| {name} | {rate:.0%} |" for name, rate in rates.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "RESULTS-surface.md").write_text(text)


if __name__ == "__main__":
    main()
