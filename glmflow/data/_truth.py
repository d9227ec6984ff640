"""Ground truth of the synthetic dataset: truth.json, true effect maps, region masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow import __version__
from glmflow.data import _simulation as sim
from glmflow.data._anatomy import TISSUE_GAIN, Anatomy
from glmflow.data._files import TASK, write_image
from glmflow.errors import DatasetError

TRUTH_DIR = Path("derivatives", "truth")


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


def group_effects(
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


def effect_maps(anat: Anatomy, group_face: float) -> np.ndarray:
    betas = np.zeros((len(sim.REGRESSORS), *anat.shape), np.float32)
    for region, box in anat.regions.items():
        values = dict(sim.REGION_BETAS[region])
        if region == "group":
            values["face"] = group_face
        for name, beta in values.items():
            betas[(sim.REGRESSORS.index(name), *box)] = beta
    return betas


def truth_header(parameters: dict, anat: Anatomy, *, space: str, n_non_steady_state: int) -> dict:
    """truth.json without its subjects: every generation parameter and the true effects."""
    return {
        "generator": "glmflow.data.make_synthetic_dataset",
        "glmflow_version": __version__,
        "parameters": parameters,
        "task": TASK,
        "space": space,
        "affine": anat.affine.tolist(),
        **_signal_description(parameters["tr"]),
        "regions": _regions(anat),
        "bbox_convention": "voxel index [start, stop) per axis",
        **_nuisance_description(n_non_steady_state),
        "subjects": {},
    }


def _regions(anat: Anatomy) -> dict:
    regions = {}
    for name, box in anat.regions.items():
        betas = dict(sim.REGION_BETAS[name])
        if name == "group":
            betas["face"] = "subject-specific: subjects.<sub>.group_region_face_effect"
        centre = [(s.start + s.stop - 1) / 2 for s in box]  # voxel indices of the box centre
        regions[name] = {
            "bbox": [[s.start, s.stop] for s in box],
            # MNI-like mm (the grid's affine): where an atlas is read for the region's label
            "center_mm": [float(v) for v in anat.affine[:3, :3] @ centre + anat.affine[:3, 3]],
            "n_voxels": int(np.prod([s.stop - s.start for s in box])),
            "mask": f"desc-{name}_mask.nii.gz",
            "betas": betas,
        }
    return regions


def _signal_description(tr: float) -> dict:
    return {
        "conditions": list(sim.CONDITIONS),
        "other_trial_types": ["fixation"],
        "regressors": {
            **{c: f"'{c}' trials (duration from events.tsv)" for c in sim.CONDITIONS},
            "rt": "'face' trials with amplitude rt - mean(rt of the run's face trials)",
            "highblock": "face, house and scrambled trials with block_type 'high'",
        },
        "units": "percent of the voxel's baseline (rt: percent per second)",
        "hrf_model": "spm",
        "tr": tr,
        "start_time": 0.5 * tr,
        "slice_time_ref": 0.5,
        "frame_times": "(i + start_time / tr) * tr, i = 0 .. n_volumes - 1",
        "signal_model": (
            "y = B * (1 + (sum_k beta_k x_k + drift + motion + physio + noise) / 100) "
            "+ B * nss_boost; 0 outside the subject's brain mask"
        ),
    }


def _nuisance_description(n_non_steady_state: int) -> dict:
    return {
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
        "n_non_steady_state": n_non_steady_state,
        "nss_boost": list(sim.NSS_BOOST),
        "drift": {
            "max_psc": sim.DRIFT_MAX_PSC,
            "model": "(1 + 0.5 * x_ellipsoid) * (a_lin * (tau - 0.5) + a_cos * cos(pi * tau)), "
            "tau = i / (n_volumes - 1); per-run [a_lin, a_cos] in subjects.<sub>.runs",
        },
        "motion_psc": dict(sim.MOTION_PSC),
        "motion_model": "sum_k motion_psc[k] * (param_k - mean over the run)",
        "physio_sd_psc": dict(sim.PHYSIO_SD_PSC),
        "baseline": f"100 * baseline_scale * (1 + 0.1 * smooth field) * tissue gain {TISSUE_GAIN}",
    }


def write_region_masks(root: Path, anat: Anatomy) -> None:
    for name, box in anat.regions.items():
        mask = np.zeros(anat.shape, np.uint8)
        mask[box] = 1
        write_image(root / TRUTH_DIR / f"desc-{name}_mask.nii.gz", mask, anat.affine)


def write_effect_maps(root: Path, sub: str, betas: np.ndarray, anat: Anatomy) -> dict:
    maps = {}
    for k, name in enumerate(sim.REGRESSORS):
        maps[name] = f"{sub}_desc-{name}_effect.nii.gz"
        write_image(root / TRUTH_DIR / maps[name], betas[k], anat.affine)
    return maps
