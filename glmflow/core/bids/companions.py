"""Companion files of a BOLD run (mask, confounds, events) matched by BIDS entities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmflow.core.outputs import ENTITY_KEYS
from glmflow.errors import DatasetError

# Entities that identify an acquisition; a companion file (events, mask, confounds) must not
# contradict the BOLD on any of them (BIDS inheritance: a missing entity applies to all).
RAW_ENTITIES = (
    "subject",
    "session",
    "task",
    "acquisition",
    "ceagent",
    "reconstruction",
    "direction",
    "run",
    "echo",
    "part",
    "chunk",
)
# Entities that describe the voxel grid: a mask must match the BOLD on these exactly.
GRID_ENTITIES = ("space", "res", "den")
# Entities that are not part of a run's identity in glmflow's outputs.
_NOT_IDENTITY = ("suffix", "extension", "datatype", "desc")
_ORDER = {name: i for i, name in enumerate(ENTITY_KEYS)}


def companions(bold, masks, confounds, events, bids_dir: Path, deriv_dir: Path):
    """Return the (mask, confounds, events) files of ``bold`` or raise naming the missing one."""
    folder = Path(bold.path).parent
    mask = companion(bold, masks, grid=True)
    if mask is None:
        raise DatasetError(
            f"No brain mask for {bold.path}: expected "
            f"{_expected(bold, 'desc-brain_mask.nii.gz')} in {folder}; rerun fMRIPrep or add "
            "the mask"
        )
    conf = companion(bold, confounds)
    if conf is None:
        raise DatasetError(
            f"No confounds file for {bold.path}: expected "
            f"{_expected(bold, 'desc-confounds_timeseries.tsv', grid=False)} in {folder}; "
            "rerun fMRIPrep or add the confounds file"
        )
    if events is None:  # resting state: no events wanted
        return mask, conf, None
    ev = companion(bold, events)
    if ev is None:
        raw_folder = bids_dir / folder.relative_to(deriv_dir)
        raise DatasetError(
            f"No events file for {bold.path}: expected "
            f"{_expected(bold, 'events.tsv', grid=False)} in {raw_folder}; add it or leave "
            "this run out (--task / --run / excludes)"
        )
    return mask, conf, ev


def identity(entities: dict[str, Any]) -> dict[str, str]:
    """The run's entities as file-name labels, in BIDS order, without desc/suffix/extension."""
    keys = sorted(
        (k for k in entities if k not in _NOT_IDENTITY),
        key=lambda k: (_ORDER.get(k, len(_ORDER)), k),
    )
    return {k: str(entities[k]) for k in keys}


def companion(bold, candidates, *, grid: bool = False):
    """Return the most specific candidate compatible with ``bold`` (or None).

    Compatible: no identity entity contradicts the BOLD's and, when ``grid``, the voxel-grid
    entities are equal. Two equally specific candidates are an error, never a guess.
    """
    ent = bold.entities
    best, best_score, ties = None, -1, []
    for cand in candidates.get(ent["subject"], []) + candidates.get(None, []):
        cent = cand.entities
        if any(k in cent and (k not in ent or cent[k] != ent[k]) for k in RAW_ENTITIES):
            continue
        if grid and any(cent.get(k) != ent.get(k) for k in GRID_ENTITIES):
            continue
        # Prefer the exact match, then func/ over anat/ for masks.
        score = 2 * sum(k in cent for k in RAW_ENTITIES) + (cent.get("datatype") == "func")
        if score > best_score:
            best, best_score, ties = cand, score, []
        elif score == best_score:
            ties.append(cand)
    if ties:
        first, second = sorted([best.path, ties[0].path])
        raise DatasetError(
            f"Several files match {bold.path} equally: {first} and {second}; "
            "remove or rename one of them"
        )
    return best


def _expected(bold, tail: str, *, grid: bool = True) -> str:
    """The file name fMRIPrep / BIDS would use for a companion of ``bold``."""
    keys = [k for k in RAW_ENTITIES if k in bold.entities]
    if grid:
        keys += [k for k in GRID_ENTITIES if k in bold.entities]
    parts = [f"{ENTITY_KEYS[k]}-{bold.entities[k]}" for k in keys]
    return "_".join([*parts, tail])
