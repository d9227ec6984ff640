"""The group level of connectivity from the participant level's files, staged for publish.

Subjects' matrices are the subject-level ``relmat.tsv`` files (runs combined: ``Runs`` in
the sidecar) of the model (``desc-<name>``) and space under the output folder; ``tangent``
is fitted here on each subject's time series (its runs concatenated), around the group's
geometric mean. Outputs, at the top of the output folder:
``task-<t>_space-<s>_seg-<a>_meas-<m>_contrast-<c>_stat-<t|z|p>_desc-<name>_relmat.tsv``, the
``..._edges.tsv`` table of significant edges (region labels, effect, t, z, p), sidecars
with the rule, the subjects and the design; ``..._design.tsv``.
"""

from __future__ import annotations

import json
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
    name_entities,
    read_matrix,
    read_timeseries,
    stage_files,
    write_matrix,
)
from glmflow.core.rest.group import edge_glm
from glmflow.core.rest.measures import MEASURE_LABELS, tangent_matrices
from glmflow.core.rest.spec import ConnectivitySpec
from glmflow.core.sidecars import sidecar_path
from glmflow.errors import DatasetError, GroupModelError


def _candidates(out: Path, spec, space: str, seg: str, suffix: str, meas: str | None):
    """Subject files of this model (``desc-``), space, atlas and measure, by subject."""
    wanted = {"task": spec.task, "space": space, "seg": seg, "desc": spec.name}
    if meas is not None:
        wanted["meas"] = meas
    found: dict[str, list[Path]] = {}
    for path in sorted(out.glob(f"sub-*/**/func/sub-*_task-{spec.task}_*_{suffix}.tsv")):
        ents = name_entities(path.name.removesuffix(f"_{suffix}.tsv"))
        if all(ents.get(k) == v for k, v in wanted.items()) and ("meas" in ents) == bool(meas):
            found.setdefault(ents["sub"], []).append(path)
    return found


def _sidecar(path: Path) -> dict[str, Any]:
    return json.loads(sidecar_path(path).read_text()) if sidecar_path(path).is_file() else {}


def _subject_level(subject: str, files: list[Path]) -> Path:
    """The subject's file (runs combined: its sidecar has ``Runs``); refuse several."""
    combined = [f for f in files if "Runs" in _sidecar(f)]
    if len(combined) != 1:
        listed = ", ".join(str(f) for f in (combined or files))
        raise DatasetError(
            f"sub-{subject} has {len(combined)} subject-level matrices for one model, space, "
            f"atlas and measure ({listed}); remove the stale ones or use another output folder"
        )
    return combined[0]


def _same_labels(labels: dict[Path, list[str]]) -> list[str]:
    """Every subject's ``NodeLabels`` must be the first's (refused in one line)."""
    (first, reference), *others = labels.items()
    for path, names in others:
        if names != reference:
            missing = [n for n in reference if n not in names] or "none"
            extra = [n for n in names if n not in reference] or "none"
            raise DatasetError(
                f"NodeLabels of {sidecar_path(path)} differ from {sidecar_path(first)} (missing "
                f"{missing}, extra {extra}{'' if missing != extra else ', order differs'}): "
                "edges of different regions cannot be tested together; rerun the participant "
                'level of every subject in one invocation, or list the labels in "exclude_labels"'
            )
    return reference


def subject_matrices(out: Path, spec: ConnectivitySpec, space: str, seg: str, measure: str,
                     subjects=None):  # fmt: skip
    """(subjects, (n_subjects, n, n) matrices, node labels, the files) of one measure."""
    tangent = measure == "tangent"
    meas = None if tangent else MEASURE_LABELS[measure]
    found = _candidates(out, spec, space, seg, "timeseries" if tangent else "relmat", meas)
    chosen = [s for s in found if subjects is None or s in subjects]
    if not chosen:
        what = "timeseries" if tangent else f"meas-{meas} relmat"
        raise DatasetError(_nothing(out, spec, space, seg, what))
    files = {s: found[s] if tangent else [_subject_level(s, found[s])] for s in chosen}
    labels = _same_labels({f: _sidecar(f).get("NodeLabels") for s in chosen for f in files[s]})
    sources = [", ".join(str(f) for f in files[s]) for s in chosen]
    if tangent:
        stacked = [np.concatenate([read_timeseries(f) for f in files[s]]) for s in chosen]
        return chosen, tangent_matrices(stacked), labels, sources
    return chosen, np.stack([read_matrix(files[s][0]) for s in chosen]), labels, sources


