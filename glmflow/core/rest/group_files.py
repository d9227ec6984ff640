"""The group level of connectivity from the participant level's files, staged for publish.

Subjects' matrices are the subject-level ``relmat.tsv`` files (runs combined) under the
output folder; ``tangent`` is fitted here on each subject's time series (its runs
concatenated), around the group's geometric mean. Outputs, at the top of the output
folder: ``task-<t>_seg-<a>_meas-<m>_contrast-<c>_stat-<t|z|p>_relmat.tsv``, the
``..._edges.tsv`` table of significant edges (region labels, effect, t, z, p), sidecars
with the rule, the subjects and the design; ``..._design.tsv``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.group.contrasts import contrast_weights
from glmflow.core.group.design import default_group_contrasts, load_participants, make_group_design
from glmflow.core.outputs import atomic_write_text, contrast_label
from glmflow.core.rest.files import (
    connectivity_path,
    read_matrix,
    read_timeseries,
    stage_files,
    write_matrix,
)
from glmflow.core.rest.group import edge_glm
from glmflow.core.rest.measures import MEASURE_LABELS, tangent_matrices
from glmflow.core.rest.spec import ConnectivitySpec
from glmflow.errors import DatasetError, GroupModelError


def _subject_files(out: Path, spec: ConnectivitySpec, seg: str, suffix: str, meas: str | None):
    tail = f"_seg-{seg}" + (f"_meas-{meas}" if meas else "") + f"_{suffix}.tsv"
    found: dict[str, list[Path]] = {}
    for path in sorted(out.glob(f"sub-*/**/func/sub-*_task-{spec.task}_*{tail}")):
        subject = path.name.split("_")[0][4:]
        is_run = "_run-" in path.name or "_ses-" in path.name
        if suffix == "timeseries" or not is_run:  # relmat: the subject level's
            found.setdefault(subject, []).append(path)
    return found


def subject_matrices(out: Path, spec: ConnectivitySpec, seg: str, measure: str, subjects=None):
    """(subjects, (n_subjects, n, n) matrices) of one measure from the participant level."""
    if measure == "tangent":
        series = _subject_files(out, spec, seg, "timeseries", None)
        chosen = [s for s in series if subjects is None or s in subjects]
        if not chosen:
            raise DatasetError(_nothing(out, spec, seg, "timeseries"))
        stacked = [np.concatenate([read_timeseries(f) for f in series[s]]) for s in chosen]
        return chosen, tangent_matrices(stacked)
    files = _subject_files(out, spec, seg, "relmat", MEASURE_LABELS[measure])
    chosen = [s for s in files if subjects is None or s in subjects]
    if not chosen:
        raise DatasetError(_nothing(out, spec, seg, f"meas-{MEASURE_LABELS[measure]} relmat"))
    return chosen, np.stack([read_matrix(files[s][0]) for s in chosen])


def _nothing(out: Path, spec, seg: str, what: str) -> str:
    return (
        f"No subject-level seg-{seg} {what} files of task '{spec.task}' in {out}; run the "
        "participant level of this connectivity model first (same output folder)"
    )


def _check_columns(spec: ConnectivitySpec, participants, participants_file) -> None:
    """The model's group column and covariates must be columns of participants.tsv."""
    named = [("group.group_column", spec.group.group_column)]
    named += [("group.covariates", c) for c in spec.group.covariates]
    for key, column in named:
        if column is not None and column not in participants.columns:
            available = ", ".join(str(c) for c in participants.columns if c != "participant_id")
            raise GroupModelError(
                f"'{key}' {column!r} of the connectivity model {spec.source} is not a column "
                f"of {participants_file} (columns: {available}); add the column to "
                f"{Path(participants_file).name} or change '{key}' in the model"
            )


def connectivity_group_files(
    *,
    output_dir: str | os.PathLike,
    spec: ConnectivitySpec,
    participants_file: str | os.PathLike,
    labels: list[str],
    seg: str,
    subjects: list[str] | None,
    stage_dir: str | os.PathLike,
) -> tuple[list[Path], Path]:
    """Fit every measure's edge-wise group model; stage the outputs; (destinations, manifest)."""
    out, stage = Path(output_dir), Path(stage_dir)
    stage.mkdir(parents=True, exist_ok=True)
    participants = load_participants(participants_file)
    _check_columns(spec, participants, participants_file)
    pairs: list[tuple[str, Path, dict[str, Any] | None]] = []
    for measure in spec.measures:
        chosen, matrices = subject_matrices(out, spec, seg, measure, subjects)
        design = make_group_design(
            participants, subjects=chosen, group=spec.group, source=str(participants_file)
        )
        meas = MEASURE_LABELS[measure]
        ents = {"task": spec.task, "segmentation": seg}
        design_src = stage / f"design_{meas}.tsv"
        design.to_csv(design_src, sep="\t")
        dst = connectivity_path(out, ents, level="dataset", suffix="design", meas=meas)
        pairs.append((str(design_src), dst, None))
        pairs += _contrasts(spec, design, matrices, labels, ents, meas, chosen, out, stage)
        if spec.plots:
            pairs += _plots(pairs, node_coordinates(out, spec, seg), labels)
    return stage_files(pairs, stage)


