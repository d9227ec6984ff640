"""A resting-state task for the synthetic dataset, with planted network structure.

:func:`add_resting_state` writes task "rest" runs (raw placeholders, fMRIPrep-style BOLD,
brain masks, confounds) into a synthetic dataset (its participants and groups), or a new
one, and the truth: an 8-parcel atlas (``derivatives/truth/atlas-rest_dseg.nii.gz`` + its
``dseg.tsv``, on the BOLD grid) and ``derivatives/truth/rest_truth.json``.

Generative model, per run (all signals band-limited to 0.01-0.08 Hz, unit variance):

- network A = parcels 1, 2, 3 share a latent series ``a``; network B = parcels 4, 5, 6 share
  ``b``: parcel = sqrt(0.6) * latent + sqrt(0.4) * its own series (r = 0.6 within a network);
- parcels 7 and 8 are independent of everything, except in group ``patient``, where they
  share a latent ``c`` with r = :data:`PLANTED_R` (the planted group difference, edge 7-8);
- voxel = baseline 1000 * (1 + 1 % * parcel series) + white noise (sd 1 %); voxels outside
  the parcels carry noise only;
- motion: a slow random walk, and spikes on :data:`N_SPIKES` volumes: the head jumps
  (framewise displacement > 1 mm, std_dvars > 3, a ``motion_outlierXX`` column each) and the
  whole brain's intensity jumps by 10 % on that volume (a shared artefact that, left in,
  correlates every parcel with every other).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.data import _anatomy as anatomy
from glmflow.data._files import (
    FMRIPREP_DESCRIPTION,
    HEAD_RADIUS_MM,
    MOTION,
    confound_expansions,
    cosine_basis,
    write_image,
    write_json,
    write_nifti,
    write_tsv,
)

TASK = "rest"
SPACE = "MNI152NLin2009cAsym"
NETWORKS = {"A": (1, 2, 3), "B": (4, 5, 6)}
INDEPENDENT = (7, 8)
PLANTED_EDGE = (7, 8)
WITHIN_R = 0.6
PLANTED_R = 0.6
N_SPIKES = 6
SPIKE_PSC = 10.0
BAND_HZ = (0.01, 0.08)
ATLAS = "derivatives/truth/atlas-rest_dseg"


def _band_limited(rng: np.random.Generator, n: int, tr: float, k: int) -> np.ndarray:
    """(n, k) unit-variance noise with its spectrum inside :data:`BAND_HZ`."""
    spectrum = np.fft.rfft(rng.normal(size=(n, k)), axis=0)
    freqs = np.fft.rfftfreq(n, tr)
    spectrum[(freqs < BAND_HZ[0]) | (freqs > BAND_HZ[1])] = 0
    series = np.fft.irfft(spectrum, n=n, axis=0)
    series -= series.mean(0)
    return series / series.std(0)


def parcels(shape: tuple[int, int, int], brain: np.ndarray) -> np.ndarray:
    """The 8-parcel atlas: the brain's octants (labels 1..8), inner core left out."""
    coords = anatomy._ellipsoid_coords(shape)
    rho = np.sqrt((coords**2).sum(0))
    x, y, z = (coords[i] > 0 for i in range(3))
    labels = 1 + x.astype(int) + 2 * y.astype(int) + 4 * z.astype(int)
    return np.where(brain & (rho > 0.25) & (rho < 0.9), labels, 0).astype(np.int16)


def parcel_series(rng, n: int, tr: float, patient: bool) -> np.ndarray:
    """(n, 8) parcel signals of one run (module docstring)."""
    own = _band_limited(rng, n, tr, 8)
    latent = _band_limited(rng, n, tr, 3)
    series = own.copy()
    for j, members in enumerate(NETWORKS.values()):
        for p in members:
            series[:, p - 1] = (
                np.sqrt(WITHIN_R) * latent[:, j] + np.sqrt(1 - WITHIN_R) * own[:, p - 1]
            )
    if patient:
        for p in PLANTED_EDGE:
            series[:, p - 1] = (
                np.sqrt(PLANTED_R) * latent[:, 2] + np.sqrt(1 - PLANTED_R) * own[:, p - 1]
            )
    return series


