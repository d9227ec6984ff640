"""Synthetic BOLD for a real dataset's events: BIDS Stats Models tests and benchmarks.

:func:`make_events_dataset` copies the events, sidecars and ``participants.tsv`` of a
bids-examples dataset (whose images are placeholders) and writes, for each run, a raw BOLD
placeholder with the right number of volumes and fMRIPrep derivatives (preprocessed BOLD,
brain mask, confounds) simulated by :mod:`glmflow.data._simulation` (the packaged synthetic
dataset's generative model). The first three trial types of the dataset (in order of first
appearance) play the faces task's ``face``, ``house`` and ``scrambled``, so their planted
effects are those of :data:`glmflow.data._simulation.REGION_BETAS`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from glmflow.data import _anatomy as anatomy
from glmflow.data import _simulation as sim
from glmflow.data._files import NiftiWriter, make_confounds, write_image, write_json, write_tsv
from glmflow.data._truth import effect_maps
from glmflow.data.synthetic import N_NON_STEADY_STATE, SPACE, _write_raw_bold


def make_events_dataset(
    source: str | Path,
    out_dir: str | Path,
    *,
    n_volumes: int,
    participants: str | Path | None = None,
    subjects: list[str] | None = None,
    shape: tuple[int, int, int] = (12, 14, 12),
    voxel_size: float = 6.0,
    seed: int = 0,
) -> Path:
    """Write ``out_dir`` (raw + ``derivatives/fmriprep``) from the events of ``source``.

    ``subjects`` (labels without "sub-") restricts the copy; ``participants`` is the
    participants.tsv to copy (the bids-examples copies have none). Returns ``out_dir``.
    """
    source, root = Path(source), Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dataset_description.json", *[p.name for p in source.glob("task-*.json")]):
        shutil.copyfile(source / name, root / name)
    if participants is not None:
        table = pd.read_csv(participants, sep="\t", dtype=str)
        if subjects is not None:
            table = table[table["participant_id"].isin([f"sub-{s}" for s in subjects])]
        table.to_csv(root / "participants.tsv", sep="\t", index=False)
    deriv = root / "derivatives" / "fmriprep"
    deriv.mkdir(parents=True, exist_ok=True)
    write_json(
        deriv / "dataset_description.json",
        {
            "Name": "fMRIPrep (simulated)",
            "BIDSVersion": "1.8.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}],
        },
    )
    events = sorted(source.glob("sub-*/**/func/*_events.tsv"))
    if subjects is not None:
        events = [e for e in events if e.name.split("_")[0][4:] in subjects]
    conditions = _conditions(events)
    anat = anatomy.make_anatomy(shape, voxel_size, np.random.default_rng(seed))
    tr = _repetition_time(source)
    labels = sorted({path.name.split("_")[0] for path in events})
    brains = {  # one brain mask per subject, as fMRIPrep's runs of a subject share one
        label: anatomy.subject_brain(anat, np.random.default_rng([seed, k]))
        for k, label in enumerate(labels)
    }
    with threadpool_limits(limits=1, user_api="blas"):
        for k, path in enumerate(events):
            brain = brains[path.name.split("_")[0]]
            _write_run(root, source, path, conditions, (anat, brain), n_volumes, tr, seed + k)
    return root


def _repetition_time(source: Path) -> float:
    sidecars = [pd.read_json(p, typ="series") for p in source.glob("task-*_bold.json")]
    return float(sidecars[0]["RepetitionTime"])


def _conditions(events: list[Path]) -> list[str]:
    seen: list[str] = []
    for path in events:
        for value in pd.read_csv(path, sep="\t")["trial_type"]:
            if value not in seen and len(seen) < len(sim.CONDITIONS):
                seen.append(value)
    return seen


def _write_run(root, source, events_path, conditions, anatomy_and_brain, n, tr, seed) -> None:
    anat, brain = anatomy_and_brain
    rng = np.random.default_rng(seed)
    relative = events_path.relative_to(source)
    raw = root / relative
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(events_path, raw)
    stem = raw.name[: -len("_events.tsv")]
    _write_raw_bold(raw.with_name(f"{stem}_bold.nii.gz"), anat, n, tr)
    events = pd.read_csv(events_path, sep="\t")
    times = sim.frame_times(n, tr, 0.0)
    regressors = np.zeros((n, len(sim.REGRESSORS)))
    renamed = events.assign(
        trial_type=events["trial_type"].map(dict(zip(conditions, sim.CONDITIONS, strict=False))),
        block_type="none",
        rt=0.0,
    )
    planted = sim.make_regressors(renamed.dropna(subset=["trial_type"]), times)
    for j, name in enumerate(sim.REGRESSORS):
        if name in planted:
            regressors[:, j] = planted[name].to_numpy()
    motion, _ = sim.make_motion(rng, n, N_NON_STEADY_STATE)
    inputs = sim.RunInputs(
        regressors=regressors,
        motion=motion,
        physio=sim.make_physio(rng, times),
        drift=(1.0, -1.0),
        n_nss=N_NON_STEADY_STATE,
    )
    out = root / "derivatives" / "fmriprep" / relative.parent
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"{stem}_space-{SPACE}"
    kwargs = {"shape": (*anat.shape, n), "affine": anat.affine, "dtype": np.float32, "tr": tr}
    with NiftiWriter(out / f"{prefix}_desc-preproc_bold.nii.gz", **kwargs) as writer:
        stats = sim.simulate_run(
            anat, brain, 1.0, effect_maps(anat, 1.5), inputs, rng, writer.write
        )
    write_json(out / f"{prefix}_desc-preproc_bold.json", {"RepetitionTime": tr, "StartTime": 0.0})
    write_image(out / f"{prefix}_desc-brain_mask.nii.gz", brain.astype(np.uint8), anat.affine)
    confounds, sidecar = make_confounds(motion, stats, N_NON_STEADY_STATE, tr)
    write_tsv(out / f"{stem}_desc-confounds_timeseries.tsv", confounds)
    write_json(out / f"{stem}_desc-confounds_timeseries.json", sidecar)
