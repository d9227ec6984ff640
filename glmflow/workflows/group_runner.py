"""Check, build and run the group level: what the CLI and the Python API call.

The group level reads the subject-level maps that the participant level wrote in
``OUTPUT_DIR/glmflow/sub-*/func`` by their BIDS names (the folder is never indexed with
pybids) and ``participants.tsv`` of the raw dataset, checks everything, then fits one group
model per first-level contrast (one in all for a paired design) and writes dataset-level
maps at the top of ``OUTPUT_DIR/glmflow``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import pandas as pd

from glmflow.core.group import (
    check_design,
    check_group_inputs,
    contrast_weights,
    default_group_contrasts,
    load_participants,
    make_group_design,
    read_design,
)
from glmflow.core.model import MEAN_CONTRAST, ModelSpec, load_model, locate
from glmflow.core.outputs import (
    ENTITY_KEYS,
    atomic_write_text,
    check_output_dir,
    contrast_label,
    contrast_labels,
    write_dataset_description,
    write_derivatives,
)
from glmflow.errors import GroupModelError, ModelSpecError
from glmflow.workflows.group_level import init_group_level_wf
from glmflow.workflows.runner import execute, validate_work_dir

LOGGER = logging.getLogger("glmflow")
PathLike = str | os.PathLike
_KEY_TO_ENTITY = {key: name for name, key in ENTITY_KEYS.items()}
_EFFECT_SUFFIX = re.compile(r"_stat-effect_statmap\.nii(?:\.gz)?$")
_PAIR = re.compile(r"^([a-z]+)-([A-Za-z0-9]+)$")


@dataclass(frozen=True)
class SubjectMap:
    """One subject-level effect map written by the participant level (and its variance)."""

    subject: str
    contrast: str
    label: str
    effect: Path
    variance: Path
    dof: float | None
    entities: tuple[tuple[str, str], ...]


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


@dataclass(frozen=True)
class GroupResult:
    """What a group-level run produced."""

    output_dir: Path
    plans: tuple[GroupPlan, ...] = field(repr=False)
    files: tuple[Path, ...] = ()


# ---------------------------------------------------------------------------------------------
# Finding the subject maps


def find_subject_maps(
    glmflow_dir: PathLike, *, task: str, space: str | None
) -> dict[str, dict[str, SubjectMap]]:
    """Subject-level effect maps of ``task`` (and ``space``) by contrast label, then subject.

    Reads ``sub-*/func/*_stat-effect_statmap.nii.gz`` names and their sidecars (level,
    contrast name, dof); run-level maps are not subject maps and are passed over.
    """
    found: dict[str, dict[str, SubjectMap]] = {}
    for path in sorted(Path(glmflow_dir).glob("sub-*/func/sub-*_stat-effect_statmap.nii*")):
        entities = _entities(path.name)
        if entities is None or entities.get("task") != task or "run" in entities:
            continue
        if space is not None and entities.get("space") != space:
            continue
        sidecar = path.with_name(_EFFECT_SUFFIX.sub("_stat-effect_statmap.json", path.name))
        if not sidecar.is_file():
            raise GroupModelError(
                f"Subject map {path} has no JSON sidecar {sidecar.name}; rerun the "
                "participant level to write it"
            )
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as err:
            raise GroupModelError(
                f"Sidecar {sidecar} cannot be read ({err}); rerun the participant level"
            ) from None
        if meta.get("Level") != "subject":
            continue
        subject, label = entities.pop("subject"), entities.pop("contrast")
        entities.pop("stat")
        contrast = meta.get("Contrast", {})
        item = SubjectMap(
            subject=subject,
            contrast=str(contrast.get("Name", label)),
            label=label,
            effect=path,
            variance=path.with_name(path.name.replace("_stat-effect_", "_stat-variance_")),
            dof=contrast.get("dof"),
            entities=tuple(sorted(entities.items())),
        )
        other = found.setdefault(label, {}).setdefault(subject, item)
        if other is not item:
            raise GroupModelError(
                f"sub-{subject} has two subject-level '{item.contrast}' maps for task {task} "
                f"({other.effect.name} and {path.name}); select one with --space or remove one"
            )
    return found


def _entities(name: str) -> dict[str, str] | None:
    """pybids entity names -> labels of a glmflow map name, plus ``contrast`` and ``stat``."""
    stem = _EFFECT_SUFFIX.sub("_stat-effect", name)
    entities = {}
    for part in stem.split("_"):
        match = _PAIR.match(part)
        if match is None:
            return None
        key, value = match.groups()
        entities[_KEY_TO_ENTITY.get(key, key)] = value
    return entities if "subject" in entities and "contrast" in entities else None


# ---------------------------------------------------------------------------------------------
# Planning


