"""Single-run speed and memory: glmflow's engine vs nilearn vs ``gzip -dc``.

One realistic run (2-mm MNI grid 97x115x97, 240 volumes, gzip float32, from
``glmflow.data.make_synthetic_dataset(preset="realistic")``) is fitted in fresh processes:

- ``gzip -dc bold > /dev/null``: the floor every reader pays in some form;
- glmflow: ``read_masked_bold`` + ``fit_glm(ar1)`` + 3 contrasts (all five maps, as images);
- glmflow + files: the same through the files the Nipype nodes write and read
  (masked .npy, fit .npz, 15 contrast NIfTIs);
- glmflow, smoothed: with ``smoothing_fwhm=6``;
- nilearn: ``FirstLevelModel(noise_model="ar1")`` fit + the same contrasts (output_type="all").

The same design DataFrame (nilearn's builder, slice-time reference from the sidecar) goes to
both engines. Wall time is the whole process (imports included), the minimum over repeats
(the machine is shared); peak RSS is the process's ``ru_maxrss``. Targets: glmflow wall
<= 1.5x ``gzip -dc`` and peak RSS <= 1.2x the float32 BOLD size.

Usage: ``python benchmarks/bench_run.py [--data DIR] [--repeats N] [--no-nilearn]``;
prints a markdown table and writes it to benchmarks/RESULTS-run.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRASTS = [
    {"name": "face-house", "expressions": ["face - house"], "stat_type": "t"},
    {"name": "face-scrambled", "expressions": ["face - scrambled"], "stat_type": "t"},
    {"name": "effects", "expressions": ["face", "house", "scrambled"], "stat_type": "F"},
]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


# ---------------------------------------------------------------- children (fresh processes)
def _child_glmflow(args) -> dict:
    t0 = time.perf_counter()
    import pandas as pd

    from glmflow.core.bold import read_masked_bold, unmask
    from glmflow.core.contrasts import MAP_KEYS, compute_contrast
    from glmflow.core.glm import fit_glm

    t1 = time.perf_counter()
    data = read_masked_bold(args.bold, args.mask, smoothing_fwhm=args.fwhm)
    t2 = time.perf_counter()
    design = pd.read_csv(args.design, sep="\t")
    fit = fit_glm(data, design, noise_model="ar1")
    del data
    t3 = time.perf_counter()
    for spec in CONTRASTS:
        result = compute_contrast(fit, spec)
        [unmask(result[key], args.mask) for key in MAP_KEYS]
    t4 = time.perf_counter()
    return {"import": t1 - t0, "read": t2 - t1, "fit": t3 - t2, "contrasts": t4 - t3}


def _child_glmflow_files(args) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd

    from glmflow.core.bold import read_masked_bold, save_nifti, unmask, write_masked
    from glmflow.core.contrasts import MAP_KEYS, compute_contrast
    from glmflow.core.glm import fit_glm, load_fit, save_fit

    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        out = Path(tmp)
        path = write_masked(read_masked_bold(args.bold, args.mask), out)
        t2 = time.perf_counter()
        design = pd.read_csv(args.design, sep="\t")
        fit_file = save_fit(fit_glm(np.load(path, mmap_mode="r"), design), out / "fit.npz")
        t3 = time.perf_counter()
        fit = load_fit(fit_file)
        for i, spec in enumerate(CONTRASTS):
            result = compute_contrast(fit, spec)
            for key in MAP_KEYS:
                img = unmask(result[key].astype("float32"), args.mask)
                save_nifti(img, out / f"con{i}_{key}.nii.gz")
        t4 = time.perf_counter()
    return {"import": t1 - t0, "read": t2 - t1, "fit": t3 - t2, "contrasts": t4 - t3}


def _child_nilearn(args) -> dict:
    t0 = time.perf_counter()
    import warnings

    import numpy as np
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel

    t1 = time.perf_counter()
    design = pd.read_csv(args.design, sep="\t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FirstLevelModel(mask_img=args.mask, noise_model="ar1", smoothing_fwhm=args.fwhm)
        model.fit(args.bold, design_matrices=[design])
        t3 = time.perf_counter()
        columns = list(design.columns)
        for spec in CONTRASTS:
            if spec["stat_type"] == "t":
                model.compute_contrast(spec["expressions"][0], output_type="all")
            else:
                matrix = np.eye(len(columns))[[columns.index(e) for e in spec["expressions"]]]
                model.compute_contrast(matrix, stat_type="F", output_type="all")
    t4 = time.perf_counter()
    # nilearn masks inside fit: "fit" here is read + mask + fit
    return {"import": t1 - t0, "read": float("nan"), "fit": t3 - t1, "contrasts": t4 - t3}


CHILDREN = {
    "glmflow": _child_glmflow,
    "glmflow-files": _child_glmflow_files,
    "glmflow-smoothed": _child_glmflow,
    "nilearn": _child_nilearn,
}


# ---------------------------------------------------------------- parent
def _dataset(data_dir: Path) -> dict[str, Path]:
    func = data_dir / "derivatives" / "fmriprep" / "sub-01" / "func"
    if not func.is_dir():
        from glmflow.data import make_synthetic_dataset

        print(f"generating the realistic run in {data_dir} (once) ...", flush=True)
        make_synthetic_dataset(data_dir, preset="realistic", n_subjects=1, n_runs=1)
    prefix = "sub-01_task-faces_run-1"
    return {
        "bold": func / f"{prefix}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        "mask": func / f"{prefix}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
        "sidecar": func / f"{prefix}_space-MNI152NLin2009cAsym_desc-preproc_bold.json",
        "confounds": func / f"{prefix}_desc-confounds_timeseries.tsv",
        "events": data_dir / "sub-01" / "func" / f"{prefix}_events.tsv",
    }


def _write_design(files: dict[str, Path], n_volumes: int, out: Path) -> Path:
    import numpy as np
    import pandas as pd
    from nilearn.glm.first_level import make_first_level_design_matrix

    sidecar = json.loads(files["sidecar"].read_text())
    tr = sidecar["RepetitionTime"]
    start = sidecar.get("StartTime", 0.0) / tr
    events = pd.read_csv(files["events"], sep="\t")
    events = events[events["trial_type"] != "fixation"][["onset", "duration", "trial_type"]]
    confounds = pd.read_csv(files["confounds"], sep="\t")[MOTION]
    design = make_first_level_design_matrix(
        (np.arange(n_volumes) + start) * tr,
        events,
        hrf_model="spm",
        drift_model="cosine",
        high_pass=0.01,
        add_regs=confounds.to_numpy(),
        add_reg_names=MOTION,
    )
    path = out / "design.tsv"
    design.to_csv(path, sep="\t", float_format="%.17g", index=False)
    return path


def _run_child(case: str, files, design: Path, fwhm) -> tuple[float, dict]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--bold",
        str(files["bold"]),
        "--mask",
        str(files["mask"]),
        "--design",
        str(design),
    ]
    if fwhm:
        cmd += ["--fwhm", str(fwhm)]
    with _Clock() as clock:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return clock.wall, clock.cpu, json.loads(done.stdout.strip().splitlines()[-1])


def _gzip(bold: Path) -> tuple[float, float]:
    with _Clock() as clock, open(os.devnull, "wb") as sink:
        subprocess.run(["gzip", "-dc", str(bold)], stdout=sink, check=True)
    return clock.wall, clock.cpu


class _Clock:
    """Wall time and CPU time (user + system) of the child processes run inside."""

    def __enter__(self):
        self._wall = time.perf_counter()
        self._cpu = self._children_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = self._children_cpu() - self._cpu

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "glmflow-bench")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-nilearn", action="store_true", help="skip the nilearn rows")
    parser.add_argument("--smoothing", type=float, default=6.0, help="FWHM of the smoothed row")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS-run.md")
    # child mode
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--bold", help=argparse.SUPPRESS)
    parser.add_argument("--mask", help=argparse.SUPPRESS)
    parser.add_argument("--design", help=argparse.SUPPRESS)
    parser.add_argument("--fwhm", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = CHILDREN[args.child](args)
        result["maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(json.dumps(result))
        return

    import nibabel as nib

    files = _dataset(args.data)
    shape = nib.load(files["bold"]).shape
    bold_gb = float(shape[0] * shape[1] * shape[2] * shape[3]) * 4 / 1024**3
    work = tempfile.TemporaryDirectory(prefix="bench_run_")
    design = _write_design(files, shape[3], Path(work.name))
    cases = [
        ("glmflow", "glmflow", None),
        ("glmflow + files", "glmflow-files", None),
        (f"glmflow, smoothed {args.smoothing:g} mm", "glmflow-smoothed", args.smoothing),
    ]
    if not args.no_nilearn:
        cases.append(("nilearn FirstLevelModel", "nilearn", None))

    gzip_runs = [_gzip(files["bold"]) for _ in range(args.repeats)]
    rows = []
    for label, case, fwhm in cases:
        runs = [_run_child(case, files, design, fwhm) for _ in range(args.repeats)]
        rows.append((label, runs))
        print(f"{label}: {min(r[0] for r in runs):.2f} s", flush=True)
    gzip_wall = min(w for w, _ in gzip_runs)
    gzip_cpu = min(c for _, c in gzip_runs)

    lines = [
        "# Single-run benchmark (benchmarks/bench_run.py)",
        "",
        f"Run: {shape[0]}x{shape[1]}x{shape[2]} voxels x {shape[3]} volumes, gzip float32 "
        f"({files['bold'].stat().st_size / 1024**2:.0f} MB on disk, {bold_gb:.2f} GB as "
        f"float32), {int(nib.load(files['mask']).get_fdata().astype(bool).sum())} voxels in "
        "the mask; AR(1) fit and 3 contrasts (2 t, 1 F; all five maps each).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {os.getloadavg()[0]:.1f} at the end); Python {platform.python_version()}. "
        f"Minimum over {args.repeats} fresh processes (median wall in brackets), imports "
        "included; CPU = user + system time of the process.",
        "",
        "| case | wall s | CPU s | wall / gzip | CPU / gzip | import | read+mask | fit "
        "| contrasts | peak RSS GB | RSS / BOLD f32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| gzip -dc > /dev/null | {gzip_wall:.2f} "
        f"({statistics.median(w for w, _ in gzip_runs):.2f}) | {gzip_cpu:.2f} | 1.00 | 1.00 "
        "| | | | | | |",
    ]
    for label, runs in rows:
        wall, cpu, best = min(runs, key=lambda r: r[0])
        cpu = min(r[1] for r in runs)
        read = "-" if best["read"] != best["read"] else f"{best['read']:.2f}"
        lines.append(
            f"| {label} | {wall:.2f} ({statistics.median(r[0] for r in runs):.2f}) | "
            f"{cpu:.2f} | {wall / gzip_wall:.2f} | {cpu / gzip_cpu:.2f} | {best['import']:.2f} "
            f"| {read} | {best['fit']:.2f} | {best['contrasts']:.2f} | {best['maxrss_gb']:.2f} "
            f"| {best['maxrss_gb'] / bold_gb:.2f} |"
        )
    lines += [
        "",
        "nilearn's read+mask happens inside its fit (column 'fit' = read + mask + fit).",
        "Targets: glmflow wall <= 1.5x gzip -dc; peak RSS <= 1.2x the float32 BOLD size.",
        "On a shared machine wall times swing with the load; CPU times are steadier.",
        "",
        "Where glmflow's time goes (cProfile with a CPU clock, same run): inflating the gzip",
        "stream is most of read+mask (CPU to inflate this file, measured once: zlib 3.0 s,",
        "ISA-L 0.96 s, zlib-ng 0.87 s; glmflow uses ISA-L, already a dependency);",
        "the AR(1) fit is two passes over the masked data in float64 voxel chunks (nilearn's",
        "arithmetic, so results match it), memory-bandwidth bound; contrasts are mostly",
        "scipy's t/F and normal distribution functions; the import column is dominated by",
        "nilearn.glm (scikit-learn, scipy.stats), paid once per process (a Nipype MultiProc",
        "run forks workers after importing). Smoothing adds one 3D Gaussian per volume",
        "(scipy.ndimage, on the mask's bounding box plus the kernel radius).",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    args.output.write_text(table)
    work.cleanup()


if __name__ == "__main__":
    main()
