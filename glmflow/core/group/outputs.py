"""Group-level outputs: the fit's and the inference's images, then their BIDS names.

:func:`fit_group_model_files` and :func:`group_inference_files` run one core step and write
its images into a working folder (what ``FitGroupModel`` and ``GroupInference`` call);
:func:`stage_inference_derivatives` and :func:`stage_model_maps` plan them under their BIDS
names with sidecars and a manifest that is published once the level has succeeded (what the
sinks call). Images are written with :func:`glmflow.core.bold.save_nifti`, as at the first
level.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from glmflow.core.bold import save_nifti
from glmflow.core.clusters import SIZE_MM3, SIZE_VOXELS
from glmflow.core.contrasts import MAP_KEYS
from glmflow.core.group.contrasts import parse_contrast, parse_contrasts
from glmflow.core.group.design import read_design
from glmflow.core.group.fit import GroupFit, fit_group_model
from glmflow.core.inference import LOGP_MAPS, InferenceResult, run_group_inference
from glmflow.core.model import GroupSpec, InferenceSpec
from glmflow.core.outputs import (
    atomic_write_json,
    derivative_path,
    sidecar_contrast,
    sidecar_path,
)
from glmflow.core.publish import write_manifest

#: glmflow map name (:data:`glmflow.core.contrasts.MAP_KEYS`) -> nilearn output type
NILEARN_OUTPUT_TYPES = dict(
    zip(MAP_KEYS, ("effect_size", "effect_variance", "stat", "p_value", "z_score"), strict=True)
)


def save_map(img: nib.Nifti1Image, path: str | os.PathLike, dtype: str = "float32") -> str:
    """Write ``img``'s data as ``dtype`` on its affine (nilearn's header notes dropped)."""
    data = np.asanyarray(img.dataobj).astype(dtype)
    return str(save_nifti(nib.Nifti1Image(data, img.affine), path))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", name.title()) or "contrast"


def write_group_fit(fit: GroupFit, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write every map of ``fit`` and its index ``group_contrasts.json`` into ``out_dir``.

    Returns ``contrast_names``, ``stat_types``, ``effect_files`` ... ``z_files`` (aligned
    lists), ``mask_file``, ``contrasts_json`` and, with model maps, ``residuals_file``,
    ``predicted_file``, ``r_square_file``.
    """
    out_dir = Path(out_dir)
    lists: dict[str, list[str]] = {key: [] for key in MAP_KEYS}
    index = {}
    for i, (name, maps) in enumerate(fit.maps.items()):
        weights = np.atleast_2d(fit.contrasts[name])
        record: dict[str, Any] = {
            "stat_type": "F" if fit.contrasts[name].ndim == 2 else "t",
            "weights": [
                dict(zip(fit.design.columns, map(float, row), strict=True)) for row in weights
            ],
        }
        for key, output in NILEARN_OUTPUT_TYPES.items():
            path = save_map(maps[output], out_dir / f"group_con{i:03d}_{_slug(name)}_{key}.nii.gz")
            lists[key].append(path)
            record[key] = path
        index[name] = record
    results: dict[str, Any] = {f"{key}_files": files for key, files in lists.items()}
    results["contrast_names"] = list(index)
    results["stat_types"] = [r["stat_type"] for r in index.values()]
    results["mask_file"] = save_map(fit.mask_img, out_dir / "group_mask.nii.gz", "uint8")
    for key, img in fit.model_maps.items():
        results[f"{key}_file"] = save_map(img, out_dir / f"group_{key}.nii.gz")
    json_path = out_dir / "group_contrasts.json"
    json_path.write_text(json.dumps(index, indent=2))
    results["contrasts_json"] = str(json_path)
    return results


def fit_group_model_files(
    effect_files: Sequence[str],
    design_file: str,
    *,
    contrasts: str,
    contrasts_source: str,
    out_dir: str | os.PathLike,
    fit_options: Mapping[str, Any],
    **keywords: Any,
) -> dict[str, Any]:
    """:func:`~glmflow.core.group.fit.fit_group_model` on files; maps written by
    :func:`write_group_fit`.

    ``contrasts`` is the JSON text :func:`~glmflow.core.group.parse_contrasts` reads;
    ``fit_options`` are :class:`~glmflow.core.model.GroupSpec` fields (method,
    smoothing_fwhm, target_affine, target_shape, minimize_memory),
    validated by the spec; ``keywords`` are fit_group_model's (variance_files, mask, dofs,
    n_jobs).
    """
    group = GroupSpec(**fit_options)
    fit = fit_group_model(
        list(effect_files),
        read_design(design_file),
        contrasts=parse_contrasts(contrasts, source=contrasts_source),
        group=group,
        design_source=design_file,
        contrast_source=contrasts_source,
        **keywords,
    )
    return write_group_fit(fit, out_dir)


