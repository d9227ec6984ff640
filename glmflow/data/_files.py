"""Files of the synthetic dataset: deterministic gzipped NIfTI, TSV/JSON, BIDS metadata and
fMRIPrep confounds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from isal.igzip import IGzipFile
from nilearn.glm.first_level import make_first_level_design_matrix

from glmflow.data._simulation import MOTION_PSC, RunStats

TASK = "faces"
BIDS_VERSION = "1.8.0"
FMRIPREP_VERSION = "23.2.1"

MOTION = tuple(MOTION_PSC)
HEAD_RADIUS_MM = 50.0  # Power et al. framewise displacement
FD_THRESHOLD, STD_DVARS_THRESHOLD = 0.5, 1.5  # fMRIPrep's spike thresholds
HIGH_PASS_HZ = 1 / 128  # fMRIPrep's cosine basis
N_COMPCOR = {"a": 6, "c": 3, "w": 3, "t": 4}
COMPCOR_SOURCE = {"a": "combined", "c": "csf", "w": "wm", "t": "tcompcor"}
COMPCOR_MASK = {"a": "combined", "c": "CSF", "w": "WM"}


class NiftiWriter:
    """Stream a gzipped NIfTI-1 image from flat Fortran-ordered chunks (use as a context).

    The gzip header carries no file name and mtime 0, so the same data give the same bytes;
    isal's igzip writes standard gzip several times faster than zlib at low levels.
    """

    def __init__(
        self,
        path: Path,
        *,
        shape: tuple[int, ...],
        affine: np.ndarray,
        dtype: type,
        tr: float | None = None,
        code: str = "mni",
        level: int = 1,
    ) -> None:
        self.path, self.dtype = path, np.dtype(dtype)
        self.header = nib.Nifti1Header()
        self.header.set_data_shape(shape)
        self.header.set_data_dtype(dtype)
        self.header.set_qform(affine, code)
        self.header.set_sform(affine, code)
        if tr is None:
            self.header.set_xyzt_units("mm")
        else:
            zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
            self.header.set_zooms((*zooms, tr))
            self.header.set_xyzt_units("mm", "sec")
        self.level = level
        self.expected = int(np.prod(shape)) * self.dtype.itemsize
        self.written = 0

    def __enter__(self) -> NiftiWriter:
        self._raw = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        self._gz = IGzipFile("", "wb", self.level, self._raw, mtime=0)
        self.header.write_to(self._gz)
        return self

    def write(self, chunk: np.ndarray) -> None:
        data = np.asarray(chunk, dtype=self.dtype).tobytes(order="F")
        self._gz.write(data)
        self.written += len(data)

    def __exit__(self, *exc) -> None:
        self._gz.close()
        self._raw.close()
        if exc[0] is None and self.written != self.expected:
            raise RuntimeError(f"wrote {self.written} of {self.expected} bytes to {self.path}")


def write_nifti(path: Path, chunks: Iterable[np.ndarray], **kwargs) -> None:
    """Write an image given as flat Fortran-ordered chunks (see :class:`NiftiWriter`)."""
    with NiftiWriter(path, **kwargs) as writer:
        for chunk in chunks:
            writer.write(chunk)


def write_image(path: Path, data: np.ndarray, affine: np.ndarray, **kwargs) -> None:
    """Write a 3D array (any order) as a gzipped NIfTI."""
    write_nifti(path, [data], shape=data.shape, affine=affine, dtype=data.dtype, **kwargs)


def write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")


def write_tsv(path: Path, table: pd.DataFrame) -> None:
    """Write a BIDS TSV (n/a for missing, floats at full precision like fMRIPrep).

    numpy's vectorised float-to-text is ~20x faster than pandas' per-value formatting.
    """
    columns = []
    for name in table.columns:
        values = table[name].to_numpy()
        if values.dtype.kind == "f":
            text = values.astype(str)
            text[np.isnan(values)] = "n/a"
        else:
            text = np.array(["n/a" if pd.isna(v) else str(v) for v in values], dtype=object)
        columns.append(text)
    rows = ["\t".join(row) for row in zip(*columns, strict=True)]
    path.write_text("\n".join(["\t".join(table.columns), *rows]) + "\n")


def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power's FD: sum of absolute backward differences, rotations as arc length at 50 mm."""
    delta = np.abs(np.diff(motion, axis=0))
    fd = delta[:, :3].sum(1) + HEAD_RADIUS_MM * delta[:, 3:].sum(1)
    return np.concatenate([[np.nan], fd])


