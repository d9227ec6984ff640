"""One unit of a Session, Subject or Dataset node fitted on the maps below it.

The unit was planned (:mod:`glmflow.core.bsm.chain`); here its maps are read from the
indexes (``contrasts.json``) of the units below and fitted with glmflow's group engine
(:func:`glmflow.core.group.fit.fit_group_model`): "fixed" (``Model.Type`` "meta" or a
"FEMA" test) is precision-weighted fixed effects (nilearn's ``compute_fixed_effects``,
FitLins' meta model), "ols" (``glm``) is OLS on the effect maps (nilearn's
``SecondLevelModel``), both within the intersection of the inputs' masks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.core.group.fit import fit_group_model
from glmflow.core.model import GroupSpec
from glmflow.core.publish import atomic_write_json
from glmflow.errors import GroupModelError

#: the sidecar note of a fixed-effects unit of one map (what compute_fixed_effects returns)
_ONE_MAP = (
    "fixed effects of one input map: effect and variance are the input's, "
    "t, z and p follow from them with the input's dof"
)

#: fit_group_model's output type -> the key of the index record ("stat" is t or F)
_KEYS = {
    "effect_size": "effect",
    "effect_variance": "variance",
    "stat": "stat",
    "p_value": "p",
    "z_score": "z",
}


def rows_json(rows: Sequence[Any], sources: Sequence[str]) -> str:
    """The ``rows`` text :func:`fit_unit_files` reads: per design row, the position of its
    source's index among ``sources``, the contrast, and the mask (a run's; else None)."""
    return json.dumps(
        [
            {"source": sources.index(r.unit), "contrast": r.entities["contrast"], "mask": r.mask}
            for r in rows
        ]
    )


def fit_unit_files(
    index_files: Sequence[str],
    rows: str,
    design_file: str,
    contrasts: str,
    *,
    method: str,
    out_dir: str | os.PathLike,
    unit: str = "the unit",
    n_jobs: int = 1,
) -> dict[str, str]:
    """Fit one unit; write its maps, its mask and ``contrasts.json`` into ``out_dir``.

    ``index_files``: the ``contrasts.json`` of the units below (run or later); ``rows``: the
    text of :func:`rows_json`; ``contrasts``: JSON name -> ``{"test", "weights"}``. The
    index written has, per contrast, the map paths (effect, variance, stat, p, z), the
    stat type, test, weights, design columns, dof and mask, as the run node's index.
    """
    out = Path(out_dir)
    indexes = [json.loads(Path(f).read_text()) for f in index_files]
    chosen = json.loads(rows)
    records = [indexes[r["source"]][r["contrast"]] for r in chosen]
    mask = _common_mask([r["mask"] or rec["mask"] for r, rec in zip(chosen, records, strict=True)],
                        out / "mask.nii.gz", unit)  # fmt: skip
    design = pd.read_csv(design_file, sep="\t")
    specs = json.loads(contrasts)
    fixed = method == "fixed"
    fit = fit_group_model(
        [rec["effect"] for rec in records],
        design,
        contrasts={name: np.asarray(spec["weights"]) for name, spec in specs.items()},
        group=GroupSpec(method=method),
        variance_files=[rec["variance"] for rec in records] if fixed else None,
        dofs=[float(rec["dof"]) for rec in records] if fixed else None,
        design_source=f"the X of {unit}",
        contrast_source=unit,
        mask=mask,
        n_jobs=n_jobs,
    )
    dof = (
        float(sum(float(rec["dof"]) for rec in records))
        if fixed
        else float(len(records) - np.linalg.matrix_rank(design.to_numpy(dtype=float)))
    )
    index = {}
    for i, (name, spec) in enumerate(specs.items()):
        record = _record(spec, list(design.columns), dof, mask, len(records), fixed)
        for kind, img in fit.maps[name].items():
            record[_KEYS[kind]] = str(out / f"c{i:03d}_{_KEYS[kind]}.nii.gz")
            nib.save(img, record[_KEYS[kind]])
        index[name] = record
    atomic_write_json(out / "contrasts.json", index)
    return {
        "contrasts_json": str(out / "contrasts.json"),
        "mask_file": mask,
        "z_files": [record["z"] for record in index.values()],
        "input_effect_files": [rec["effect"] for rec in records],
    }


def _record(
    spec: Mapping[str, Any], columns: list[str], dof: float, mask: str, n_maps: int, fixed: bool
) -> dict:
    """One contrast's entry in ``contrasts.json``; a fixed-effects unit of one map says so."""
    note = {"combination": _ONE_MAP} if fixed and n_maps == 1 else {}
    return {
        **note,
        "inputs": n_maps,
        "stat_type": "F" if np.ndim(spec["weights"]) == 2 else "t",
        "test": spec["test"],
        "weights": spec["weights"],
        "columns": columns,
        "dof": dof,
        "mask": mask,
        "skipped": False,
    }


def _common_mask(masks: Sequence[str], path: Path, unit: str) -> str:
    first = nib.load(masks[0])
    data = np.ones(first.shape, bool)
    for mask in dict.fromkeys(masks):
        data &= np.asarray(nib.load(mask).dataobj) > 0
    if not data.any():
        raise GroupModelError(
            f"{unit}: the brain masks of its {len(masks)} input maps have no voxel in common "
            f"({', '.join(dict.fromkeys(masks))}); check that the inputs are in one space"
        )
    nib.save(nib.Nifti1Image(data.astype(np.uint8), first.affine), path)
    return str(path)
