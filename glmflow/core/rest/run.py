"""One resting-state run from its files: confounds, one read, cleaning, matrices, seed maps.

:func:`connectivity_run_files` is what the run node of the graph calls; it writes into its
folder the cleaned time series, one matrix per measure, the seed maps and a ``run.json``
record (labels, denoising, censored volumes) that the sinks turn into sidecars.
:func:`combine_run_files` makes a subject's matrices from its runs'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from glmflow.core.images import save_nifti, unmask
from glmflow.core.rest.atlas import Atlas, resolve_atlas
from glmflow.core.rest.denoise import run_confounds
from glmflow.core.rest.extract import check_filter, clean_signals, read_signals
from glmflow.core.rest.files import read_matrix, write_matrix, write_timeseries
from glmflow.core.rest.measures import (
    MEASURE_LABELS,
    combine_matrices,
    connectivity_matrix,
    fisher_z,
    seed_to_voxel,
    transform,
)
from glmflow.core.rest.spec import ConnectivitySpec
from glmflow.core.sidecars import applied_confounds


def seeds_atlas(spec: ConnectivitySpec) -> Atlas | None:
    """The model's seeds as a spheres atlas (one radius for all: the spec refuses several)."""
    if not spec.seeds:
        return None
    return Atlas(
        "spheres", "seeds", tuple(s.name for s in spec.seeds),
        coordinates=tuple(s.coordinates for s in spec.seeds),
        radius=spec.seeds[0].radius, allow_overlap=True,
    )  # fmt: skip