def cosine_basis(n_volumes: int, tr: float) -> np.ndarray:
    """fMRIPrep's DCT high-pass basis (same definition as nilearn's cosine drift)."""
    times = np.arange(n_volumes) * tr
    design = make_first_level_design_matrix(times, drift_model="cosine", high_pass=HIGH_PASS_HZ)
    return design.drop(columns="constant").to_numpy()


def make_confounds(
    motion: np.ndarray, stats: RunStats, n_nss: int, tr: float
) -> tuple[pd.DataFrame, dict]:
    """The confounds table and sidecar of one run with fMRIPrep >= 21 column names.

    Expansions follow fMRIPrep: ``_derivative1`` is the backward difference (n/a in the first
    row), ``_power2`` squares the raw value. Motion outliers are frames with FD > 0.5 mm or
    std_dvars > 1.5. CompCor columns are the leading components of the detrended,
    variance-normalised mask time series, non-steady-state frames excluded (set to 0).
    """
    n = motion.shape[0]
    columns: dict[str, np.ndarray] = {}
    sidecar: dict[str, dict] = {}
    means = {
        "global_signal": stats.global_signal,
        "csf": stats.csf,
        "white_matter": stats.white_matter,
    }
    for name, values in means.items():
        columns |= confound_expansions(name, values)
        sidecar[name] = {"Method": "Mean"}
    columns["csf_wm"] = stats.csf_wm
    columns["tcompcor"] = stats.tcompcor
    sidecar |= {"csf_wm": {"Method": "Mean"}, "tcompcor": {"Method": "Mean"}}
    fd = framewise_displacement(motion)
    columns |= {"std_dvars": stats.std_dvars, "dvars": stats.dvars}
    columns["framewise_displacement"] = fd
    cosines = cosine_basis(n, tr)
    for prefix in ("t", "c", "w", "a"):
        components, meta = _compcor(stats.series[COMPCOR_SOURCE[prefix]], cosines, n_nss)
        for k in range(min(N_COMPCOR[prefix], components.shape[1])):
            name = f"{prefix}_comp_cor_{k:02d}"
            columns[name] = components[:, k]
            sidecar[name] = {"CumulativeVarianceExplained": meta[1][k]}
            if prefix in COMPCOR_MASK:
                sidecar[name]["Mask"] = COMPCOR_MASK[prefix]
            sidecar[name] |= {
                "Method": "tCompCor" if prefix == "t" else "aCompCor",
                "Retained": True,
                "SingularValue": meta[0][k],
                "VarianceExplained": meta[2][k],
            }
    for k in range(cosines.shape[1]):
        columns[f"cosine{k:02d}"] = cosines[:, k]
    for k in range(n_nss):
        columns[f"non_steady_state_outlier{k:02d}"] = np.eye(n, dtype=int)[k]
    for j, name in enumerate(MOTION):
        columns |= confound_expansions(name, motion[:, j])
    spikes = np.flatnonzero((fd > FD_THRESHOLD) | (stats.std_dvars > STD_DVARS_THRESHOLD))
    for k, frame in enumerate(spikes):
        columns[f"motion_outlier{k:02d}"] = np.eye(n, dtype=int)[frame]
    return pd.DataFrame(columns), sidecar


