"""Every resting-state run checked before any compute: confounds, filter, atlas, seeds.

What depends only on headers, masks and the confounds tables is checked here, for all
runs, so that a bad input is one line before the graph starts (the run nodes repeat the
checks that need the data; all volumes censored is ``run_confounds``' rule, known here too).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import nibabel as nib

from glmflow.core.bids.runs import RunInputs
from glmflow.core.images import check_same_grid, load_mask
from glmflow.core.rest.atlas import (
    empty_maps,
    grid_labels,
    labels_on_grid,
    maps_on_grid,
    missing_labels,
    refuse_missing,
    resolve_atlas,
    sphere_voxels,
)
from glmflow.core.rest.denoise import run_confounds
from glmflow.core.rest.extract import check_filter
from glmflow.core.rest.run import seeds_atlas
from glmflow.core.rest.spec import ConnectivitySpec
from glmflow.errors import DatasetError


def check_rest_runs(runs: Sequence[RunInputs], spec: ConnectivitySpec) -> ConnectivitySpec:
    """Raise the first problem of any run (one line naming the file and the fix).

    Returns the spec to run: with ``"missing_labels": "drop"``, the labels that some run's
    mask does not reach are added to ``exclude_labels`` (warned, once for all runs).
    """
    if not runs:
        raise DatasetError(
            f"No preprocessed BOLD run of task '{spec.task}' found for {spec.source}; check "
            "the task name, the space and the participant selection"
        )
    atlas = resolve_atlas(spec) if spec.atlas is not None else None
    seeds = seeds_atlas(spec)
    checked_masks: set[str] = set()
    dropped: dict[int, str] = {}
    for run in runs:
        where = f"run {run.bold}"
        run_confounds(run.confounds, spec.confounds, spec.denoise, bold_file=run.bold)
        check_filter(spec.clean, run.n_volumes, run.tr, where)
        bold = nib.load(run.bold)
        mask, affine = load_mask(run.mask)
        check_same_grid(bold.shape, bold.affine, mask, affine, run.bold, run.mask)
        if run.mask in checked_masks:
            continue
        checked_masks.add(run.mask)
        mask_where = f"{where} (mask {run.mask})"
        shape = bold.shape
        if atlas is not None and atlas.kind == "labels":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore" if len(checked_masks) > 1 else "default")
                if spec.atlas.missing_labels == "drop":
                    labels = grid_labels(atlas, shape, affine, mask, mask_where)
                    dropped.update(missing_labels(labels, atlas))
                else:
                    labels_on_grid(atlas, shape, affine, mask, mask_where)
        if atlas is not None and atlas.kind == "maps":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore" if len(checked_masks) > 1 else "default")
                empty = empty_maps(maps_on_grid(atlas, shape, affine, mask_where), atlas, mask)
            if spec.atlas.missing_labels == "drop":
                dropped.update(empty)
            else:
                refuse_missing(empty, atlas, mask_where)
        if atlas is not None and atlas.kind == "spheres" and spec.atlas.missing_labels == "drop":
            found = sphere_voxels(atlas, affine, mask, mask_where, allow_empty=True)
            empty = [i for i, voxels in enumerate(found) if not len(voxels)]
            dropped.update((atlas.indices[i], atlas.names[i]) for i in empty)
        elif atlas is not None and atlas.kind == "spheres":
            sphere_voxels(atlas, affine, mask, mask_where)
        if seeds is not None:
            sphere_voxels(seeds, affine, mask, mask_where)
    return _drop(spec, dropped)


def _drop(spec: ConnectivitySpec, dropped: dict[int, str]) -> ConnectivitySpec:
    if not dropped:
        return spec
    if len(dropped) == len(resolve_atlas(spec).indices):
        raise DatasetError(
            f"No label of the atlas of {spec.source} has a voxel in every run's mask"
        )
    names = ", ".join(f"{i} ({n})" for i, n in sorted(dropped.items()))
    warnings.warn(
        f"Atlas of {spec.source}: {len(dropped)} label(s) with no voxel in some run's brain mask "
        f'are left out of every run (missing_labels "drop"): {names}',
        UserWarning,
        stacklevel=2,
    )
    atlas = dataclasses.replace(
        spec.atlas, exclude_labels=tuple(sorted({*spec.atlas.exclude_labels, *dropped}))
    )
    return dataclasses.replace(spec, atlas=atlas)