def plan_group_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    participant_label: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    space: str | None = "MNI152NLin2009cAsym",
    design: PathLike | None = None,
    mask: PathLike | None = None,
    smoothing_fwhm: float | None = None,
    inference: Mapping[str, Any] | None = None,
) -> list[GroupPlan]:
    """Load the model, find the subject maps and check the group design and contrasts.

    Only TSV, JSON sidecars and NIfTI headers are read, and nothing is written: every
    mistake raises a :class:`glmflow.GlmflowError` here, before the graph exists.

    Parameters
    ----------
    bids_dir
        The raw dataset (its ``participants.tsv`` holds groups and covariates).
    output_dir
        The participant level's output folder (maps in ``output_dir/glmflow``).
    model
        Model file; its ``group`` section (glm-express: ``group_level_regressors``).
    participant_label, tasks, space
        Selection, as for the participant level.
    design
        A design TSV (one row per subject, a ``participant_id`` or ``label`` column, numeric
        regressors) used instead of the model's design: a generic design.
    mask
        Group mask (default: nilearn's, computed from the maps).
    smoothing_fwhm
        Overrides ``group.smoothing_fwhm`` (0: none).
    inference
        Overrides of ``group.inference`` keys, e.g. ``{"method": "permutation",
        "n_perm": 1000, "seed": 1}``.
    """
    glmflow_dir = Path(output_dir) / "glmflow"
    specs = [load_model(model, task) for task in tasks] if tasks else [load_model(model)]
    if mask is not None and not Path(mask).is_file():
        raise GroupModelError(f"Group mask {mask} does not exist; check the path")
    plans = []
    for spec in specs:
        spec = _override(spec, smoothing_fwhm, inference)
        maps = find_subject_maps(glmflow_dir, task=spec.task, space=space)
        if not maps:
            where = f" in space {space}" if space else ""
            raise GroupModelError(
                f"No subject-level maps of task '{spec.task}'{where} in {glmflow_dir}; run "
                "the participant level first (glmflow BIDS_DIR OUTPUT_DIR participant ...)"
            )
        plans.append(_plan_task(spec, maps, bids_dir, participant_label, design, glmflow_dir))
    return plans