def write_inference_result(result: InferenceResult, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write an inference's maps and cluster table into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    results: dict[str, Any] = {
        "thresholded_file": save_map(result.thresholded_img, out_dir / "thresholded.nii.gz"),
        "threshold": result.threshold,
    }
    clusters = out_dir / "clusters.tsv"
    result.clusters.to_csv(clusters, sep="\t", index=False, na_rep="n/a")
    results["clusters_file"] = str(clusters)
    for key, img in result.logp_imgs.items():
        results[f"{key}_file"] = save_map(img, out_dir / f"{key}.nii.gz")
    if result.t_img is not None:
        results["t_file"] = save_map(result.t_img, out_dir / "t.nii.gz")
    if result.tdp_img is not None:
        results["tdp_file"] = save_map(result.tdp_img, out_dir / "tdp.nii.gz")
    return results


def group_inference_files(
    inference: Mapping[str, Any],
    *,
    design_file: str | None,
    contrast: str | None,
    out_dir: str | os.PathLike,
    **keywords: Any,
) -> dict[str, Any]:
    """:func:`~glmflow.core.inference.run_group_inference` with the design and contrast read
    from files / text; outputs written by :func:`write_inference_result`.

    ``inference`` holds :class:`~glmflow.core.model.InferenceSpec` fields, validated by
    the spec; ``keywords`` are run_group_inference's data (stat_img,
    effect_files, mask, smoothing_fwhm, n_jobs, contrast_name).
    """
    spec = InferenceSpec(**inference)
    result = run_group_inference(
        spec,
        design=None if design_file is None else read_design(design_file),
        contrast=None if contrast is None else parse_contrast(contrast),
        design_source=design_file or "the design matrix",
        contrast_source="the contrast input",
        **keywords,
    )
    return write_inference_result(result, out_dir)


#: permutation_stat -> ``desc-`` label naming its familywise-error correction
FWE_DESCS: dict[str, str] = {
    "max_t": "maxtFWE",
    "size": "sizeFWE",
    "mass": "massFWE",
    "tfce": "tfceFWE",
}
CLUSTER_COLUMNS: dict[str, str] = {
    "Cluster ID": "cluster number; subpeaks get a letter (1a, 1b)",
    "X": "x of the peak, mm (MNI for maps in an MNI space)",
    "Y": "y of the peak, mm",
    "Z": "z of the peak, mm",
    "Peak Stat": "statistic at the peak",
    SIZE_MM3: "cluster volume in mm3 (n/a on subpeak rows)",
    SIZE_VOXELS: "cluster size in voxels (n/a on subpeak rows)",
}


def inference_desc(method: str, permutation_stat: str = "max_t") -> str:
    """The ``desc-`` label of a thresholded map: the method, or the permutation FWE kind."""
    return FWE_DESCS[permutation_stat] if method == "permutation" else method


def group_map_path(
    output_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    *,
    contrast: str,
    stat: str,
    desc: str | None = None,
    suffix: str = "statmap",
    extension: str = ".nii.gz",
) -> Path:
    """Dataset-level path ``<entities>_contrast-<label>_stat-<stat>[_desc-<desc>]_<suffix>``.

    Entities and the contrast label follow :func:`glmflow.core.outputs.derivative_path`;
    ``stat`` may be any label here (``logp``, ``tdp``) and ``desc`` names the correction.
    """
    base = derivative_path(output_dir, entities, contrast=contrast, stat="z", level="dataset")
    stem = base.name.removesuffix("_stat-z_statmap.nii.gz")
    parts = [stem, f"stat-{stat}", *([f"desc-{desc}"] if desc else []), suffix]
    return base.with_name("_".join(parts) + extension)


