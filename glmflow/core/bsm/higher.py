"""Subject, session-free and Dataset nodes of a BIDS Stats Model: fits on the maps below.

pybids groups the maps (``GroupBy``, the ``Edges``' ``Filter``) and builds each unit's ``X``
(``1`` as the intercept, participants.tsv variables through the node's transformations) and
contrasts; glmflow fits them with its group engine
(:func:`glmflow.core.group.fit.fit_group_model`): ``Model.Type`` "meta" or a "FEMA" test is
precision-weighted fixed effects (nilearn's ``compute_fixed_effects``, FitLins' meta model),
"glm" is OLS on the effect maps (nilearn's ``SecondLevelModel``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from glmflow.core.bsm.graph import contrast_columns
from glmflow.core.bsm.outputs import map_path
from glmflow.core.group.fit import fit_group_model
from glmflow.core.model import GroupSpec
from glmflow.errors import ModelSpecError

#: fit_group_model's output type -> the statmap's stat label ("stat" is t or F)
_STATS = {"effect_size": "effect", "effect_variance": "variance", "p_value": "p", "z_score": "z"}


@dataclass(frozen=True)
class UnitMap:
    """One contrast of one analysis unit: its entities (with "contrast"), maps, dof, mask."""

    entities: Mapping[str, str]
    effect: str
    variance: str
    dof: float
    mask: str


def fit_later_nodes(
    graph,
    root_maps: Sequence[UnitMap],
    output_dir,
    work_dir,
    source: str,
    *,
    missing: str = "error",
) -> list[Path]:
    """Fit every node below the root, in the graph's order; return the statmaps written."""
    written: list[Path] = []
    pending = [(edge, list(root_maps)) for edge in graph.root_node.children]
    while pending:
        edge, inputs = pending.pop(0)
        node = edge.destination
        maps, files = _fit_node(
            node, inputs, edge.filter or {}, output_dir, work_dir, source, missing
        )
        written += files
        pending += [(child, maps) for child in node.children]
    return written


def _contrast_info(unit: UnitMap):
    from bids.modeling.statsmodels import ContrastInfo

    entities = dict(unit.entities)
    return ContrastInfo(entities["contrast"], [], [], "t", entities)


def _fit_node(node, inputs, filters, output_dir, work_dir, source, missing):
    where = f"{source}: node '{node.name}'"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            outputs = node.run(
                [_contrast_info(u) for u in inputs],
                group_by=node.group_by,
                invalid_contrasts="ignore",
                missing_values="fill",
                **filters,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ModelSpecError(f"{where}: pybids cannot build the model: {err}") from None
    if not outputs:
        raise ModelSpecError(
            f"{where}: no map reaches this node (edge Filter {dict(filters)}); "
            "check the Filter's contrast names"
        )
    maps, files = [], []
    for out in outputs:
        unit_maps, unit_files = _fit_unit(node, out, inputs, output_dir, work_dir, where, missing)
        maps += unit_maps
        files += unit_files
    return maps, files


def _rows(out, inputs: Sequence[UnitMap], unit: str) -> list[UnitMap]:
    rows = []
    for _, row in out.metadata.iterrows():
        found = [
            u
            for u in inputs
            if all(k not in row or str(row[k]) == str(v) for k, v in u.entities.items())
        ]
        if len(found) != 1:
            raise ModelSpecError(
                f"{unit}: {len(found)} input maps match the row "
                f"{dict(row.dropna())}; 'GroupBy' must give one map per row"
            )
        rows.append(found[0])
    return rows


def _fit_unit(node, out, inputs, output_dir, work_dir, where, missing):
    unit = f"{where} ({', '.join(f'{k} {v}' for k, v in sorted(out.entities.items()))})"
    rows = _rows(out, inputs, unit)
    design = out.X.astype(float).reset_index(drop=True)
    contrasts = _weights(out.contrasts, list(design.columns), unit, missing)
    if not contrasts:
        return [], []
    fixed = node.model.get("type") == "meta" or any(t == "FEMA" for t, _ in contrasts.values())
    mask = _common_mask([r.mask for r in rows], Path(work_dir) / "bsm_masks", out.entities)
    fit = fit_group_model(
        [r.effect for r in rows],
        design,
        contrasts={name: w for name, (_, w) in contrasts.items()},
        group=GroupSpec(method="fixed" if fixed else "ols"),
        variance_files=[r.variance for r in rows] if fixed else None,
        dofs=[r.dof for r in rows] if fixed else None,
        design_source=f"the X of {unit}",
        contrast_source=unit,
        mask=mask,
    )
    dof = (
        float(sum(r.dof for r in rows))
        if fixed
        else float(len(rows) - np.linalg.matrix_rank(design))
    )
    return _write(node.name, out, fit, contrasts, dof, mask, output_dir)


def _weights(infos, columns: list[str], unit: str, missing: str) -> dict[str, tuple]:
    result = {}
    for info in infos:
        name, conditions, absent = contrast_columns(info, columns, unit, missing)
        if absent:
            warnings.warn(f"{unit}: contrast '{name}' is dropped: {absent} not in X", stacklevel=2)
            continue
        rows = np.atleast_2d(np.asarray(info.weights, dtype=float))
        matrix = np.zeros((len(rows), len(columns)))
        for j, c in enumerate(conditions):
            matrix[:, columns.index(c)] = rows[:, j]
        result[name] = (info.test or "t", matrix[0] if len(rows) == 1 else matrix)
    return result


def _common_mask(masks: Sequence[str], folder: Path, entities: Mapping[str, Any]) -> str:
    first = nib.load(masks[0])
    data = np.ones(first.shape, bool)
    for path in dict.fromkeys(masks):
        data &= np.asarray(nib.load(path).dataobj) > 0
    folder.mkdir(parents=True, exist_ok=True)
    label = "_".join(f"{k}-{v}" for k, v in sorted(entities.items())) or "all"
    path = folder / f"{''.join(c if c.isalnum() or c in '-_' else 'x' for c in label)}_mask.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.uint8), first.affine), path)
    return str(path)


def _write(node_name, out, fit, contrasts, dof, mask, output_dir):
    import json

    maps, files = [], []
    for info in out.contrasts:
        name = "intercept" if info.name == 1 else str(info.name)
        if name not in contrasts:
            continue
        test, weights = contrasts[name]
        entities = {k: str(v) for k, v in info.entities.items() if k != "contrast"}
        paths = {}
        for key, img in fit.maps[name].items():
            stat = _STATS.get(key) or ("F" if np.ndim(weights) == 2 else "t")
            dest = map_path(output_dir, node_name, entities, name, stat)
            dest.parent.mkdir(parents=True, exist_ok=True)
            nib.save(img, dest)
            sidecar = {
                "Node": node_name,
                "Contrast": name,
                "Stat": stat,
                "Test": test,
                "Weights": np.asarray(weights).tolist(),
                "Columns": list(fit.design.columns),
                "DegreesOfFreedom": dof,
            }
            dest.with_name(dest.name.replace(".nii.gz", ".json")).write_text(
                json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
            )
            paths[stat] = str(dest)
            files.append(dest)
        if np.ndim(weights) == 1:
            maps.append(
                UnitMap(
                    {**entities, "contrast": name}, paths["effect"], paths["variance"], dof, mask
                )
            )
    return maps, files
