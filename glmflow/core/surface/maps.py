"""A surface run's contrast maps and a subject's fixed effects across runs.

The science is the volume level's: :func:`glmflow.core.contrasts.compute_contrast` on the
run's :class:`glmflow.core.glm.FirstLevelFit` (the same engine fitted the vertices) and
:func:`glmflow.core.fixed_effects.compute_fixed_effects`; only the files differ
(:mod:`glmflow.core.surface.io`). The index files (``contrasts.json``) have the volume
level's records, so the same sinks write the sidecars. Surface contrasts are not kept in the
per-contrast memo (the node's cache still holds them): a contrast edit recomputes the run's
contrasts, cheap next to the fit.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glmflow.core.contrasts import MAP_KEYS, compute_contrast
from glmflow.core.fixed_effects import RUN_COMBINATION_RULES, compute_fixed_effects
from glmflow.core.glm import load_fit
from glmflow.core.model import RunCombination
from glmflow.core.surface.io import (
    map_extension,
    read_geometry,
    read_surface_map,
    save_surface_map,
    write_surface_map,
)
from glmflow.errors import ContrastError, DatasetError


def _outputs(names, stat_types, index, json_path, dof=None) -> dict[str, Any]:
    out = {
        "contrast_names": list(names),
        "stat_types": list(stat_types),
        **{f"{key}_files": [index[n][key] for n in names] for key in MAP_KEYS},
        "contrasts_json": str(json_path),
    }
    if dof is not None:
        out["dof"] = float(dof)
    return out


def compute_surface_contrast_maps(
    fit_file: str | os.PathLike,
    geometry_file: str | os.PathLike,
    contrasts: Sequence[Mapping[str, Any]],
    *,
    out_dir: str | os.PathLike,
    missing: str = "error",
    run_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every contrast's effect, variance, stat, p and z maps in the part's format.

    Returns what :func:`glmflow.core.contrast_maps.compute_contrast_maps` returns.
    """
    out_dir = Path(out_dir)
    fit = load_fit(fit_file)
    source, _ = read_geometry(geometry_file)
    ext = map_extension(source)
    index, names, stat_types = {}, [], []
    for i, spec in enumerate(contrasts):
        name = str(spec.get("name", f"contrast{i}"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = compute_contrast(fit, spec, missing=missing)
        for warning in caught:  # said again so they reach the log as well as the index
            warnings.warn(str(warning.message), warning.category, stacklevel=2)
        if result is None:
            reason = "; ".join(str(w.message) for w in caught)
            index[name] = {"skipped": True, "reason": reason, "dof": float(fit.df_residuals)}
            continue
        record = {**result.info(), "skipped": False, **(run_record or {})}
        for key in MAP_KEYS:
            path = out_dir / f"con{i:03d}_{key}{ext}"
            record[key] = str(write_surface_map(result[key], geometry_file, path, f"{name} {key}"))
        index[name] = record
        names.append(name)
        stat_types.append(result.stat_type)
    (json_path := out_dir / "contrasts.json").write_text(json.dumps(index, indent=2))
    return _outputs(names, stat_types, index, json_path, fit.df_residuals)


def _common_vertices(geometry_files: Sequence[str | os.PathLike], out_dir: Path):
    """The vertices every run kept, and a geometry file for them (the subject's maps)."""
    source, common = read_geometry(geometry_files[0])
    for path in geometry_files[1:]:
        other_source, kept = read_geometry(path)
        if kept.size != common.size or map_extension(other_source) != map_extension(source):
            raise DatasetError(
                f"Runs cannot be combined vertex by vertex: {source} has {common.size} "
                f"vertices and {other_source} {kept.size}; use one surface space and density"
            )
        common &= kept
    excluded = np.flatnonzero(~common).tolist()
    path = out_dir / "geometry.json"
    info = {"source": source, "n_vertices": int(common.size), "excluded": excluded}
    path.write_text(json.dumps(info))
    return source, common, path


def combine_surface_runs(
    index_files: Sequence[str | os.PathLike],
    *,
    names: Sequence[str],
    geometry_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    run_labels: Sequence[str] | None = None,
    run_combination: RunCombination = "equal",
) -> dict[str, Any]:
    """Fixed effects of each named t contrast across a subject's runs on one surface part.

    As :func:`glmflow.core.combine.combine_runs` (its records and outputs), with the runs'
    kept vertices in place of their masks (``geometry_file`` out in place of ``mask_file``).
    """
    indices = [json.loads(Path(f).read_text()) for f in index_files]
    labels = list(run_labels or [f"run {i + 1}" for i in range(len(indices))])
    out_dir = Path(out_dir)
    source, common, geometry = _common_vertices(geometry_files, out_dir)
    ext = map_extension(source)
    index = {}
    for i, name in enumerate(names):
        used = [j for j, idx in enumerate(indices) if not idx.get(name, {}).get("skipped", True)]
        records = [indices[j][name] for j in used]
        if not records or any(r.get("stat_type", "t") != "t" for r in records):
            raise ContrastError(
                f"Contrast '{name}' is not a t contrast computed in a run of "
                f"{', '.join(map(str, index_files))}; fixed effects combine t contrasts"
            )
        result = compute_fixed_effects(
            [read_surface_map(r["effect"])[common] for r in records],
            [read_surface_map(r["variance"])[common] for r in records],
            dofs=[float(r["dof"]) for r in records],
            precision_weighted=run_combination == "precision",
        )
        record = {
            "name": name,
            "stat_type": "t",
            "skipped": False,
            "runs": [labels[j] for j in used],
            "run_combination": run_combination,
            "run_combination_rule": RUN_COMBINATION_RULES[run_combination],
            "dropped": sorted({d for r in records for d in r.get("dropped", [])}),
            "dof": float(result["dof"]),
            "mask": f"vertices every run kept ({int(common.sum())} of {common.size})",
        }
        for key in MAP_KEYS:
            full = np.zeros(common.size)
            full[common] = result[key]
            path = out_dir / f"subject_con{i:03d}_{key}{ext}"
            record[key] = str(save_surface_map(full, source, path, f"{name} {key}"))
        index[name] = record
    (json_path := out_dir / "contrasts.json").write_text(json.dumps(index, indent=2))
    return {
        **_outputs(names, ["t"] * len(names), index, json_path),
        "geometry_file": str(geometry),
    }