def confound_expansions(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """fMRIPrep's expansions of a confound: itself, its derivative, their squares."""
    derivative = np.concatenate([[np.nan], np.diff(values)])
    return {
        name: values,
        f"{name}_derivative1": derivative,
        f"{name}_derivative1_power2": derivative**2,
        f"{name}_power2": values**2,
    }


def _compcor(
    series: np.ndarray, cosines: np.ndarray, n_nss: int
) -> tuple[np.ndarray, tuple[list, list, list]]:
    """Principal components of the high-passed, z-scored series (steady-state frames)."""
    n = series.shape[0]
    data = series[n_nss:].astype(np.float64)
    basis = np.column_stack([np.ones(n - n_nss), cosines[n_nss:]])
    data -= basis @ np.linalg.lstsq(basis, data, rcond=None)[0]
    sd = data.std(0)
    data = data[:, sd > 0] / sd[sd > 0]
    u, s, _ = np.linalg.svd(data, full_matrices=False)
    # LAPACK's sign is arbitrary: make each component's largest entry positive
    u *= np.sign(u[np.abs(u).argmax(0), np.arange(u.shape[1])])
    explained = s**2 / (s**2).sum()
    components = np.zeros((n, u.shape[1]))
    components[n_nss:] = u
    meta = (s.tolist(), np.cumsum(explained).tolist(), explained.tolist())
    return components, meta


_README = (
    "Synthetic faces-task fMRI dataset written by glmflow.data.make_synthetic_dataset.\n\n"
    "The raw sub-*/func/*_bold.nii.gz images are header-correct placeholders filled with\n"
    "zeros: analyses read derivatives/fmriprep (simulated preprocessed BOLD, brain masks,\n"
    "confounds). The ground truth (effects, regions, all generation parameters) is in\n"
    "derivatives/truth/truth.json with per-subject effect maps and region masks.\n"
)
_PARTICIPANTS_JSON = {
    "participant_id": {"Description": "Participant label"},
    "group": {
        "Description": "Diagnostic group (balanced)",
        "Levels": {"control": "healthy control", "patient": "patient"},
    },
    "age": {"Description": "Age at scan", "Units": "year"},
    "sex": {"Description": "Sex", "Levels": {"F": "female", "M": "male"}},
}
_EVENTS_JSON = {
    "trial_type": {
        "Description": "Stimulus category",
        "Levels": {
            "face": "photograph of a face",
            "house": "photograph of a house",
            "scrambled": "phase-scrambled image",
            "fixation": "fixation cross between blocks",
        },
    },
    "rt": {"Description": "Reaction time (n/a for fixation)", "Units": "s"},
    "block_type": {
        "Description": "Attentional load of the block (n/a for fixation)",
        "Levels": {"high": "high load", "low": "low load"},
    },
}
FMRIPREP_DESCRIPTION = {
    "Name": "fMRIPrep - fMRI PREProcessing workflow",
    "BIDSVersion": BIDS_VERSION,
    "DatasetType": "derivative",
    "GeneratedBy": [
        {
            "Name": "fMRIPrep",
            "Version": FMRIPREP_VERSION,
            "CodeURL": f"https://github.com/nipreps/fmriprep/archive/{FMRIPREP_VERSION}.tar.gz",
        },
        {
            "Name": "glmflow.data.make_synthetic_dataset",
            "Description": "simulated stand-in for fMRIPrep outputs",
        },
    ],
}
_TRUTH_DESCRIPTION = {
    "Name": "Ground truth of the glmflow synthetic dataset",
    "BIDSVersion": BIDS_VERSION,
    "DatasetType": "derivative",
    "GeneratedBy": [{"Name": "glmflow.data.make_synthetic_dataset"}],
}


def write_dataset_metadata(root: Path, preset: str, seed: int, participants: pd.DataFrame) -> None:
    """Dataset-level files: descriptions, README, participants, task sidecars."""
    write_json(
        root / "dataset_description.json",
        {
            "Name": f"glmflow synthetic faces dataset (preset {preset}, seed {seed})",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["glmflow.data.make_synthetic_dataset"],
        },
    )
    (root / "README").write_text(_README)
    write_tsv(root / "participants.tsv", participants)
    write_json(root / "participants.json", _PARTICIPANTS_JSON)
    write_json(
        root / f"task-{TASK}_bold.json",
        {"TaskName": TASK, "TaskDescription": "Event-related face / house / scrambled viewing"},
    )
    write_json(root / f"task-{TASK}_events.json", _EVENTS_JSON)
    fmriprep = root / "derivatives" / "fmriprep"
    fmriprep.mkdir(parents=True)
    write_json(fmriprep / "dataset_description.json", FMRIPREP_DESCRIPTION)
    write_json(root / "derivatives" / "truth" / "dataset_description.json", _TRUTH_DESCRIPTION)
