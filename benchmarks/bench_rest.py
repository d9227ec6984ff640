"""One realistic resting-state run parcellated and correlated, against ``gzip -dc`` and nilearn.

Issue 11's budget: one run on the 2-mm MNI grid (97x115x97, 240 volumes, gzip float32) turned
into parcel time series and a correlation matrix in at most 1.5x the time ``gzip -dc`` takes
to inflate its BOLD (glmflow reads the BOLD once; nilearn's masker loads it whole).

The run is ``glmflow.data.make_synthetic_dataset(preset="realistic")``'s (any realistic BOLD
has the same cost); the atlas is Harvard-Oxford (``glmflow.core.atlases``) resampled once to
the BOLD's grid and restricted to the labels inside the synthetic brain, given as the same
file to both. Each measurement runs in a fresh process, interleaved, repeated (the machine is
shared: min, median and max are printed):

- ``gzip -dc bold > /dev/null``: the budget's unit;
- glmflow: ``read_signals`` + ``clean_signals`` (detrend, 0.01-0.08 Hz band-pass, motion
  confounds, z-score) + ``ConnectivityMeasure`` correlation, after imports;
- glmflow's whole run node (``connectivity_run_files``: confounds selection, the above, the
  TSV files), after imports;
- nilearn: ``NiftiLabelsMasker(...).fit_transform`` with the same options + the same
  ``ConnectivityMeasure``, after imports.

Usage: ``python benchmarks/bench_rest.py [--data DIR] [--repeats N]``. Prints a markdown table
and writes ``benchmarks/RESULTS-rest.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPTIONS = dict(detrend=True, standardize="zscore_sample", high_pass=0.01, low_pass=0.08)

CHILD = """
import sys, time, json
kind, bold, mask, confounds, atlas, tsv, out = sys.argv[1:8]
import numpy as np, pandas as pd
from nilearn.connectome import ConnectivityMeasure
from glmflow.core.rest.spec import CleanSpec, connectivity_spec
options = json.loads(sys.argv[8])
motion = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
if kind == "glmflow":
    from glmflow.core.rest.atlas import Atlas
    from glmflow.core.rest.extract import clean_signals, read_signals
    table = pd.read_csv(tsv, sep="\\t")
    atlas = Atlas("labels", "ho", tuple(table["name"]), atlas, tuple(table["index"]))
    t0 = time.perf_counter()
    conf = pd.read_csv(confounds, sep="\\t")[motion].to_numpy()
    raw = read_signals(bold, mask, atlas)
    series = clean_signals(raw.regions, CleanSpec(**options), tr=2.0, confounds=conf,
                           sample_mask=None, where=bold)
    ConnectivityMeasure(kind="correlation").fit_transform([series])
elif kind == "node":
    from glmflow.core.rest.run import connectivity_run_files
    spec = connectivity_spec({"name": "bench", "task": "faces", **options,
                              "atlas": {"labels_img": atlas, "labels_tsv": tsv},
                              "confounds": {"columns": motion}, "fisher_z": False})
    t0 = time.perf_counter()
    connectivity_run_files(bold_file=bold, mask_file=mask, confounds_file=confounds, tr=2.0,
                           spec=spec, out_dir=out)
else:
    from nilearn.maskers import NiftiLabelsMasker
    t0 = time.perf_counter()
    conf = pd.read_csv(confounds, sep="\\t")[motion].to_numpy()
    masker = NiftiLabelsMasker(atlas, mask_img=mask, t_r=2.0, **options)
    series = masker.fit_transform(bold, confounds=conf)
    ConnectivityMeasure(kind="correlation").fit_transform([series])
print(time.perf_counter() - t0)
"""


def _prepare(data: Path) -> tuple[Path, Path, Path, Path, Path]:
    """The realistic run, and Harvard-Oxford on its grid restricted to its brain."""
    import nibabel as nib
    import numpy as np
    import pandas as pd
    from nilearn.image import resample_to_img

    func = data / "derivatives/fmriprep/sub-01/func"
    stem = "sub-01_task-faces_run-1"
    bold = func / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    if not bold.is_file():
        from glmflow.data import make_synthetic_dataset

        make_synthetic_dataset(data, preset="realistic", n_subjects=1, n_runs=1)
    mask = func / f"{stem}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
    confounds = func / f"{stem}_desc-confounds_timeseries.tsv"
    atlas, tsv = data / "atlas-ho_dseg.nii.gz", data / "atlas-ho_dseg.tsv"
    if not atlas.is_file():
        from glmflow.core.atlases import volume_atlas

        ho = volume_atlas("harvard_oxford")
        img = resample_to_img(ho.image, nib.load(mask), interpolation="nearest",
                              force_resample=True, copy_header=True)  # fmt: skip
        labels = np.asarray(img.dataobj).astype(np.int16)
        labels[np.asarray(nib.load(mask).dataobj) == 0] = 0
        values = sorted(int(v) for v in np.unique(labels) if v)
        nib.save(nib.Nifti1Image(labels, img.affine), atlas)
        names = [ho.labels[v] for v in values]
        pd.DataFrame({"index": values, "name": names}).to_csv(tsv, sep="\t", index=False)
    return bold, mask, confounds, atlas, tsv


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def _child(kind: str, files, out: Path) -> float:
    import json

    args = [sys.executable, "-c", CHILD, kind, *map(str, files), str(out), json.dumps(OPTIONS)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{kind} failed: {proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/glmflow-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = _prepare(args.data)
    out = args.data / "bench_rest_node"
    out.mkdir(exist_ok=True)
    rows = {"gzip": [], "glmflow": [], "node": [], "nilearn": []}
    for _ in range(args.repeats):
        rows["gzip"].append(_wall(["sh", "-c", f"gzip -dc '{files[0]}' > /dev/null"]))
        for kind in ("glmflow", "node", "nilearn"):
            rows[kind].append(_child(kind, files, out))
    report(rows, files, args.repeats)


def report(rows: dict[str, list[float]], files, repeats: int) -> None:
    import nibabel as nib
    import pandas as pd

    floor = min(rows["gzip"])
    labels = {
        "gzip": "`gzip -dc bold > /dev/null` (the budget's unit)",
        "glmflow": "glmflow: one read + `nilearn.signal.clean` + correlation (after imports)",
        "node": "glmflow's run node `connectivity_run_files` (confounds, files; after imports)",
        "nilearn": "nilearn `NiftiLabelsMasker.fit_transform` + correlation (after imports)",
    }
    n_labels = len(pd.read_csv(files[4], sep="\t"))
    size = files[0].stat().st_size / 1e6
    lines = [
        "# One realistic resting-state run parcellated and correlated",
        "",
        f"{files[0].name}: {size:.0f} MB gzip, {nib.load(files[0]).shape} float32; "
        f"Harvard-Oxford, {n_labels} labels in the mask; {platform.machine()}, shared; "
        f"{repeats} repeats, interleaved. Seconds as min / median / max; ratio of the minima. "
        "Budget (issue 11): glmflow <= 1.5x `gzip -dc`.",
        "",
        "| what | wall s (min / median / max) | vs `gzip -dc` |",
        "| --- | --- | --- |",
    ]
    for key, values in rows.items():
        stats = f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
        lines.append(f"| {labels[key]} | {stats} | {min(values) / floor:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "RESULTS-rest.md").write_text(text)


if __name__ == "__main__":
    main()
