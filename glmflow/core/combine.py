"""Subject level: combine each contrast across the runs of a subject by fixed effects.

The rule is the model's ``subject.run_combination`` (see :data:`RUN_COMBINATION_RULES`):
"equal" is what nilearn's ``FirstLevelModel`` fitted on several runs computes (the default,
so that glm-express files and glmflow models give glm-express's subject maps), "precision"
weights each run by its inverse variance (nilearn's
``compute_fixed_effects(..., precision_weighted=True)``, FitLins' fixed-effects meta model).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from glmflow.core.bold import load_mask, save_nifti, unmask
from glmflow.core.contrasts import MAP_KEYS
from glmflow.core.fixed_effects import RUN_COMBINATION_RULES, compute_fixed_effects
from glmflow.core.memo import file_identity, memo_key, recall, remember
from glmflow.core.model import RunCombination
from glmflow.errors import ContrastError, DatasetError


def combine_runs(
    index_files: Sequence[str | os.PathLike],
    *,
    names: Sequence[str],
    mask_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    run_labels: Sequence[str] | None = None,
    run_combination: RunCombination = "equal",
    memo_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Fixed-effects maps of each named t contrast across runs.

    Parameters
    ----------
    index_files
        One ``contrasts.json`` per run (``ComputeContrasts``): contrast name -> record with
        ``skipped`` and, when computed, ``effect`` / ``variance`` paths and ``dof``.
    names
        Contrasts to combine, in order. A run where a contrast was skipped (terms dropped)
        is left out, as nilearn leaves out a null contrast; the record names the runs used.
    mask_files
        Each run's brain mask; runs combine on the intersection (``mask.nii.gz``).
    out_dir, run_labels
        Where the maps and ``contrasts.json`` go; how it names the runs ("run-1").
    run_combination
        "equal" (nilearn's multi-run ``FirstLevelModel``) or "precision" (inverse-variance
        weights); see :data:`glmflow.core.fixed_effects.RUN_COMBINATION_RULES`.
    memo_dir
        Where each contrast's combination is remembered (:mod:`glmflow.core.memo`).

    Returns
    -------
    dict
        ``contrast_names``, ``stat_types``, ``effect_files`` ... ``z_files`` (aligned),
        ``contrasts_json`` and ``mask_file``.
    """
    indices = [json.loads(Path(f).read_text()) for f in index_files]
    if len(mask_files) != len(indices):
        raise ContrastError(
            f"combine_runs got {len(indices)} runs but {len(mask_files)} masks; give one "
            "mask per run"
        )
    labels = list(run_labels or [f"run {i + 1}" for i in range(len(indices))])
    out_dir = Path(out_dir)
    common, mask_file = _common_mask(mask_files, out_dir)
    masks = _MaskInfo(common, mask_file, [file_identity(m) for m in mask_files])
    index = {
        name: _contrast_entry(name, indices, index_files, labels, masks, run_combination,
                              out_dir / f"subject_con{i:03d}", memo_dir)
        for i, name in enumerate(names)
    }  # fmt: skip
    (json_path := out_dir / "contrasts.json").write_text(json.dumps(index, indent=2))
    return {
        "contrast_names": list(names),
        "stat_types": ["t"] * len(names),
        **{f"{key}_files": [index[n][key] for n in names] for key in MAP_KEYS},
        "contrasts_json": str(json_path),
        "mask_file": str(mask_file),
    }


class _MaskInfo:
    """The runs' common mask, its file and the identity of every run's mask (memo key)."""

    def __init__(self, common: np.ndarray, path: Path, identities: list) -> None:
        self.common, self.path, self.identities = common, path, identities


def _contrast_entry(name, indices, index_files, labels, masks, rule, prefix, memo_dir) -> dict:
    """The subject-level index record of one contrast, map paths included."""
    used = [j for j, idx in enumerate(indices) if not idx.get(name, {}).get("skipped", True)]
    records = [indices[j][name] for j in used]
    _check_records(name, records, index_files)
    record = _combined(name, records, [labels[j] for j in used], masks, rule, prefix, memo_dir)
    files = record.pop("files")
    return {**record, **files}


