"""The group-level plan: which subject maps, which design, which contrasts, which dofs.

:func:`plan_task_group` turns a model's group section and the subject maps the participant
level wrote (:mod:`glmflow.core.group.subject_maps`) into a :class:`GroupPlan`: data, checked,
ready for :func:`glmflow.workflows.group_level.init_group_wf` to wire. Only TSV, JSON
sidecars and NIfTI headers are read; every mistake raises a one-line
:class:`~glmflow.errors.GroupModelError` before any compute.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import pandas as pd

from glmflow.core.group.contrasts import contrast_weights
from glmflow.core.group.design import (
    check_design,
    default_group_contrasts,
    load_participants,
    make_group_design,
    read_design,
)
from glmflow.core.group.inputs import check_group_inputs, check_group_mask
from glmflow.core.group.subject_maps import SubjectMap, find_subject_maps
from glmflow.core.model import MEAN_CONTRAST, ModelSpec, locate
from glmflow.core.outputs import atomic_write_text, contrast_label, contrast_labels
from glmflow.errors import GroupModelError, ModelSpecError

LOGGER = logging.getLogger("glmflow")
PathLike = str | os.PathLike


@dataclass(frozen=True)
class GroupAnalysis:
    """One group model: its input maps (one per design row) and its output contrasts.

    ``contrasts`` maps each output name (the first-level contrast name, followed by the
    group contrast name unless that is ``mean``) to its definition over the design columns.
    """

    name: str
    first_level: tuple[str, ...]
    maps: tuple[SubjectMap, ...]
    contrasts: dict[str, Any]
    info: dict[str, dict[str, Any]]

    @property
    def mem_gb(self) -> float:
        """Peak memory of a fit or a permutation node: a few float64 copies of all maps."""
        voxels = math.prod(nib.load(self.maps[0].effect).shape[:3])
        return round(max(0.5, 0.3 + 4 * 8 * voxels * len(self.maps) / 1e9), 2)


@dataclass(frozen=True, eq=False)
class GroupPlan:
    """Everything checked for one task: design, analyses and the shared entities."""

    spec: ModelSpec
    design: pd.DataFrame
    design_source: str
    entities: dict[str, str]
    analyses: tuple[GroupAnalysis, ...]

    @property
    def subjects(self) -> list[str]:
        return sorted({m.subject for a in self.analyses for m in a.maps})

    def metadata(self, analysis: GroupAnalysis) -> dict[str, Any]:
        """What the sidecars of ``analysis``'s maps say about the model and its inputs."""
        spec = self.spec
        return {
            "Model": {"Name": spec.name, "Task": spec.task, "Source": spec.source},
            "GroupModel": spec.group.to_dict(),
            "Design": {
                "Columns": [str(c) for c in self.design.columns],
                "Rows": [str(r) for r in self.design.index],
                "Source": self.design_source,
            },
            "Inputs": [m.effect.name for m in analysis.maps],
            "Contrasts": analysis.info,
        }


def override_group(
    spec: ModelSpec, smoothing_fwhm: float | None, inference: Mapping[str, Any] | None
) -> ModelSpec:
    """Apply command-line / keyword overrides to the group section (validated again)."""
    if smoothing_fwhm is None and not inference:
        return spec
    data = spec.group.to_dict()
    if smoothing_fwhm is not None:
        data["smoothing_fwhm"] = smoothing_fwhm
    data["inference"] = {**data["inference"], **(inference or {})}
    if (inference or {}).get("method") == "tdp" and "two_sided" not in (inference or {}):
        data["inference"]["two_sided"] = False  # tdp tests positive clusters only
    try:
        group = type(spec.group).from_dict(data, what="'group'")
    except ModelSpecError as err:
        raise locate(err, f"options given with model {spec.source}", prefix="group.") from None
    return dataclasses.replace(spec, group=group)