def _contrasts(spec, design, matrices, labels, ents, meas, chosen, out, stage) -> list:
    contrasts = {c.name: c.to_dict() for c in spec.group.contrasts} or default_group_contrasts(
        design, design_type=spec.group.design, group_column=spec.group.group_column
    )
    pairs = []
    for name, definition in contrasts.items():
        weights = contrast_weights(definition, list(design.columns), name=name, source=spec.source)
        result = edge_glm(matrices, design, weights, spec.group.inference, labels, name=name)
        label = contrast_label(name)
        meta = {
            "Contrast": name, "Weights": dict(zip(design.columns, weights.tolist(), strict=True)),
            "Measure": meas, "Subjects": chosen, "Threshold": result.threshold,
            "NodeLabels": labels, "FisherZ": spec.fisher_z, "Design": spec.group.design,
        }  # fmt: skip
        for stat in ("t", "z", "p"):
            src = write_matrix(stage / f"{meas}_{label}_{stat}.tsv", getattr(result, stat))
            dst = connectivity_path(out, ents, level="dataset", suffix="relmat", meas=meas,
                                    extra=[("contrast", label), ("stat", stat)])  # fmt: skip
            pairs.append((str(src), dst, meta))
        table = stage / f"{meas}_{label}_edges.tsv"
        atomic_write_text(table, result.table.to_csv(sep="\t", index=False, na_rep="n/a"))
        dst = connectivity_path(out, ents, level="dataset", suffix="edges", meas=meas,
                                extra=[("contrast", label)])  # fmt: skip
        pairs.append((str(table), dst, meta))
    return pairs


def _plots(pairs: list, coordinates, labels: list[str]) -> list:
    """The t matrix of each contrast, and its surviving edges' z as a connectome."""
    from glmflow.core.rest.plots import plot_connectome_svg, plot_matrix_svg

    plots = []
    for src, dst, meta in pairs:
        if dst.name.endswith("_stat-t_relmat.tsv"):
            svg = plot_matrix_svg(read_matrix(src), labels, Path(src).with_suffix(".svg"),
                                  title=f"{meta['Contrast']}: t")  # fmt: skip
            plots.append((str(svg), dst.with_suffix(".svg"), None))
        if dst.name.endswith("_edges.tsv") and coordinates is not None:
            z = read_matrix(Path(src).with_name(Path(src).name.replace("_edges.tsv", "_z.tsv")))
            keep = _square_from_table(pd.read_csv(src, sep="\t"), len(labels))
            title = f"{meta['Contrast']}: z, {meta['Threshold']}"
            target = Path(src).with_name(Path(src).stem + "_connectome.svg")
            svg = plot_connectome_svg(np.where(keep, z, 0.0), coordinates, target, title=title)
            name = dst.name.replace("_edges.tsv", "_connectome.svg")
            plots.append((str(svg), dst.with_name(name), None))
    return plots


def _square_from_table(table: pd.DataFrame, n: int) -> np.ndarray:
    keep = np.zeros((n, n), bool)
    for i, j in zip(table["node_i"] - 1, table["node_j"] - 1, strict=True):
        keep[i, j] = keep[j, i] = True
    return keep


def node_coordinates(out: Path, spec: ConnectivitySpec, seg: str) -> np.ndarray | None:
    """Node positions (mm) from a participant-level time-series sidecar, if it has them."""
    import json

    for path in sorted(
        out.glob(f"sub-*/**/func/sub-*_task-{spec.task}_*_seg-{seg}_timeseries.json")
    ):
        coordinates = json.loads(path.read_text()).get("NodeCoordinates")
        return None if coordinates is None else np.asarray(coordinates, dtype=float)
    return None


def atlas_labels(out: Path, spec: ConnectivitySpec, seg: str) -> list[str]:
    """Node labels from a participant-level time series header."""
    for path in sorted(
        out.glob(f"sub-*/**/func/sub-*_task-{spec.task}_*_seg-{seg}_timeseries.tsv")
    ):
        return list(pd.read_csv(path, sep="\t", nrows=0).columns)
    raise DatasetError(_nothing(out, spec, seg, "timeseries"))
