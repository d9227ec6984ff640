"""Synthetic BIDS + fMRIPrep dataset with a known ground truth.

:func:`make_synthetic_dataset` writes a raw BIDS dataset (task "faces"), fMRIPrep-style
derivatives (preprocessed BOLD in MNI152NLin2009cAsym, brain masks, confounds) and the truth
in ``derivatives/truth`` (``truth.json``, per-subject effect maps, region masks).

The raw ``*_bold.nii.gz`` files are header-correct placeholders filled with zeros: glmflow,
like any fMRIPrep-based GLM, reads only the preprocessed derivatives. The generative model
is described in :mod:`glmflow.data._simulation` and, in full, in ``truth.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from glmflow import __version__
from glmflow.data import _simulation as sim
from glmflow.data._files import (
    TASK,
    NiftiWriter,
    make_confounds,
    write_dataset_metadata,
    write_image,
    write_json,
    write_nifti,
    write_tsv,
)
from glmflow.errors import DatasetError

SPACE = "MNI152NLin2009cAsym"
N_NON_STEADY_STATE = 2
TRUTH_DIR = Path("derivatives", "truth")
MIN_RUN_SECONDS = 60.0

PRESETS = MappingProxyType(
    {
        "small": MappingProxyType(
            {
                "n_subjects": 8,
                "n_runs": 2,
                "n_sessions": 1,
                "n_volumes": 100,
                "shape": (20, 24, 20),
                "voxel_size": 4.0,
                "tr": 2.0,
            }
        ),
        "realistic": MappingProxyType(
            {
                "n_subjects": 8,
                "n_runs": 2,
                "n_sessions": 1,
                "n_volumes": 240,
                "shape": (97, 115, 97),
                "voxel_size": 2.0,
                "tr": 2.0,
            }
        ),
    }
)


@dataclass(frozen=True)
class _Params:
    preset: str
    n_subjects: int
    n_runs: int
    n_sessions: int
    n_volumes: int
    shape: tuple[int, int, int]
    voxel_size: float
    tr: float
    seed: int


def make_synthetic_dataset(
    out_dir: str | Path,
    *,
    preset: str = "small",
    n_subjects: int | None = None,
    n_runs: int | None = None,
    n_sessions: int | None = None,
    n_volumes: int | None = None,
    shape: tuple[int, int, int] | None = None,
    tr: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic BIDS + fMRIPrep dataset with known effects and return its root.

    Parameters
    ----------
    out_dir : str or Path
        Dataset root; created if missing, must be empty unless ``overwrite``.
    preset : {"small", "realistic"}
        "small": 8 subjects, 2 runs, 100 volumes of (20, 24, 20) 4-mm voxels, TR 2 s
        (seconds to write). "realistic": the 2-mm MNI152NLin2009cAsym grid (97, 115, 97),
        240 volumes, for benchmarks (about 200 MB per run).
    n_subjects, n_runs, n_sessions, n_volumes, shape, tr : optional
        Override the preset. One session means no ``ses-`` level.
    seed : int
        Same seed and parameters give byte-identical files.
    overwrite : bool
        Replace a previous synthetic dataset in ``out_dir`` (recognised by its
        ``derivatives/truth/truth.json``; other non-empty directories are never deleted).

    Returns
    -------
    Path
        The dataset root.
    """
    params = _resolve_params(preset, n_subjects, n_runs, n_sessions, n_volumes, shape, tr, seed)
    root = _prepare_out_dir(Path(out_dir), overwrite)
    # The matrices are small: multithreaded BLAS only adds contention (10x slower on 2 busy
    # cores), and one thread keeps the bytes independent of the machine's core count.
    with threadpool_limits(limits=1, user_api="blas"):
        _write_dataset(root, params)
    return root


def _write_dataset(root: Path, params: _Params) -> None:
    anat = sim.make_anatomy(params.shape, params.voxel_size, _rng(params.seed, 0))
    participants = _make_participants(params.n_subjects, _rng(params.seed, 1))
    group_effects = _group_effects(participants, _rng(params.seed, 2))
    truth = _truth_header(params, anat)
    truth["group_effect"]["mean_age"] = float(participants["age"].mean())
    # written first so an interrupted run is still recognised (and replaced) by overwrite=True
    write_json(root / TRUTH_DIR / "truth.json", truth | {"complete": False})
    write_dataset_metadata(root, params.preset, params.seed, participants)
    _write_region_masks(root, anat)
    for i, row in enumerate(participants.itertuples()):
        rng = _rng(params.seed, 3, i)
        subject = {
            "group": row.group,
            "age": row.age,
            "sex": row.sex,
            "baseline_scale": float(rng.uniform(0.8, 1.2)),
            "group_region_face_effect": group_effects[i][0],
            "between_subject_noise": group_effects[i][1],
        }
        brain = sim.subject_brain(anat, rng)
        betas = _effect_maps(anat, group_effects[i][0])
        subject["effect_maps"] = _write_effect_maps(root, row.participant_id, betas, anat)
        subject["runs"] = {}
        for ses in range(1, params.n_sessions + 1):
            for run in range(1, params.n_runs + 1):
                key, info = _write_run(
                    root, params, anat, row.participant_id, ses, run, brain, betas, subject
                )
                subject["runs"][key] = info
        truth["subjects"][row.participant_id] = subject
    write_json(root / TRUTH_DIR / "truth.json", truth | {"complete": True})