def plan_task_group(
    spec: ModelSpec,
    *,
    glmflow_dir: PathLike,
    bids_dir: PathLike,
    space: str | None,
    participant_label: Sequence[str] | None = None,
    design_file: PathLike | None = None,
    mask: PathLike | None = None,
    maps: dict[str, dict[str, SubjectMap]] | None = None,
    check_maps: Callable[[list[Path]], None] | None = None,
) -> GroupPlan:
    """Find the subject maps of ``spec.task`` and check its group design, contrasts, maps
    and ``mask`` (a mask on another grid than the maps warns). Surfaces (issue 12) give
    their ``maps`` and the check of each model's effect maps (``check_maps``)."""
    glmflow_dir = Path(glmflow_dir)
    if maps is None:
        maps = find_subject_maps(glmflow_dir, task=spec.task, space=space)
    if not maps:
        where = f" in space {space}" if space else ""
        raise GroupModelError(
            f"No subject-level maps of task '{spec.task}'{where} in {glmflow_dir}; run "
            "the participant level first (glmflow BIDS_DIR OUTPUT_DIR participant ...)"
        )
    group = spec.group
    subjects = _select_subjects(spec, maps, participant_label, glmflow_dir)
    if design_file is not None:
        design, subjects = _generic_design(design_file, subjects, participant_label)
        source = str(design_file)
    levels = _select_first_level(spec, maps, subjects, glmflow_dir)
    if design_file is None:
        participants, source = _participants(bids_dir, subjects, spec)
        subject_ids = [f"sub-{s}" for s in subjects]
        design = make_group_design(participants, subjects=subject_ids, group=group, source=source)
    group_contrasts = _group_contrasts(spec, design, design_file)
    for name, definition in group_contrasts.items():
        contrast_weights(definition, design.columns, name=name, source=spec.source)
    analyses = [
        _analysis(first_level, rows, group_contrasts, dof=_dof(group.method, design, rows))
        for first_level, rows in _inputs(spec, maps, levels, subjects, design_file)
    ]
    for analysis in analyses:
        if check_maps is not None:
            check_maps([m.effect for m in analysis.maps])
            continue
        variances = [str(m.variance) for m in analysis.maps] if group.method == "fixed" else None
        check_group_inputs(
            [str(m.effect) for m in analysis.maps],
            variance_files=variances,
            target_affine=group.target_affine,
        )
    if mask is not None:
        resampled = group.target_affine is not None
        check_group_mask(mask, [m.effect for m in analyses[0].maps], resampled=resampled)
    contrast_labels([n for a in analyses for n in a.contrasts], source=spec.source)
    entities = _shared_entities([m for a in analyses for m in a.maps])
    return GroupPlan(spec, design, source, entities, tuple(analyses))


def _inputs(spec, maps, levels, subjects, design_file) -> list[tuple[tuple[str, ...], list]]:
    """(first-level contrast names, maps in design row order) of each group model."""
    if spec.group.design == "paired" and design_file is None:
        # make_group_design's paired rows: every subject in the first condition, then the second
        rows = [maps[level][s] for level in levels for s in subjects]
        return [(tuple(maps[level][subjects[0]].contrast for level in levels), rows)]
    return [
        ((maps[level][subjects[0]].contrast,), [maps[level][s] for s in subjects])
        for level in levels
    ]


def _dof(method: str, design: pd.DataFrame, rows: Sequence[SubjectMap]) -> float:
    """Degrees of freedom of the group statistic (as glmflow.core.group computes it)."""
    if method == "fixed":
        return float(sum(m.fixed_effects_dof for m in rows))
    return float(len(design) - len(design.columns))


def _select_subjects(spec, maps, participant_label, glmflow_dir) -> list[str]:
    found = sorted({s for by_subject in maps.values() for s in by_subject})
    if participant_label:
        wanted = [str(s).removeprefix("sub-") for s in participant_label]
        for subject in wanted:
            if subject not in found:
                raise GroupModelError(
                    f"sub-{subject} has no subject-level maps of task '{spec.task}' in "
                    f"{glmflow_dir}; run the participant level for it first"
                )
        found = sorted(set(wanted))
    excluded = [s for s in found if s in spec.excludes]
    if excluded:
        LOGGER.info("left out by 'excludes' in %s: sub-%s", spec.source, ", sub-".join(excluded))
    return [s for s in found if s not in spec.excludes]


def _select_first_level(spec, maps, subjects, glmflow_dir) -> list[str]:
    """Labels of the first-level contrasts to model (by name or label, as the model says);
    every subject must have each of them."""
    group = spec.group
    wanted = group.conditions if group.design == "paired" else group.first_level_contrasts
    if not wanted:
        levels = sorted(maps, key=lambda lv: next(iter(maps[lv].values())).contrast)
    else:
        levels = _match_first_level(spec, maps, wanted, glmflow_dir)
    for level in levels:
        missing = [s for s in subjects if s not in maps[level]]
        if missing:
            name = next(iter(maps[level].values())).contrast
            raise GroupModelError(
                f"sub-{missing[0]} has no subject-level '{name}' map of task '{spec.task}' in "
                f"{glmflow_dir}; run the participant level for it, or leave it out with "
                "--participant-label"
            )
    return levels