def _override(
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


def _plan_task(spec, maps, bids_dir, participant_label, design_file, glmflow_dir) -> GroupPlan:
    group = spec.group
    subjects = _select_subjects(spec, maps, participant_label, glmflow_dir)
    if design_file is not None:
        design, subjects = _generic_design(design_file, subjects, participant_label)
        source = str(design_file)
    levels = _select_first_level(spec, maps, subjects, glmflow_dir)
    if design_file is None:
        participants, source = _participants(bids_dir, subjects, spec)
        design = make_group_design(
            participants,
            subjects=[f"sub-{s}" for s in subjects],
            design=group.design,
            group_column=group.group_column,
            conditions=group.conditions,
            covariates=group.covariates,
            demean_covariates=group.demean_covariates,
            source=source,
        )
    group_contrasts = _group_contrasts(spec, design, design_file)
    for name, definition in group_contrasts.items():
        contrast_weights(definition, design.columns, name=name, source=spec.source)
    if group.design == "paired" and design_file is None:
        # make_group_design's paired rows: every subject in the first condition, then the second
        rows = [maps[level][s] for level in levels for s in subjects]
        inputs = [(tuple(maps[level][subjects[0]].contrast for level in levels), rows)]
    else:
        inputs = [
            ((maps[level][subjects[0]].contrast,), [maps[level][s] for s in subjects])
            for level in levels
        ]
    analyses = [
        _analysis(first_level, rows, group_contrasts, dof=_dof(group.method, design, rows))
        for first_level, rows in inputs
    ]
    for analysis in analyses:
        variances = [str(m.variance) for m in analysis.maps] if group.method == "fixed" else None
        check_group_inputs(
            [str(m.effect) for m in analysis.maps],
            variance_files=variances,
            target_affine=group.target_affine,
        )
    contrast_labels([n for a in analyses for n in a.contrasts], source=spec.source)
    entities = _shared_entities([m for a in analyses for m in a.maps])
    return GroupPlan(spec, design, source, entities, tuple(analyses))


def _dof(method: str, design: pd.DataFrame, rows: Sequence[SubjectMap]) -> float:
    """Degrees of freedom of the group statistic (as glmflow.core.group computes it)."""
    if method == "fixed":
        return float(sum(m.dof or 100.0 for m in rows))
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


# ---------------------------------------------------------------------------------------------
# Building and running


def _mem_gb(maps: Sequence[SubjectMap]) -> float:
    """Peak memory of a fit or a permutation node: a few float64 copies of all maps."""
    voxels = math.prod(nib.load(maps[0].effect).shape[:3])
    return round(max(0.5, 0.3 + 4 * 8 * voxels * len(maps) / 1e9), 2)


def _write_design(plan: GroupPlan, folder: Path) -> Path:
    """The design TSV a fit reads, rewritten only when it changes (Nipype hashes mtimes)."""
    path = folder / f"task-{plan.spec.task}_design.tsv"
    text = plan.design.to_csv(sep="\t", index_label="label", lineterminator="\n")
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path


def init_group_wf(
    *,
    plans: Sequence[GroupPlan],
    output_dir: str,
    design_files: Mapping[str, str],
    mask: str | None = None,
    n_jobs: int = 1,
    name: str = "glmflow_group_wf",
):
    """The group-level graph: one :func:`init_group_level_wf` per analysis of every plan.

    ``design_files`` maps a task to its design TSV. Nothing is run while building.
    """
    from nipype.pipeline import engine as pe

    workflow = pe.Workflow(name=name)
    for plan in plans:
        for analysis in plan.analyses:
            metadata = {
                "Model": {
                    "Name": plan.spec.name,
                    "Task": plan.spec.task,
                    "Source": plan.spec.source,
                },
                "GroupModel": plan.spec.group.to_dict(),
                "Design": {
                    "Columns": [str(c) for c in plan.design.columns],
                    "Rows": [str(r) for r in plan.design.index],
                    "Source": plan.design_source,
                },
                "Inputs": [m.effect.name for m in analysis.maps],
                "Contrasts": analysis.info,
            }
            wf = init_group_level_wf(
                contrasts=analysis.contrasts,
                group=plan.spec.group,
                output_dir=output_dir,
                entities=plan.entities,
                metadata=metadata,
                contrast_source=plan.spec.source,
                modelled=" vs ".join(analysis.first_level),
                use_mask=mask is not None,
                mem_gb=_mem_gb(analysis.maps),
                n_jobs=n_jobs,
                name=f"task_{plan.spec.task}_{analysis.name}_wf",
            )
            inputs = wf.get_node("inputnode").inputs
            inputs.effect_files = [str(m.effect) for m in analysis.maps]
            inputs.design_file = design_files[plan.spec.task]
            if plan.spec.group.method == "fixed":
                inputs.variance_files = [str(m.variance) for m in analysis.maps]
                inputs.dofs = [float(m.dof or 100.0) for m in analysis.maps]
            if mask is not None:
                inputs.mask_file = str(Path(mask).absolute())
            workflow.add_nodes([wf])
    return workflow


def run_group_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    model: PathLike,
    work_dir: PathLike | None = None,
    plugin: str = "MultiProc",
    plugin_args: dict[str, Any] | None = None,
    n_procs: int | None = None,
    mem_gb: float | None = None,
    poll_interval: float | None = None,
    n_jobs: int = 1,
    **selection: Any,
) -> GroupResult:
    """Fit the group models of the participant level's subject maps; write BIDS maps.

    Parameters
    ----------
    bids_dir, output_dir, model
        The raw dataset (``participants.tsv``), the participant level's output folder
        (maps are read from and written to ``output_dir/glmflow``) and the model file.
    work_dir
        Nipype working directory (the cache); default ``./work``.
    plugin, plugin_args, n_procs, mem_gb, poll_interval
        Execution, as :func:`glmflow.workflows.runner.run_participant_level`.
    n_jobs
        Processes nilearn uses inside one fit or permutation node (never hashed).
    **selection
        As :func:`plan_group_level` (participant_label, tasks, space, design, mask,
        smoothing_fwhm, inference).

    Returns
    -------
    GroupResult
        ``files``: the dataset-level maps, tables and designs written.
    """
    work_dir = Path(work_dir or Path.cwd() / "work").absolute()
    out = check_output_dir(Path(output_dir) / "glmflow", bids_dir)
    validate_work_dir(work_dir, bids_dir, None)
    plans = plan_group_level(bids_dir=bids_dir, output_dir=output_dir, model=model, **selection)
    inputs_dir = work_dir / "group_designs"
    design_files = {plan.spec.task: str(_write_design(plan, inputs_dir)) for plan in plans}
    mask = selection.get("mask")
    workflow = init_group_wf(
        plans=plans, output_dir=str(out), design_files=design_files,
        mask=None if mask is None else str(mask), n_jobs=n_jobs,
    )  # fmt: skip
    workflow.base_dir = str(work_dir)
    written = execute(
        workflow,
        plugin=plugin,
        plugin_args=plugin_args,
        n_procs=n_procs,
        mem_gb=mem_gb,
        poll_interval=poll_interval,
    )
    files = []
    for plan in plans:
        files += write_derivatives(
            out,
            entities=plan.entities,
            level="dataset",
            maps=[],
            design_files=[design_files[plan.spec.task]],
            link=False,
        )
    if not (out / "dataset_description.json").is_file():
        write_dataset_description(out, source_datasets=[bids_dir])
    return GroupResult(out, tuple(plans), tuple(written + files))


__all__ = [
    "GroupAnalysis",
    "GroupPlan",
    "GroupResult",
    "SubjectMap",
    "find_subject_maps",
    "init_group_wf",
    "plan_group_level",
    "run_group_level",
]