def load_truth(dataset_dir: str | Path) -> dict:
    """Read ``derivatives/truth/truth.json`` of a synthetic dataset.

    Paths inside (masks, effect maps, events) are relative to ``derivatives/truth`` or,
    for run files, to the dataset root.
    """
    path = Path(dataset_dir) / TRUTH_DIR / "truth.json"
    if not path.is_file():
        raise DatasetError(
            f"No ground truth at {path}: {dataset_dir} is not a dataset written by "
            "glmflow.data.make_synthetic_dataset"
        )
    truth = json.loads(path.read_text())
    if not truth.get("complete"):
        raise DatasetError(
            f"Ground truth {path} is incomplete: the dataset generation was interrupted; "
            "generate it again with overwrite=True"
        )
    return truth


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """Independent stream per purpose/subject/run, so one change does not reshuffle all."""
    return np.random.default_rng([seed, *stream])


def _resolve_params(preset, n_subjects, n_runs, n_sessions, n_volumes, shape, tr, seed):
    if preset not in PRESETS:
        raise DatasetError(
            f"Unknown synthetic dataset preset {preset!r} (available: {', '.join(PRESETS)})"
        )
    given = {
        "n_subjects": n_subjects,
        "n_runs": n_runs,
        "n_sessions": n_sessions,
        "n_volumes": n_volumes,
        "shape": shape,
        "tr": tr,
    }
    values = dict(PRESETS[preset]) | {k: v for k, v in given.items() if v is not None}
    for name, minimum in (("n_subjects", 1), ("n_runs", 1), ("n_sessions", 1), ("seed", 0)):
        value = seed if name == "seed" else values[name]
        _check_int(name, value, minimum)
    _check_int("n_volumes", values["n_volumes"], N_NON_STEADY_STATE + 10)
    shape = values["shape"]
    if (
        not isinstance(shape, tuple | list)
        or len(shape) != 3
        or not all(isinstance(s, int | np.integer) and s > 0 for s in shape)
    ):
        raise DatasetError(f"'shape' must be three positive integers. Got {shape!r} instead.")
    shape = tuple(int(s) for s in shape)
    problem = sim.layout_problem(shape)
    if problem:
        raise DatasetError(
            f"'shape' {shape} is too small for the truth regions ({problem}); "
            f"use at least {PRESETS['small']['shape']}."
        )
    tr = values["tr"]
    if isinstance(tr, bool) or not isinstance(tr, int | float) or not tr > 0:
        raise DatasetError(f"'tr' must be a positive number of seconds. Got {tr!r} instead.")
    if values["n_volumes"] * tr < MIN_RUN_SECONDS:
        raise DatasetError(
            f"'n_volumes' * 'tr' must be at least {MIN_RUN_SECONDS:g} s to hold a block of "
            f"trials. Got {values['n_volumes']} * {tr:g} = {values['n_volumes'] * tr:g} s."
        )
    values |= {"shape": shape, "tr": float(tr)}
    return _Params(preset=preset, seed=seed, **values)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DatasetError(f"'{name}' must be an integer >= {minimum}. Got {value!r} instead.")


def _prepare_out_dir(root: Path, overwrite: bool) -> Path:
    if root.exists() and not root.is_dir():
        raise DatasetError(f"Output directory {root} is a file; choose a directory path")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise DatasetError(
                f"Output directory {root} is not empty; choose a new directory or pass "
                "overwrite=True to replace a previous synthetic dataset"
            )
        if not (root / TRUTH_DIR / "truth.json").is_file():
            raise DatasetError(
                f"Output directory {root} is not empty and holds no {TRUTH_DIR}/truth.json, "
                "so it is not a synthetic dataset; refusing to delete it even with overwrite=True"
            )
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    (root / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    return root


def _make_participants(n: int, rng: np.random.Generator) -> pd.DataFrame:
    width = max(2, len(str(n)))
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{i:0{width}d}" for i in range(1, n + 1)],
            "group": rng.permutation(np.resize(["control", "patient"], n)).tolist(),
            "age": np.round(rng.uniform(20.0, 60.0, n), 1),
            "sex": rng.permutation(np.resize(["F", "M"], n)).tolist(),
        }
    )