def connectivity_run_files(
    *,
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    confounds_file: str | os.PathLike,
    tr: float,
    spec: ConnectivitySpec,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Compute one run; return ``{"timeseries", "matrices": {measure: tsv}, "seed_maps":
    {seed: nii}, "record": json}`` (paths in ``out_dir``)."""
    out = Path(out_dir)
    where = f"run {bold_file}"
    confounds, sample_mask = run_confounds(
        confounds_file, spec.confounds, spec.denoise, bold_file=bold_file
    )
    n_volumes = len(confounds)
    check_filter(spec.clean, n_volumes, tr, where)
    atlas = resolve_atlas(spec) if spec.atlas is not None else None
    seeds = seeds_atlas(spec)
    raw = read_signals(bold_file, mask_file, atlas, seeds, keep_voxels=bool(spec.seeds))
    options = {
        "tr": tr,
        "confounds": confounds.to_numpy() if confounds.shape[1] else None,
        "sample_mask": sample_mask,
        "where": where,
    }
    result: dict[str, Any] = {"matrices": {}, "seed_maps": {}}
    if atlas is not None:
        series = clean_signals(raw.regions, spec.clean, **options)
        result["timeseries"] = str(write_timeseries(out / "timeseries.tsv", series, atlas.names))
        for measure in spec.measures:
            if measure == "tangent":
                continue  # fitted across subjects by the group level
            matrix = transform(
                connectivity_matrix(series, measure, where=where), measure, spec.fisher_z
            )
            result["matrices"][measure] = str(
                write_matrix(out / f"{MEASURE_LABELS[measure]}.tsv", matrix)
            )
    if seeds is not None:
        seed_series = clean_signals(raw.seeds, spec.clean, **options)
        voxel_series = clean_signals(raw.voxels, spec.clean, **options)
        maps = seed_to_voxel(seed_series, voxel_series)
        if spec.fisher_z:
            maps = fisher_z(maps, square=False)
        for name, values in zip(seeds.names, maps, strict=True):
            img = unmask(values.astype(np.float32), mask_file)
            result["seed_maps"][name] = str(save_nifti(img, out / f"seed-{name}.nii.gz"))
    record = _record(spec, atlas, confounds.columns, sample_mask, n_volumes, tr)
    if raw.centroids is not None:
        record["NodeCoordinates"] = np.round(raw.centroids, 2).tolist()
    result["record"] = str(out / "run.json")
    Path(result["record"]).write_text(json.dumps(record, indent=2, sort_keys=True))
    return result


def _record(spec, atlas, columns, sample_mask, n_volumes: int, tr: float) -> dict[str, Any]:
    kept = range(n_volumes) if sample_mask is None else set(int(i) for i in sample_mask)
    censored = [t for t in range(n_volumes) if t not in kept]
    record = {
        "RepetitionTime": tr,
        "SamplingFrequency": 1.0 / tr,
        "NumberOfVolumes": n_volumes,
        "CensoredVolumes": censored,
        "Denoising": {
            **{k: v for k, v in spec.clean.to_dict().items()},
            "confounds": spec.denoise.to_dict()
            if spec.denoise
            else applied_confounds(spec.confounds.to_dict()),
            "confound_columns": list(columns),
            "method": "nilearn.signal.clean",
        },
        "FisherZ": spec.fisher_z,
    }
    if atlas is not None:
        record["Atlas"] = {"Label": atlas.seg, "Source": atlas.source, "Kind": atlas.kind}
        if atlas.kind == "maps":
            record["Atlas"]["Extraction"] = "nilearn.maskers.NiftiMapsMasker"
        record["NodeLabels"] = list(atlas.names)
        if atlas.kind in ("labels", "maps"):
            record["NodeIndices"] = list(atlas.indices)
        else:
            record["NodeCoordinates"] = [list(c) for c in atlas.coordinates]
            record["Radius"] = atlas.radius
    if spec.seeds:
        record["Seeds"] = [s.to_dict() for s in spec.seeds]
    return record


def combine_run_files(
    matrices: dict[str, list[str]],
    out_dir: str | os.PathLike,
    *,
    labels: list[str] | None = None,
    plots: bool = False,
) -> dict[str, dict[str, str]]:
    """Each measure's subject matrix, the mean over its runs' (module :mod:`.measures`), and
    its picture when ``plots``: ``{"matrices": {measure: tsv}, "plots": {measure: svg}}``."""
    from glmflow.core.rest.plots import plot_matrix_svg

    out = Path(out_dir)
    combined: dict[str, dict[str, str]] = {"matrices": {}, "plots": {}}
    for measure, files in matrices.items():
        matrix = combine_matrices([read_matrix(f) for f in files])
        name = MEASURE_LABELS[measure]
        combined["matrices"][measure] = str(write_matrix(out / f"{name}.tsv", matrix))
        if plots:
            title = f"{measure} (mean of {len(files)} run(s))"
            svg = plot_matrix_svg(matrix, labels or [], out / f"{name}.svg", title=title)
            combined["plots"][measure] = str(svg)
    return combined


def combine_subject_files(
    result_files: list[str], out_dir: str | os.PathLike, *, plots: bool = True
) -> dict[str, Any]:
    """A subject's result from its runs' results (:func:`connectivity_run_files`): the
    combined matrices, their pictures and a record without the per-run volumes."""
    results = [json.loads(Path(f).read_text()) for f in result_files]
    records = [json.loads(Path(r["record"]).read_text()) for r in results]
    matrices = {m: [r["matrices"][m] for r in results] for m in results[0]["matrices"]}
    per_run = ("CensoredVolumes", "NumberOfVolumes") if len(records) > 1 else ()
    record = {k: v for k, v in records[0].items() if k not in per_run}  # one run: all of it
    record["Runs"] = [r["NumberOfVolumes"] for r in records]
    record["RunCombination"] = "mean of the runs' matrices (of the Fisher z values when FisherZ)"
    combined = combine_run_files(matrices, out_dir, labels=record.get("NodeLabels"), plots=plots)
    combined["record"] = str(Path(out_dir) / "run.json")
    Path(combined["record"]).write_text(json.dumps(record, indent=2, sort_keys=True))
    return combined


def stage_connectivity(
    *,
    output_dir: str | os.PathLike,
    entities: dict[str, str],
    level: str,
    result: dict[str, Any],
    metadata: dict[str, Any],
    stage_dir: str | os.PathLike,
    matrices: bool = True,
) -> tuple[list[Path], Path]:
    """Stage one run's (``level="run"``) or subject's (``"subject"``) outputs for publish.

    ``result`` is :func:`connectivity_run_files`' (or :func:`combine_run_files`' matrices
    under ``"matrices"``); ``metadata`` goes into every sidecar (the run record: labels,
    denoising, censored volumes; the model's name, the ``desc-`` label, and source).
    ``matrices=False`` leaves the matrices to the subject's sink (a subject of one run whose
    names are the run's).
    """
    from glmflow.core.rest.files import connectivity_path, stage_files

    seg = metadata.get("Atlas", {}).get("Label")
    pairs = []
    where = {"level": level, "seg": seg, "desc": metadata["ModelName"]}
    if not matrices:
        result = {k: v for k, v in result.items() if k != "matrices"}
    if result.get("timeseries"):
        dst = connectivity_path(output_dir, entities, suffix="timeseries", **where)
        pairs.append((result["timeseries"], dst, metadata))
    for measure, src in result.get("matrices", {}).items():
        meas = MEASURE_LABELS[measure]
        dst = connectivity_path(output_dir, entities, suffix="relmat", meas=meas, **where)
        pairs.append((src, dst, {**metadata, "Measure": measure}))
    for measure, src in result.get("plots", {}).items():
        meas = MEASURE_LABELS[measure]
        pairs.append(
            (src, connectivity_path(output_dir, entities, suffix="plot", meas=meas, **where), None)
        )
    for seed, src in result.get("seed_maps", {}).items():
        dst = connectivity_path(
            output_dir, entities, level=level, suffix="statmap", seed=seed, meas="correlation",
            desc=where["desc"],
        )  # fmt: skip
        pairs.append((src, dst, {**metadata, "Seed": seed, "Measure": "correlation"}))
    return stage_files(pairs, stage_dir)