def _motion(rng, n: int, spikes: np.ndarray) -> np.ndarray:
    steps = np.concatenate([rng.normal(0, 0.01, (n, 3)), rng.normal(0, 0.0001, (n, 3))], axis=1)
    motion = np.cumsum(steps, axis=0)
    motion[spikes, :3] += rng.choice([-1, 1], (len(spikes), 3)) * 1.0
    return motion - motion[0]


def _confounds(motion: np.ndarray, spikes: np.ndarray, global_signal: np.ndarray, tr: float
               ) -> pd.DataFrame:  # fmt: skip
    n = len(motion)
    delta = np.abs(np.diff(motion, axis=0))
    fd = np.concatenate([[np.nan], delta[:, :3].sum(1) + HEAD_RADIUS_MM * delta[:, 3:].sum(1)])
    std_dvars = np.full(n, 1.0)
    std_dvars[0] = np.nan
    std_dvars[spikes] = 3.0
    columns = {}
    for name, values in {"global_signal": global_signal, "csf": global_signal * 0.1,
                         "white_matter": global_signal * 0.2}.items():  # fmt: skip
        columns |= confound_expansions(name, values)
    columns |= {"std_dvars": std_dvars, "dvars": std_dvars * 10, "framewise_displacement": fd}
    for j, name in enumerate(MOTION):
        columns |= confound_expansions(name, motion[:, j])
    for k, frame in enumerate(sorted(set(np.flatnonzero(fd > 0.5)) | set(spikes.tolist()))):
        columns[f"motion_outlier{k:02d}"] = np.eye(n, dtype=int)[frame]
    for k, values in enumerate(cosine_basis(n, tr).T):  # fMRIPrep's high-pass basis
        columns[f"cosine{k:02d}"] = values
    return pd.DataFrame(columns)


def _participants(root: Path, n_subjects: int) -> pd.DataFrame:
    path = root / "participants.tsv"
    if path.is_file():
        return pd.read_csv(path, sep="\t", dtype=str)
    width = max(2, len(str(n_subjects)))
    table = pd.DataFrame({
        "participant_id": [f"sub-{i:0{width}d}" for i in range(1, n_subjects + 1)],
        "group": np.resize(["control", "patient"], n_subjects),
        "age": np.round(np.linspace(20, 60, n_subjects), 1),
    })  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "dataset_description.json", {
        "Name": "glmflow synthetic resting-state dataset", "BIDSVersion": "1.8.0",
        "DatasetType": "raw", "License": "CC0",
    })  # fmt: skip
    write_tsv(path, table)
    fmriprep = root / "derivatives" / "fmriprep"
    fmriprep.mkdir(parents=True, exist_ok=True)
    write_json(fmriprep / "dataset_description.json", FMRIPREP_DESCRIPTION)
    return table