def _match_first_level(spec, maps, wanted, glmflow_dir) -> list[str]:
    group = spec.group
    names = {next(iter(by_subject.values())).contrast: lv for lv, by_subject in maps.items()}
    by_name = {lv: lv for lv in maps} | names
    key = "conditions" if group.design == "paired" else "first_level_contrasts"
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise GroupModelError(
            f"First-level contrast '{missing[0]}' of group.{key} in {spec.source} has no "
            f"subject-level maps in {glmflow_dir} (available: {', '.join(sorted(names))}); "
            "fix the name or run the participant level with it"
        )
    return [by_name[name] for name in wanted]


def _participants(bids_dir, subjects: list[str], spec: ModelSpec) -> tuple[pd.DataFrame, str]:
    path = Path(bids_dir) / "participants.tsv"
    if path.is_file():
        return load_participants(path), str(path)
    group = spec.group
    if group.design in ("two-sample", "covariates") or group.covariates:
        raise GroupModelError(
            f"{path} does not exist, but the group design of {spec.source} reads its columns; "
            "add participants.tsv (participant_id plus those columns)"
        )
    return pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects]}), str(path)


def _generic_design(design_file, subjects: list[str], participant_label) -> tuple:
    """A user's design TSV, rows reordered to the subjects; it may select a subset."""
    design = read_design(design_file)
    rows = [str(r).removeprefix("sub-") for r in design.index]
    if len(rows) != len(set(rows)) or design.index.name != "label":
        raise GroupModelError(
            f"Design {design_file} needs a participant_id column with one row per subject "
            "(sub-01, sub-02 ...)"
        )
    unknown = [r for r in rows if r not in subjects]
    if unknown and not participant_label:
        raise GroupModelError(
            f"Subject sub-{unknown[0]} of design {design_file} has no subject-level maps; "
            "run the participant level for it or remove its row"
        )
    chosen = [s for s in subjects if s in rows]
    left_out = [s for s in subjects if s not in rows]
    if left_out and not participant_label:
        warnings.warn(
            f"Subject(s) sub-{', sub-'.join(left_out)} have maps but no row in design "
            f"{design_file}: not modelled (select subjects with --participant-label to "
            "silence this)",
            stacklevel=2,
        )
    design.index = pd.Index(rows, name="label")
    design = design.loc[chosen]
    design.index = pd.Index([f"sub-{s}" for s in chosen], name="label")
    # a subset of the rows may lose rank or degrees of freedom
    return check_design(design, source=str(design_file)), chosen


def _group_contrasts(spec: ModelSpec, design: pd.DataFrame, design_file) -> dict[str, Any]:
    group = spec.group
    if group.contrasts:
        return {
            c.name: {k: v for k, v in c.to_dict().items() if k != "name" and v}
            | {"stat_type": c.stat_type}
            for c in group.contrasts
        }
    if design_file is not None:
        raise GroupModelError(
            f"A design file ({design_file}) needs group contrasts: add group.contrasts to "
            f"{spec.source} (design columns: {', '.join(map(str, design.columns))})"
        )
    return default_group_contrasts(
        design,
        design_type=group.design,
        conditions=group.conditions,
        group_column=group.group_column,
    )


def output_contrast_name(first_level: Sequence[str], group_contrast: str) -> str:
    """Name of a group output: ``"<first-level> <group>"``; the group contrast ``mean``
    keeps the first-level name, and a paired model (two first-level contrasts) uses the
    group contrast's own name."""
    if len(first_level) != 1:
        return group_contrast
    if group_contrast == MEAN_CONTRAST:
        return first_level[0]
    return f"{first_level[0]} {group_contrast}"


def _analysis(first_level, rows, group_contrasts, *, dof: float) -> GroupAnalysis:
    contrasts, info = {}, {}
    for name, definition in group_contrasts.items():
        output = output_contrast_name(first_level, name)
        contrasts[output] = definition
        info[output] = {
            "FirstLevelContrasts": list(first_level),
            "GroupContrast": name,
            "Definition": definition,
            "dof": dof,
        }
    label = contrast_label(" vs ".join(first_level)) if len(first_level) == 2 else rows[0].label
    return GroupAnalysis(label, tuple(first_level), tuple(rows), contrasts, info)


def _shared_entities(maps: Sequence[SubjectMap]) -> dict[str, str]:
    common = dict(maps[0].entities)
    for item in maps[1:]:
        common = {k: v for k, v in common.items() if dict(item.entities).get(k) == v}
    return common


def write_design_tsv(plan: GroupPlan, folder: PathLike) -> Path:
    """The design TSV a fit reads, rewritten only when it changes (Nipype hashes mtimes)."""
    path = Path(folder) / f"task-{plan.spec.task}_design.tsv"
    text = plan.design.to_csv(sep="\t", index_label="label", lineterminator="\n")
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path