def _nothing(out: Path, spec, space: str, seg: str, what: str) -> str:
    return (
        f"No subject-level space-{space} seg-{seg} desc-{spec.name} {what} files of task "
        f"'{spec.task}' in {out}; run the participant level of this connectivity model first "
        "(same output folder and --space)"
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
    space: str,
    subjects: list[str] | None,
    stage_dir: str | os.PathLike,
) -> tuple[list[Path], Path]:
    """Fit every measure's edge-wise group model; stage the outputs; (destinations, manifest).

    Subjects' files are this model's (``desc-<name>``) in ``space``; every subject's
    ``NodeLabels`` must be the same (else one line naming both files).
    """
    out, stage = Path(output_dir), Path(stage_dir)
    stage.mkdir(parents=True, exist_ok=True)
    participants = load_participants(participants_file)
    _check_columns(spec, participants, participants_file)
    pairs: list[tuple[str, Path, dict[str, Any] | None]] = []
    seg = spec.atlas.seg
    for measure in spec.measures:
        chosen, matrices, labels, sources = subject_matrices(
            out, spec, space, seg, measure, subjects
        )
        design = make_group_design(
            participants, subjects=chosen, group=spec.group, source=str(participants_file)
        )
        meas = MEASURE_LABELS[measure]
        ents = {"task": spec.task, "space": space, "segmentation": seg}
        design_src = stage / f"design_{meas}.tsv"
        design.to_csv(design_src, sep="\t")
        dst = connectivity_path(out, ents, level="dataset", suffix="design", meas=meas,
                                desc=spec.name)  # fmt: skip
        pairs.append((str(design_src), dst, None))
        fit = {"matrices": matrices, "labels": labels, "chosen": chosen, "sources": sources}
        tested = _contrasts(spec, design, fit, ents, meas, out, stage)
        pairs += tested
        if spec.plots:  # this measure's pictures (each measure's once)
            pairs += _plots(tested, node_coordinates(out, spec, space, seg), labels)
    return stage_files(pairs, stage)


def _contrasts(spec, design, fit: dict, ents, meas, out, stage) -> list:
    contrasts = {c.name: c.to_dict() for c in spec.group.contrasts} or default_group_contrasts(
        design, design_type=spec.group.design, group_column=spec.group.group_column
    )
    pairs = []
    for name, definition in contrasts.items():
        weights = contrast_weights(definition, list(design.columns), name=name, source=spec.source)
        labels, chosen = fit["labels"], fit["chosen"]
        result = edge_glm(fit["matrices"], design, weights, spec.group.inference, labels,
                          name=name, sources=fit["sources"])  # fmt: skip
        label = contrast_label(name)
        meta = {
            "Contrast": name, "Weights": dict(zip(design.columns, weights.tolist(), strict=True)),
            "Measure": meas, "Subjects": chosen, "Threshold": result.threshold,
            "NodeLabels": labels, "FisherZ": spec.fisher_z, "Design": spec.group.design,
        }  # fmt: skip
        for stat in ("t", "z", "p"):
            src = write_matrix(stage / f"{meas}_{label}_{stat}.tsv", getattr(result, stat))
            dst = connectivity_path(out, ents, level="dataset", suffix="relmat", meas=meas,
                                    extra=[("contrast", label), ("stat", stat)],
                                    desc=spec.name)  # fmt: skip
            pairs.append((str(src), dst, meta))
        table = stage / f"{meas}_{label}_edges.tsv"
        atomic_write_text(table, result.table.to_csv(sep="\t", index=False, na_rep="n/a"))
        dst = connectivity_path(out, ents, level="dataset", suffix="edges", meas=meas,
                                extra=[("contrast", label)], desc=spec.name)  # fmt: skip
        pairs.append((str(table), dst, meta))
    return pairs


def _plots(pairs: list, coordinates, labels: list[str]) -> list:
    """The t matrix of each contrast, and its surviving edges' z as a connectome."""
    from glmflow.core.rest.plots import plot_connectome_svg, plot_matrix_svg

    plots = []
    for src, dst, meta in pairs:
        if dst.name.endswith("_relmat.tsv") and name_entities(dst.name).get("stat") == "t":
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


def node_coordinates(out: Path, spec: ConnectivitySpec, space: str, seg: str):
    """Node positions (mm) from a participant-level time-series sidecar, if it has them."""
    for files in _candidates(out, spec, space, seg, "timeseries", None).values():
        coordinates = _sidecar(files[0]).get("NodeCoordinates")
        return None if coordinates is None else np.asarray(coordinates, dtype=float)
    return None
