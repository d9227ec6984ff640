"""Synthetic BIDS + fMRIPrep dataset with a known ground truth.

:func:`make_synthetic_dataset` writes a raw BIDS dataset (task "faces"), fMRIPrep-style
derivatives (preprocessed BOLD in MNI152NLin2009cAsym, brain masks, confounds) and the truth
in ``derivatives/truth`` (``truth.json``, per-subject effect maps, region masks).

The raw ``*_bold.nii.gz`` files are header-correct placeholders filled with zeros: glmflow,
like any fMRIPrep-based GLM, reads only the preprocessed derivatives. The generative model
is described in :mod:`glmflow.data._simulation` and, in full, in ``truth.json``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from glmflow.data import _anatomy as anatomy
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
from glmflow.data._truth import (
    TRUTH_DIR,
    effect_maps,
    truth_header,
    write_effect_maps,
    write_region_masks,
)
from glmflow.data._truth import group_effects as _group_effects
from glmflow.errors import DatasetError

SPACE = "MNI152NLin2009cAsym"
N_NON_STEADY_STATE = 2
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
    anat = anatomy.make_anatomy(params.shape, params.voxel_size, _rng(params.seed, 0))
    participants = _make_participants(params.n_subjects, _rng(params.seed, 1))
    group_effects = _group_effects(participants, _rng(params.seed, 2))
    truth = truth_header(asdict(params), anat, space=SPACE, n_non_steady_state=N_NON_STEADY_STATE)
    truth["group_effect"]["mean_age"] = float(participants["age"].mean())
    # written first so an interrupted run is still recognised (and replaced) by overwrite=True
    write_json(root / TRUTH_DIR / "truth.json", truth | {"complete": False})
    write_dataset_metadata(root, params.preset, params.seed, participants)
    write_region_masks(root, anat)
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
        brain = anatomy.subject_brain(anat, rng)
        betas = effect_maps(anat, group_effects[i][0])
        subject["effect_maps"] = write_effect_maps(root, row.participant_id, betas, anat)
        subject["runs"] = {}
        for ses in range(1, params.n_sessions + 1):
            for run in range(1, params.n_runs + 1):
                key, info = _write_run(
                    root, params, anat, row.participant_id, ses, run, brain, betas, subject
                )
                subject["runs"][key] = info
        truth["subjects"][row.participant_id] = subject
    write_json(root / TRUTH_DIR / "truth.json", truth | {"complete": True})


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
    problem = anatomy.layout_problem(shape)
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


def _write_raw_bold(path: Path, anat: anatomy.Anatomy, n: int, tr: float) -> None:
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