def _group_effects(
    participants: pd.DataFrame, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Face effect of each subject in the group region, and its between-subject noise."""
    g = sim.GROUP_EFFECT
    coding = np.where(participants["group"] == "patient", 0.5, -0.5)
    age = participants["age"].to_numpy()
    noise = rng.normal(0.0, g["between_subject_sd"], len(participants))
    effects = (
        g["mean"]
        + g["patient_minus_control"] * coding
        + g["age_slope_per_year"] * (age - age.mean())
        + noise
    )
    return [(float(e), float(z)) for e, z in zip(effects, noise, strict=True)]


def _effect_maps(anat: sim.Anatomy, group_face: float) -> np.ndarray:
    betas = np.zeros((len(sim.REGRESSORS), *anat.shape), np.float32)
    for region, box in anat.regions.items():
        values = dict(sim.REGION_BETAS[region])
        if region == "group":
            values["face"] = group_face
        for name, beta in values.items():
            betas[(sim.REGRESSORS.index(name), *box)] = beta
    return betas


def _truth_header(params: _Params, anat: sim.Anatomy) -> dict:
    regions = {}
    for name, box in anat.regions.items():
        betas = dict(sim.REGION_BETAS[name])
        if name == "group":
            betas["face"] = "subject-specific: subjects.<sub>.group_region_face_effect"
        regions[name] = {
            "bbox": [[s.start, s.stop] for s in box],
            "n_voxels": int(np.prod([s.stop - s.start for s in box])),
            "mask": f"desc-{name}_mask.nii.gz",
            "betas": betas,
        }
    return {
        "generator": "glmflow.data.make_synthetic_dataset",
        "glmflow_version": __version__,
        "parameters": asdict(params),
        "task": TASK,
        "space": SPACE,
        "affine": anat.affine.tolist(),
        "conditions": list(sim.CONDITIONS),
        "other_trial_types": ["fixation"],
        "regressors": {
            **{c: f"'{c}' trials (duration from events.tsv)" for c in sim.CONDITIONS},
            "rt": "'face' trials with amplitude rt - mean(rt of the run's face trials)",
            "highblock": "face, house and scrambled trials with block_type 'high'",
        },
        "units": "percent of the voxel's baseline (rt: percent per second)",
        "hrf_model": "spm",
        "tr": params.tr,
        "start_time": 0.5 * params.tr,
        "slice_time_ref": 0.5,
        "frame_times": "(i + start_time / tr) * tr, i = 0 .. n_volumes - 1",
        "signal_model": (
            "y = B * (1 + (sum_k beta_k x_k + drift + motion + physio + noise) / 100) "
            "+ B * nss_boost; 0 outside the subject's brain mask"
        ),
        "regions": regions,
        "bbox_convention": "voxel index [start, stop) per axis",
        "group_effect": {
            **sim.GROUP_EFFECT,
            "region": "group",
            "regressor": "face",
            "group_coding": {"patient": 0.5, "control": -0.5},
            "age_centering": "sample mean age",
        },
        "noise": {
            **sim.NOISE,
            "model": "AR(1); marginal sd = sd_psc * (1 + edge_gain * rho^2), rho = "
            "ellipsoid radius (0 centre, 1 brain edge)",
        },
        "n_non_steady_state": N_NON_STEADY_STATE,
        "nss_boost": list(sim.NSS_BOOST),
        "drift": {
            "max_psc": sim.DRIFT_MAX_PSC,
            "model": "(1 + 0.5 * x_ellipsoid) * (a_lin * (tau - 0.5) + a_cos * cos(pi * tau)), "
            "tau = i / (n_volumes - 1); per-run [a_lin, a_cos] in subjects.<sub>.runs",
        },
        "motion_psc": dict(sim.MOTION_PSC),
        "motion_model": "sum_k motion_psc[k] * (param_k - mean over the run)",
        "physio_sd_psc": dict(sim.PHYSIO_SD_PSC),
        "baseline": "100 * baseline_scale * (1 + 0.1 * smooth field) * tissue gain "
        f"{sim.TISSUE_GAIN}",
        "subjects": {},
    }


def _write_region_masks(root: Path, anat: sim.Anatomy) -> None:
    for name, box in anat.regions.items():
        mask = np.zeros(anat.shape, np.uint8)
        mask[box] = 1
        write_image(root / TRUTH_DIR / f"desc-{name}_mask.nii.gz", mask, anat.affine)


def _write_effect_maps(root: Path, sub: str, betas: np.ndarray, anat: sim.Anatomy) -> dict:
    maps = {}
    for k, name in enumerate(sim.REGRESSORS):
        maps[name] = f"{sub}_desc-{name}_effect.nii.gz"
        write_image(root / TRUTH_DIR / maps[name], betas[k], anat.affine)
    return maps


def _write_run(root, params, anat, sub, ses, run, brain, betas, subject) -> tuple[str, dict]:
    """Write the raw and fMRIPrep files of one run; return its key and truth entry."""
    rng = _rng(params.seed, 4, int(sub[4:]), ses, run)
    ses_part = [f"ses-{ses:02d}"] if params.n_sessions > 1 else []
    stem = "_".join([sub, *ses_part, f"task-{TASK}", f"run-{run}"])
    raw_dir = root.joinpath(sub, *ses_part, "func")
    out_dir = root.joinpath("derivatives", "fmriprep", sub, *ses_part, "func")
    raw_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, tr, start_time = params.n_volumes, params.tr, 0.5 * params.tr

    # MIN_RUN_SECONDS leaves room for the first fixation and a full, balanced block
    events = sim.make_events(rng, n, tr)
    write_tsv(raw_dir / f"{stem}_events.tsv", events)
    _write_raw_bold(raw_dir / f"{stem}_bold.nii.gz", anat, n, tr)

    times = sim.frame_times(n, tr, start_time)
    motion, jerks = sim.make_motion(rng, n, N_NON_STEADY_STATE)
    drift = tuple(float(a) for a in rng.uniform(-sim.DRIFT_MAX_PSC, sim.DRIFT_MAX_PSC, 2))
    inputs = sim.RunInputs(
        regressors=sim.make_regressors(events, times).to_numpy(),
        motion=motion,
        physio=sim.make_physio(rng, times),
        drift=drift,
        n_nss=N_NON_STEADY_STATE,
    )
    prefix = f"{stem}_space-{SPACE}"
    bold = out_dir / f"{prefix}_desc-preproc_bold.nii.gz"
    kwargs = {"shape": (*anat.shape, n), "affine": anat.affine, "dtype": np.float32, "tr": tr}
    with NiftiWriter(bold, **kwargs) as writer:
        stats = sim.simulate_run(
            anat, brain, subject["baseline_scale"], betas, inputs, rng, writer.write
        )
    write_json(
        out_dir / f"{prefix}_desc-preproc_bold.json",
        {
            "RepetitionTime": tr,
            "SkullStripped": False,
            "SliceTimingCorrected": True,
            "StartTime": start_time,
            "TaskName": TASK,
        },
    )
    write_image(out_dir / f"{prefix}_desc-brain_mask.nii.gz", brain.astype(np.uint8), anat.affine)
    write_json(out_dir / f"{prefix}_desc-brain_mask.json", {"Type": "Brain"})
    confounds, sidecar = make_confounds(motion, stats, N_NON_STEADY_STATE, tr)
    write_tsv(out_dir / f"{stem}_desc-confounds_timeseries.tsv", confounds)
    write_json(out_dir / f"{stem}_desc-confounds_timeseries.json", sidecar)
    outliers = [c for c in confounds if c.startswith("motion_outlier")]
    return "_".join([*ses_part, f"run-{run}"]), {
        "events": str((raw_dir / f"{stem}_events.tsv").relative_to(root)),
        "bold": str(bold.relative_to(root)),
        "n_trials": {c: int((events["trial_type"] == c).sum()) for c in sim.CONDITIONS},
        "drift_psc": list(drift),
        "motion_jerk_frames": jerks,
        "motion_outlier_frames": [int(confounds[c].argmax()) for c in outliers],
    }


def _write_raw_bold(path: Path, anat: sim.Anatomy, n: int, tr: float) -> None:
    """Zero-filled raw BOLD with the right header (glmflow reads only the derivatives)."""
    n_slices = anat.shape[2]
    write_json(
        path.with_name(path.name.replace(".nii.gz", ".json")),
        {
            "RepetitionTime": tr,
            "SliceTiming": [round(k * tr / n_slices, 6) for k in range(n_slices)],
            "SliceEncodingDirection": "k",
            "TaskName": TASK,
        },
    )
    zeros = np.zeros(int(np.prod(anat.shape)), np.int16)
    write_nifti(
        path,
        (zeros for _ in range(n)),
        shape=(*anat.shape, n),
        affine=anat.affine,
        dtype=np.int16,
        tr=tr,
        code="scanner",
    )