def add_resting_state(
    root: str | Path,
    *,
    n_subjects: int = 8,
    n_runs: int = 1,
    n_volumes: int = 150,
    shape: tuple[int, int, int] = (20, 24, 20),
    voxel_size: float = 4.0,
    tr: float = 2.0,
    seed: int = 0,
) -> Path:
    """Write resting-state runs (task "rest") and their truth; return the dataset root.

    Into an existing (synthetic) dataset: its ``participants.tsv`` gives the subjects and
    the ``group`` column (``patient`` carries the planted edge; ``n_subjects`` is then not
    used). Otherwise a new dataset of ``n_subjects`` alternating control / patient.
    Same arguments, same bytes.
    """
    root = Path(root)
    table = _participants(root, n_subjects)
    anat = anatomy.make_anatomy(shape, voxel_size, np.random.default_rng([seed, 0]))
    brain = np.sqrt((anat.coords**2).sum(0)) < 1
    labels = parcels(shape, brain)
    truth_dir = root / "derivatives" / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    if not (truth_dir / "dataset_description.json").is_file():
        write_json(truth_dir / "dataset_description.json", {
            "Name": "glmflow synthetic truth", "BIDSVersion": "1.8.0", "DatasetType": "derivative",
        })  # fmt: skip
    write_image(root / f"{ATLAS}.nii.gz", labels, anat.affine)
    names = [f"{net}{i + 1}" for net, members in NETWORKS.items() for i in range(len(members))]
    names += [f"solo{i + 1}" for i in range(len(INDEPENDENT))]
    write_tsv(root / f"{ATLAS}.tsv", pd.DataFrame({"index": range(1, 9), "name": names}))
    truth = {"task": TASK, "networks": NETWORKS, "independent": INDEPENDENT,
             "planted_edge": PLANTED_EDGE, "within_r": WITHIN_R, "planted_r": PLANTED_R,
             "planted_group": "patient", "atlas": f"{ATLAS}.nii.gz", "runs": {}}  # fmt: skip
    write_json(root / "task-rest_bold.json", {"TaskName": TASK})
    for i, row in enumerate(table.itertuples()):
        patient = getattr(row, "group", "") == "patient"
        for run in range(1, n_runs + 1):
            rng = np.random.default_rng([seed, 1, i, run])
            stem = f"{row.participant_id}_task-{TASK}_run-{run}"
            spikes = _write_run(root, stem, row.participant_id, anat, brain, labels,
                                rng, n_volumes, tr, patient)  # fmt: skip
            truth["runs"][stem] = {"spikes": spikes.tolist(), "patient": patient}
    (truth_dir / "rest_truth.json").write_text(json.dumps(truth, indent=2))
    return root


def _write_run(root, stem, sub, anat, brain, labels, rng, n, tr, patient) -> np.ndarray:
    raw_dir, out_dir = root / sub / "func", root / "derivatives" / "fmriprep" / sub / "func"
    raw_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    spikes = np.sort(rng.choice(np.arange(5, n - 5), N_SPIKES, replace=False))
    series = parcel_series(rng, n, tr, patient)
    flat_labels = labels.ravel(order="F")
    inside = np.flatnonzero(brain.ravel(order="F"))
    signal = np.zeros((n, len(inside)))
    parcel_of = flat_labels[inside]
    signal[:, parcel_of > 0] = series[:, parcel_of[parcel_of > 0] - 1]
    artefact = np.zeros(n)
    artefact[spikes] = SPIKE_PSC
    percent = signal + rng.normal(size=signal.shape) + artefact[:, None]
    volumes = np.zeros((n, int(np.prod(anat.shape))), np.float32)
    volumes[:, inside] = 1000.0 * (1 + percent / 100)
    prefix = f"{stem}_space-{SPACE}"
    kwargs = {"shape": (*anat.shape, n), "affine": anat.affine, "dtype": np.float32, "tr": tr}
    write_nifti(out_dir / f"{prefix}_desc-preproc_bold.nii.gz", iter(volumes), **kwargs)
    write_json(
        out_dir / f"{prefix}_desc-preproc_bold.json", {"RepetitionTime": tr, "TaskName": TASK}
    )
    write_image(out_dir / f"{prefix}_desc-brain_mask.nii.gz", brain.astype(np.uint8), anat.affine)
    confounds = _confounds(_motion(rng, n, spikes), spikes, volumes[:, inside].mean(1), tr)
    write_tsv(out_dir / f"{stem}_desc-confounds_timeseries.tsv", confounds)
    zeros = np.zeros(int(np.prod(anat.shape)), np.int16)
    write_nifti(raw_dir / f"{stem}_bold.nii.gz", (zeros for _ in range(n)),
                shape=(*anat.shape, n), affine=anat.affine, dtype=np.int16, tr=tr)  # fmt: skip
    write_json(raw_dir / f"{stem}_bold.json", {"RepetitionTime": tr, "TaskName": TASK})
    return spikes
