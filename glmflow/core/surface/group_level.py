"""The group level on surfaces: subject maps found and checked, one contrast's maps staged.

The participant level wrote each subject's maps as ``hemi-L|R_space-fsaverage5_..._
stat-effect_statmap.func.gii`` or ``space-fsLR_den-91k_..._stat-effect_statmap.dscalar.nii``.
:func:`find_surface_maps` finds them by their entities (the volume level's
:func:`glmflow.core.group.subject_maps.find_subject_maps`), :func:`check_surface_maps` checks
before any compute that every map is on one mesh / brain-model layout, and
:func:`surface_group_contrast_files` runs
:func:`glmflow.core.surface.group.surface_group_inference` and stages BIDS-named maps and
sidecars as the volume group level names them
(:func:`glmflow.core.group.outputs.group_map_path`). Height control is nilearn's
``threshold_stats_img`` on the same z values; vertices that are 0 or not finite in any
subject's map (medial wall, vertices left out of a subject's fit) are left out of the
inference (:func:`analysed_vertices`, a warning when some maps have data there), as a volume
group mask's voxels without data are, and counted in the sidecars.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from glmflow.core.group.contrasts import contrast_weights
from glmflow.core.group.design import read_design
from glmflow.core.group.outputs import FWE_DESCS, group_map_path
from glmflow.core.group.subject_maps import SubjectMap, find_subject_maps
from glmflow.core.model import ModelSpec
from glmflow.core.outputs import sidecar_contrast, sidecar_path
from glmflow.core.publish import atomic_write_json, write_manifest
from glmflow.core.surface import CIFTI_SPACES
from glmflow.core.surface.group import part_adjacency, surface_group_inference
from glmflow.core.surface.io import (
    brain_models_key,
    map_extension,
    n_vertices,
    read_surface_map,
    save_surface_map,
)
from glmflow.core.surface.meshes import FSAVERAGE_VERTICES, block_adjacency
from glmflow.core.surface.tfce import cluster_sizes, edges
from glmflow.errors import GroupModelError

#: Inference methods of the surface group level (tdp's cluster tables are volume-only).
SURFACE_METHODS = ("none", "fpr", "fdr", "bonferroni", "threshold", "permutation")
#: Permutation FWE maps offered on surfaces (cluster mass is not).
SURFACE_PERMUTATION_STATS = ("max_t", "size", "tfce")


def check_surface_group_spec(spec: ModelSpec, space: str) -> None:
    """What the surface group level refuses, one line each, before any map is read."""
    group, inference = spec.group, spec.group.inference
    refusals = [
        (space == "fsnative", f"space {space}", "each subject's own mesh cannot be compared "
         "across subjects; run the participant level on fsaverage5/6 or fsLR"),
        (group.method != "ols", f"group.method={group.method!r}", "surface group models are "
         "OLS; set it to \"ols\""),
        (bool(group.smoothing_fwhm), f"group.smoothing_fwhm={group.smoothing_fwhm}",
         "glmflow smooths surface data at the first level (glm.smoothing_fwhm), not group "
         "maps; set it to 0 or null"),
        (group.target_affine is not None or group.target_shape is not None,
         "group.target_affine/target_shape", "a surface map has no grid; remove them"),
        (inference.method not in SURFACE_METHODS, f"group.inference.method={inference.method!r}",
         f"surfaces offer {', '.join(SURFACE_METHODS)}"),
        (inference.method == "permutation"
         and inference.permutation_stat not in SURFACE_PERMUTATION_STATS,
         f"group.inference.permutation_stat={inference.permutation_stat!r}",
         f"surfaces offer {', '.join(SURFACE_PERMUTATION_STATS)}"),
    ]  # fmt: skip
    for refused, what, fix in refusals:
        if refused:
            raise GroupModelError(f"{what} in {spec.source} on surface space {space}: {fix}")


def check_surface_contrasts(plan) -> None:
    """Each group contrast of a :class:`~glmflow.core.group.plan.GroupPlan` is one t row
    (the volume level's weights rule; surfaces test t contrasts only)."""
    for analysis in plan.analyses:
        for name, definition in analysis.contrasts.items():
            weights = contrast_weights(definition, plan.design.columns, name=name,
                                       source=plan.spec.source)  # fmt: skip
            if np.ndim(weights) != 1:
                raise GroupModelError(
                    f"Group contrast '{name}' in {plan.spec.source} is an F contrast "
                    f"({len(weights)} rows); the surface group level tests t contrasts: "
                    "give one row"
                )


def find_surface_maps(
    glmflow_dir: str | os.PathLike, *, task: str, space: str, den: str | None
) -> dict[str, dict[str, SubjectMap]]:
    """Subject maps by contrast label and subject; a GIFTI map is its ``hemi-L`` file."""
    if space in CIFTI_SPACES:
        require = {"den": den} if den else None
        return find_subject_maps(glmflow_dir, task=task, space=space,
                                 extension=".dscalar.nii", require=require)  # fmt: skip
    return find_subject_maps(glmflow_dir, task=task, space=space, extension=".func.gii",
                             require={"hemi": "L"})  # fmt: skip


def surface_parts(effect: str | os.PathLike) -> dict[str, Path]:
    """The parts of a subject map: ``{"L": ..., "R": ...}`` or ``{"cifti": ...}``."""
    effect = Path(effect)
    if "_hemi-L_" not in effect.name:
        return {"cifti": effect}
    return {"L": effect, "R": effect.with_name(effect.name.replace("_hemi-L_", "_hemi-R_"))}


def _space(path: Path) -> str:
    found = re.search(r"_space-([A-Za-z0-9]+)_", path.name)
    return found.group(1) if found else ""


def check_surface_maps(effects: Sequence[str | os.PathLike]) -> None:
    """Every subject map's parts exist and share the first map's mesh or brain models."""
    first: dict[str, Any] = {}
    for effect in effects:
        for part, path in surface_parts(effect).items():
            if not path.is_file():
                raise GroupModelError(
                    f"Subject map {path} is missing (its hemi-L map {Path(effect).name} "
                    "exists); rerun the participant level for this subject"
                )
            layout = _layout(path)
            expected = first.setdefault(part, (path, layout))
            if layout != expected[1]:
                what = "vertex count" if part != "cifti" else "brain models (grayordinates)"
                raise GroupModelError(
                    f"Subject map {path} has another {what} than {expected[0].name} "
                    f"({_describe(layout)} vs {_describe(expected[1])}); every subject map "
                    f"must be on one mesh: rerun the participant level of this subject with "
                    f"--space {_space(path)}"
                )


def _layout(path: Path):
    """What must match across subjects: (vertices, maps) of a GIFTI checked against its mesh,
    the brain models of a CIFTI."""
    if path.name.endswith(".func.gii"):
        count, rows = n_vertices(path)
        mesh = FSAVERAGE_VERTICES.get(_space(path))
        if rows != 1 or (mesh is not None and count != mesh):
            raise GroupModelError(
                f"Subject map {path} holds {rows} map(s) of {count} vertices; a subject map "
                f"on {_space(path)} is one map of {mesh} vertices: rerun the participant level"
            )
        return count
    return brain_models_key(path)


def _describe(layout) -> str:
    return f"{layout} vertices" if isinstance(layout, int) else f"{layout[0]} grayordinates"


def height_threshold(z: np.ndarray, inference: Mapping[str, Any]) -> float:
    """The z threshold of a height-control method: nilearn's ``threshold_stats_img`` on
    the same values (a one-row image of them, every element in its mask)."""
    from nilearn.glm import threshold_stats_img

    method = inference["method"]
    img = nib.Nifti1Image(np.asarray(z, np.float64).reshape(-1, 1, 1), np.eye(4))
    mask = nib.Nifti1Image(np.ones((z.size, 1, 1), np.int8), np.eye(4))
    with warnings.catch_warnings():  # nilearn's way of saying nothing survives: said below
        warnings.filterwarnings("ignore", message="The given float value must not exceed")
        _, value = threshold_stats_img(
            img, mask_img=mask, alpha=inference["alpha"], two_sided=inference["two_sided"],
            height_control=None if method == "threshold" else method,
            threshold=inference["z_threshold"] if method == "threshold" else None,
        )  # fmt: skip
    return float(value)


def _read(effects: Sequence[str | os.PathLike]) -> tuple[list[str], np.ndarray, list[int]]:
    parts = list(surface_parts(effects[0]))
    rows = [[read_surface_map(surface_parts(e)[p]) for p in parts] for e in effects]
    return parts, np.stack([np.concatenate(r) for r in rows]), [v.size for v in rows[0]]


def analysed_vertices(
    data: np.ndarray, effect_files: Sequence[str | os.PathLike]
) -> tuple[np.ndarray, int]:
    """The vertices with a finite non-zero value in every subject map (n_subjects, n).

    A vertex 0 or NaN in one map only would enter the fit as a real value; it is left out,
    with a warning naming the map that misses most. Returns the mask and the number of
    vertices left out that some map had data at.
    """
    valid = np.isfinite(data) & (data != 0)
    kept = valid.all(axis=0)
    partly = valid.any(axis=0) & ~kept
    if partly.any():
        missing = (~valid[:, partly]).sum(axis=1)
        worst = int(np.argmax(missing))
        warnings.warn(
            f"{int(partly.sum())} vertices with data in some subject maps are 0 or not finite "
            f"in others ({int(missing[worst])} of them in {effect_files[worst]}); they are left "
            "out of the group inference",
            stacklevel=3,
        )
    return kept, int(partly.sum())


def _thresholded(result, inference, graph) -> dict[tuple[str, str | None], np.ndarray]:
    """The maps of one contrast: t, z, p, and the thresholded (and -log10 FWE p) maps."""
    t, z = result["t"], result["z"]
    maps: dict[tuple[str, str | None], np.ndarray] = {("t", None): t, ("z", None): z,
                                                       ("p", None): result["p"]}  # fmt: skip
    method, two_sided = inference["method"], inference["two_sided"]
    if method == "none":
        return maps
    if method == "permutation":
        stat = inference["permutation_stat"]
        logp = result[LOGP_OF[stat]]
        keep = logp > -math.log10(inference["alpha"])
        maps[("logp", FWE_DESCS[stat])] = logp
        maps[("t", FWE_DESCS[stat])] = np.where(keep, t, 0.0)
        return maps
    threshold = height_threshold(z, inference)
    keep = (np.abs(z) if two_sided else z) >= threshold
    if inference["cluster_threshold"]:  # clusters of each sign, on the mesh
        sizes = cluster_sizes(keep & (z > 0), graph) + cluster_sizes(keep & (z < 0), graph)
        keep &= sizes >= inference["cluster_threshold"]
    maps[("z", method)] = np.where(keep, z, 0.0)
    result["threshold"] = threshold
    return maps


LOGP_OF = {"max_t": "logp_max_t", "size": "logp_max_size", "tfce": "logp_max_tfce"}


def _infer(effect_files, design_file, inference) -> tuple[dict, np.ndarray, list, list]:
    """Read the maps and run the inference on the vertices every map covers."""
    parts, data, sizes = _read(effect_files)
    covered, partly = analysed_vertices(data, effect_files)
    method = inference["method"]
    fwe = (inference["permutation_stat"],) if method == "permutation" else ()
    graph, adjacency = None, None
    if set(fwe) & {"size", "tfce"} or (inference["cluster_threshold"] and method != "none"):
        sources = surface_parts(effect_files[0])
        full = block_adjacency([part_adjacency(sources[p]) for p in parts])
        adjacency = full[covered][:, covered].tocsr()
        graph = edges(adjacency)
    result = surface_group_inference(
        data[:, covered], read_design(design_file), inference["definition"], adjacency,
        n_perm=inference["n_perm"], cluster_forming_p=inference["cluster_forming_p"] or 0.001,
        alpha=inference["alpha"], seed=inference["seed"] or 0, fwe=fwe,
        two_sided=inference["two_sided"], source=str(design_file),
    )  # fmt: skip
    maps = _thresholded(result, inference, graph)  # adds the height threshold to result
    return {**result, "maps": maps, "partly": partly}, covered, parts, sizes


def surface_group_contrast_files(
    effect_files: Sequence[str | os.PathLike],
    *,
    design_file: str | os.PathLike,
    contrast: str,
    inference: Mapping[str, Any],
    entities: Mapping[str, str],
    output_dir: str | os.PathLike,
    metadata: Mapping[str, Any],
    out_dir: str | os.PathLike,
) -> tuple[list[Path], list[Path], Path]:
    """One group contrast on surface subject maps, its maps staged under BIDS names.

    ``inference``: the group ``inference`` spec's keys plus ``definition`` (the contrast
    over the design columns). Writes into ``out_dir`` ``<part>_<stat>[_<desc>]`` maps in the
    parts' format and their sidecars, and the manifest that
    :func:`glmflow.core.publish.publish` copies from: ``..._contrast-<c>_stat-<t|z|p>_statmap``,
    the thresholded ``stat-z_desc-<method>`` (height control) or ``stat-t_desc-<FWE>`` and
    ``stat-logp_desc-<FWE>`` maps (permutation), per hemisphere (``hemi-``) or one CIFTI.
    Returns the destinations, the staged sidecars and the manifest.
    """
    result, covered, parts, sizes = _infer(effect_files, design_file, inference)
    if not np.isfinite(result.get("threshold", 0.0)):
        warnings.warn(
            f"No vertex survives {inference['method']} at alpha={inference['alpha']} in "
            f"contrast '{contrast}': the thresholded map is empty",
            stacklevel=2,
        )
    sources, out_dir = surface_parts(effect_files[0]), Path(out_dir)
    info = dict(metadata.get("Contrasts", {}).get(contrast, {}))
    common = {k: v for k, v in metadata.items() if k != "Contrasts"} | {
        "Level": "dataset", "Contrast": sidecar_contrast(contrast, info),
        "Tail": "two-sided" if inference["two_sided"] else "positive",
        "ExcludedVertices": int(covered.size - covered.sum()),
        "ExcludedVerticesWithDataInSomeMaps": result["partly"],
    } | ({"TFCEStep": result["tfce_step"]} if "tfce_step" in result else {})  # fmt: skip
    bounds = np.cumsum([0, *sizes])
    written, staged, pairs = [], [], []
    for (stat, desc), values in result["maps"].items():
        full = np.zeros(covered.size)
        full[covered] = values
        extra = {"Statistic": stat} | ({"Thresholded": True} if desc and stat != "logp" else {})
        if desc in SURFACE_METHODS:
            extra["Threshold"] = result["threshold"]
        for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
            ext = map_extension(sources[part])
            where = {**entities, "hemi": part} if part != "cifti" else dict(entities)
            dst = group_map_path(output_dir, where, contrast=contrast, stat=stat, desc=desc,
                                 extension=ext)  # fmt: skip
            src = save_surface_map(full[lo:hi], str(sources[part]),
                                   out_dir / f"{part}_{stat}_{desc or 'map'}{ext}",
                                   f"{contrast} {stat}")  # fmt: skip
            staged.append(atomic_write_json(out_dir / sidecar_path(dst).name, common | extra))
            written.append(dst)
            pairs += [(src, dst), (staged[-1], sidecar_path(dst))]
    return written, staged, write_manifest(out_dir / "manifest.json", pairs)