def _check_records(name: str, records: list[dict], index_files) -> None:
    if not records:
        raise ContrastError(
            f"Contrast '{name}' was computed in none of the runs "
            f"({', '.join(map(str, index_files))})"
        )
    if any(r.get("stat_type", "t") != "t" for r in records):
        raise ContrastError(
            f"Contrast '{name}' is not a t contrast; fixed effects combine t contrasts"
        )


def _combined(name, records, runs, masks: _MaskInfo, rule, prefix: Path, memo_dir) -> dict:
    """One contrast's subject-level record with its ``files``: remembered, copied or computed."""
    key = memo_key(
        "combine",
        name,
        [[file_identity(r["effect"]), file_identity(r["variance"]), r["dof"]] for r in records],
        masks.identities,
        rule,
        runs,
    )
    record = recall(memo_dir, key, prefix.parent, prefix=prefix.name)
    if record is not None:
        return record
    base = {
        "name": name,
        "stat_type": "t",
        "skipped": False,
        "runs": runs,
        "run_combination": rule,
        "run_combination_rule": RUN_COMBINATION_RULES[rule],
        "dropped": sorted({d for r in records for d in r.get("dropped", [])}),
    }
    if len(records) == 1 and len(masks.identities) == 1:
        # fixed effects of one run are that run's maps (with either rule): nothing computed
        mask = "the run's brain mask (one run: its own maps)"
        files = _copy_run_maps(records[0], prefix)
        return {**base, "dof": float(records[0]["dof"]), "mask": mask, "files": files}
    result = compute_fixed_effects(
        [_values(r["effect"], masks.common) for r in records],
        [_values(r["variance"], masks.common) for r in records],
        dofs=[float(r["dof"]) for r in records],
        precision_weighted=rule == "precision",
    )
    record = {
        **base,
        "dof": float(result["dof"]),
        "mask": f"intersection of the runs' brain masks ({int(masks.common.sum())} voxels)",
    }
    files = _write({key: result[key] for key in MAP_KEYS}, masks.path, prefix)
    remember(memo_dir, key, record, files)
    return {**record, "files": files}


def _copy_run_maps(run: dict[str, Any], prefix: Path) -> dict[str, str]:
    """Copies, not links: the subject's maps never share storage with the run's."""
    files = {}
    for key in MAP_KEYS:
        dst = prefix.with_name(f"{prefix.name}_{key}.nii.gz")
        shutil.copyfile(run[key], dst)
        files[key] = str(dst)
    return files


def _write(maps, mask_file, prefix: Path) -> dict[str, str]:
    files = {}
    for key, values in maps.items():
        path = prefix.with_name(f"{prefix.name}_{key}.nii.gz")
        save_nifti(unmask(values.astype("float32"), mask_file), path)
        files[key] = str(path)
    return files


def _common_mask(mask_files, out_dir: Path) -> tuple[np.ndarray, Path]:
    """The voxels every run covers, saved next to the maps (their mask)."""
    first, affine = load_mask(mask_files[0])
    common = first.copy()
    for path in mask_files[1:]:
        mask, other = load_mask(path)
        if mask.shape != first.shape or not np.allclose(other, affine, atol=1e-4):
            raise DatasetError(
                f"Runs cannot be combined voxel by voxel: {mask_files[0]} is {first.shape} "
                f"and {path} is {mask.shape} (or their affines differ); resample them to one grid"
            )
        common &= mask
    if not common.any():
        raise DatasetError(
            f"The runs' brain masks ({', '.join(map(str, mask_files))}) share no voxel"
        )
    path = out_dir / "mask.nii.gz"
    save_nifti(nib.Nifti1Image(common.astype(np.uint8), affine), path)
    return common, path


def _values(map_file: str, mask: np.ndarray) -> np.ndarray:
    """In-mask values of a run map written on the same grid (checked by the pre-flight)."""
    data = np.asanyarray(nib.load(map_file).dataobj)
    return (data[mask] if data.ndim == 3 else data[mask].T).astype(np.float64)