def stage_inference_derivatives(
    output_dir: str | os.PathLike,
    *,
    stage_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    contrast: str,
    method: str,
    stat: str,
    thresholded_file: str | os.PathLike,
    clusters_file: str | os.PathLike,
    threshold: float,
    permutation_stat: str = "max_t",
    logp_files: Mapping[str, str | os.PathLike] | None = None,
    tdp_file: str | os.PathLike | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[list[Path], list[Path], Path]:
    """Plan the outputs of :func:`run_group_inference` under their BIDS names.

    Writes ``..._stat-<z|t>_desc-<d>_statmap.nii.gz`` (the thresholded map; ``d`` from
    :func:`inference_desc`), ``..._stat-<z|t>_desc-<d>_clusters.tsv``, for permutation one
    ``..._stat-logp_desc-<maxtFWE|sizeFWE|massFWE|tfceFWE>_statmap.nii.gz`` per -log10 FWE
    p map, for ``tdp`` ``..._stat-tdp_statmap.nii.gz``; each with a JSON sidecar holding
    ``metadata``, the contrast and the threshold, once the level has succeeded: the
    sidecars are written into ``stage_dir`` with a manifest for
    :func:`glmflow.core.publish.publish`. Returns the destinations (sidecars excluded), the
    staged sidecars and the manifest.
    """
    metadata = dict(metadata or {})
    info = dict(metadata.pop("Contrasts", {}).get(contrast, {}))
    desc = inference_desc(method, permutation_stat)
    common = {
        **metadata,
        "Level": "dataset",
        "Contrast": sidecar_contrast(contrast, info),
    }
    where = {"entities": entities, "contrast": contrast}
    outputs: list[tuple[Path, str | os.PathLike, dict[str, Any]]] = [
        (
            group_map_path(output_dir, **where, stat=stat, desc=desc),
            thresholded_file,
            {"Statistic": stat, "Threshold": threshold, "Thresholded": True},
        ),
        (
            group_map_path(output_dir, **where, stat=stat, desc=desc, suffix="clusters",
                           extension=".tsv"),
            clusters_file,
            {"Statistic": stat, "Threshold": threshold, "Columns": CLUSTER_COLUMNS},
        ),
    ]  # fmt: skip
    outputs += _fwe_outputs(output_dir, where, logp_files or {}, tdp_file)
    staged = [
        (dst, src, dst.with_suffix(".json") if dst.suffix == ".tsv" else sidecar_path(dst),
         {**common, **extra})
        for dst, src, extra in outputs
    ]  # fmt: skip
    return [dst for dst, *_ in staged], *_stage(stage_dir, staged)


def _stage(stage_dir: str | os.PathLike, outputs: Sequence[tuple]) -> tuple[list, Path]:
    """Write each (destination, source, sidecar destination, sidecar) sidecar into
    ``stage_dir`` and the manifest that publishes them with their sources; return the
    staged sidecars (a node must list them, or Nipype deletes them) and the manifest."""
    stage, pairs, staged = Path(stage_dir), [], []
    for dst, src, sidecar_dst, sidecar in outputs:
        staged.append(atomic_write_json(stage / sidecar_dst.name, sidecar))
        pairs += [(Path(src), dst), (staged[-1], sidecar_dst)]
    return staged, write_manifest(stage / "manifest.json", pairs)


def _fwe_outputs(output_dir, where: dict, logp_files: Mapping, tdp_file) -> list[tuple]:
    """(path, source, sidecar extras) of the -log10 FWE p maps and the TDP map."""
    outputs = []
    for key, path in logp_files.items():
        kind = next(k for k, v in LOGP_MAPS.items() if v == key)
        outputs.append(
            (
                group_map_path(output_dir, **where, stat="logp", desc=FWE_DESCS[kind]),
                path,
                {"Statistic": "-log10 p, familywise-error corrected by permutation"},
            )
        )
    if tdp_file is not None:
        outputs.append(
            (
                group_map_path(output_dir, **where, stat="tdp"),
                tdp_file,
                {"Statistic": "lower bound of the true-discovery proportion of each cluster"},
            )
        )
    return outputs


#: FitGroupModel model map -> ``stat-`` label and sidecar description
GROUP_MODEL_MAPS: dict[str, tuple[str, str]] = {
    "residuals": ("residuals", "residuals of the group model, one volume per input map"),
    "predicted": ("predicted", "fitted values of the group model, one volume per input map"),
    "r_square": ("rSquare", "coefficient of determination of the group model"),
}


def stage_model_maps(
    output_dir: str | os.PathLike,
    *,
    stage_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    contrast: str,
    maps: Mapping[str, str | os.PathLike],
    metadata: Mapping[str, Any] | None = None,
) -> tuple[list[Path], list[Path], Path]:
    """Plan a group fit's residual, predicted and r-squared maps (``minimize_memory`` off).

    ``maps`` keys are :data:`GROUP_MODEL_MAPS` keys; ``contrast`` names the modelled first-level
    contrast: ``..._contrast-<label>_stat-<residuals|predicted|rSquare>_statmap.nii.gz``
    (``rSquare`` as at the run level). Staged as :func:`stage_inference_derivatives` does.
    """
    metadata = {k: v for k, v in (metadata or {}).items() if k != "Contrasts"}
    staged = []
    for key, src in maps.items():
        stat, description = GROUP_MODEL_MAPS[key]
        dst = group_map_path(output_dir, entities, contrast=contrast, stat=stat)
        sidecar = {**metadata, "Level": "dataset", "Statistic": description}
        staged.append((dst, src, sidecar_path(dst), sidecar | {"ModelledContrast": contrast}))
    return [dst for dst, *_ in staged], *_stage(stage_dir, staged)
