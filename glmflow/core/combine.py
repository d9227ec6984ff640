"""Subject level: combine each contrast across the runs of a subject by fixed effects."""

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
from glmflow.core.fixed_effects import compute_fixed_effects
from glmflow.core.memo import file_identity, memo_key, recall, remember
from glmflow.errors import ContrastError, DatasetError


def combine_runs(
    index_files: Sequence[str | os.PathLike],
    *,
    names: Sequence[str],
    mask_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    run_labels: Sequence[str] | None = None,
    precision_weighted: bool = True,
    memo_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Fixed-effects maps of each named t contrast across runs.

    Parameters
    ----------
    index_files
        One ``contrasts.json`` per run (``ComputeContrasts`` output): contrast name ->
        record with ``skipped`` and, when computed, the ``effect`` / ``variance`` map paths
        and ``dof``.
    names
        Contrasts to combine, in output order. A run where a contrast was skipped (all its
        terms dropped with ``--missing-conditions drop``) does not enter its combination;
        the record says which runs did.
    mask_files
        Each run's brain mask (aligned with ``index_files``). The runs are combined where
        every run has data: the intersection of their masks, written as ``mask.nii.gz``.
    out_dir
        Where the maps and ``contrasts.json`` (the subject-level index) are written.
    run_labels
        How the index records the runs (e.g. "run-1"); default: their position.
    precision_weighted
        Weight runs by their precision (default) or average them (nilearn's options).
    memo_dir
        Where each contrast's combination is remembered (see :mod:`glmflow.core.memo`).

    Returns
    -------
    dict
        ``contrast_names``, ``stat_types`` and ``effect_files`` ... ``z_files`` (aligned
        lists), ``contrasts_json`` and ``mask_file``.
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
    lists: dict[str, list[str]] = {key: [] for key in MAP_KEYS}
    index: dict[str, Any] = {}
    for i, name in enumerate(names):
        used = [j for j, idx in enumerate(indices) if not idx.get(name, {}).get("skipped", True)]
        records = [indices[j][name] for j in used]
        if not records:
            raise ContrastError(
                f"Contrast '{name}' was computed in none of the runs "
                f"({', '.join(map(str, index_files))})"
            )
        if any(r.get("stat_type", "t") != "t" for r in records):
            raise ContrastError(
                f"Contrast '{name}' is not a t contrast; fixed effects combine t contrasts"
            )
        key = memo_key(
            "combine",
            name,
            [
                [file_identity(r["effect"]), file_identity(r["variance"]), r["dof"]]
                for r in records
            ],
            [file_identity(m) for m in mask_files],
            precision_weighted,
            [labels[j] for j in used],
        )
        record = recall(memo_dir, key, out_dir, prefix=f"subject_con{i:03d}")
        if record is None and len(records) == 1 and len(mask_files) == 1:
            # fixed effects of one run are that run's maps: link them, compute nothing
            record = {**_single_run(name, records[0]), "runs": [labels[used[0]]]}
            files = _link_run_maps(records[0], out_dir, f"subject_con{i:03d}")
            record = {**record, "files": files}
        elif record is None:
            record, files = _combine(name, records, common, mask_file, precision_weighted)
            record["runs"] = [labels[j] for j in used]
            files = _write(files, mask_file, out_dir, f"subject_con{i:03d}")
            remember(memo_dir, key, record, files)
            record = {**record, "files": files}
        files = record.pop("files")
        for map_key in MAP_KEYS:
            lists[map_key].append(str(files[map_key]))
            record[map_key] = str(files[map_key])
        index[name] = record
    json_path = out_dir / "contrasts.json"
    json_path.write_text(json.dumps(index, indent=2))
    return {
        "contrast_names": list(names),
        "stat_types": ["t"] * len(names),
        **{f"{key}_files": files for key, files in lists.items()},
        "contrasts_json": str(json_path),
        "mask_file": str(mask_file),
    }


def _combine(name, records, common, mask_file, precision_weighted):
    result = compute_fixed_effects(
        [_values(r["effect"], common) for r in records],
        [_values(r["variance"], common) for r in records],
        dofs=[float(r["dof"]) for r in records],
        precision_weighted=precision_weighted,
    )
    record: dict[str, Any] = {
        "name": name,
        "stat_type": "t",
        "skipped": False,
        "dof": float(result["dof"]),
        "mask": f"intersection of the runs' brain masks ({int(common.sum())} voxels)",
        "dropped": sorted({d for r in records for d in r.get("dropped", [])}),
    }
    return record, {key: result[key] for key in MAP_KEYS}


def _single_run(name: str, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "stat_type": "t",
        "skipped": False,
        "dof": float(run["dof"]),
        "mask": "the run's brain mask (one run: its own maps)",
        "dropped": sorted(run.get("dropped", [])),
    }


def _link_run_maps(run: dict[str, Any], out_dir: Path, prefix: str) -> dict[str, str]:
    files = {}
    for key in MAP_KEYS:
        dst = out_dir / f"{prefix}_{key}.nii.gz"
        dst.unlink(missing_ok=True)
        try:
            os.link(run[key], dst)
        except OSError:
            shutil.copy2(run[key], dst)
        files[key] = str(dst)
    return files


def _write(maps, mask_file, out_dir: Path, prefix: str) -> dict[str, str]:
    files = {}
    for key, values in maps.items():
        path = out_dir / f"{prefix}_{key}.nii.gz"
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
