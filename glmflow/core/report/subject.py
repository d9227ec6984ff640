"""A subject's page: methods, each run's design and motion, each contrast's map and clusters."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from glmflow.core.atlases import VolumeAtlas
from glmflow.core.memo import (
    code_identity,
    content_digest,
    file_identity,
    memo_key,
    memoized_array,
    recall_value,
    remember_value,
)
from glmflow.core.model import ConfoundsSpec, InferenceSpec
from glmflow.core.outputs import contrast_label
from glmflow.core.report import figures, html
from glmflow.core.report.maps import atlas_credit, mean_image, threshold_subject_map
from glmflow.core.report.methods import first_level_methods
from glmflow.core.report.runs import VIF_LIMIT, contrast_fields, contrast_matrix, summarize_run

#: Sections every subject page has (ids of its ``<section>`` elements).
SUBJECT_SECTIONS = ("methods", "runs", "contrasts", "warnings")


@dataclass(frozen=True)
class TaskModel:
    """What a page needs of the model one task ran with, read from the written outputs."""

    methods: str  # the methods paragraph
    confounds: ConfoundsSpec | None  # None: no confounds rule to apply again (BSM)
    inference: InferenceSpec  # how the page thresholds the task's subject maps


def task_of(name: str) -> str:
    """The ``task-`` entity of a BIDS file name ("" without one)."""
    return next((part[5:] for part in name.split("_") if part.startswith("task-")), "")


def _glmflow_models(content: dict[str, Any]) -> dict[str, TaskModel]:
    """One TaskModel per task: the ModelSpec its maps' sidecars recorded."""
    specs: dict[str, dict[str, Any]] = {}
    sidecars = [s for run in content["runs"] for s in run["maps"]]
    for sidecar in sidecars + [c["sidecar"] for c in content["contrasts"]]:
        spec = json.loads(Path(sidecar).read_text())["ModelSpec"]
        specs.setdefault(spec["task"], spec)
    if not specs:
        raise ValueError(f"subject {content['subject']} has no run maps to report on")
    return {
        task: TaskModel(first_level_methods(spec), ConfoundsSpec.from_dict(spec["confounds"]),
                        InferenceSpec.from_dict(spec["group"]["inference"]))
        for task, spec in specs.items()
    }  # fmt: skip


def _task_model(models: dict[str, TaskModel], name: str) -> TaskModel:
    return models.get(name, next(iter(models.values())))


def _vif_table(summary) -> str:
    frame = summary.vif.rename("VIF").reset_index().rename(columns={"index": "regressor"})
    frame["collinear"] = np.where(frame["VIF"] > VIF_LIMIT, "yes", "")
    return html.table(frame)


def _fragment_key(kind: str, *parts: Any) -> str:
    return memo_key("report", kind, code_identity(), *parts)


def _background(run: dict[str, Any], first: int, memo_dir=None) -> tuple | None:
    """A volume run's mean image and brain mask (None without both files, or on a surface)."""
    if run.get("surface") or run["bold"] is None or run["mask"] is None:
        return None
    # the mean of the BOLD (the page's slowest read) is remembered by the BOLD's identity
    key = _fragment_key("mean", run["bold"], file_identity(run["bold"]), first)
    mean = memoized_array(memo_dir, key, lambda: mean_image(run["bold"], first=first))
    return mean, np.asanyarray(nib.load(run["mask"]).dataobj) > 0


def _mask_figure(run: dict[str, Any], background: tuple | None) -> str:
    if run.get("surface"):
        return html.paragraph(f"A surface run ({run['surface']}): no brain mask to show.")
    if background is None:
        return html.paragraph("No BOLD or brain mask found in the fMRIPrep folder.")
    alt = f"brain mask outline on the mean image of {run['name']}"
    return html.figure(figures.mask_outline_figure(*background), alt)


def _run_section(run: dict[str, Any], model: TaskModel, notes: list[str], memo_dir=None):
    """A run's section and its background (mean image, mask) for the contrast figures.

    Everything but the contrast matrix is remembered under the identities of the files it
    shows and the confounds rule: a contrast edit draws only the matrix again."""
    parts, background = _remembered_run_parts(run, model, memo_dir)
    notes += [f"{run['name']}: {note}" for note in parts["warnings"]]
    columns = parts["columns"]
    weights = contrast_matrix(run["maps"], columns)
    shown = [c for c in columns if weights[c].any()] if len(weights) else columns
    matrix = (
        html.svg(figures.matrix_svg(weights[shown].to_numpy(), list(weights.index), shown,
                                    annotate=True, label=f"contrast matrix of {run['name']}"))
        if len(weights) else html.paragraph("None.")
    )  # fmt: skip
    return html.section(f"run-{run['name']}", run["name"], *parts["design"],
                        html.heading("Contrast matrix"), matrix, *parts["motion"],
                        level=3), background  # fmt: skip


def _remembered_run_parts(run: dict[str, Any], model: TaskModel, memo_dir) -> tuple[dict, Any]:
    """:func:`_run_parts` from the memo, under the identities (inode, size, modification
    time, as the mean image's key) of every file they read, and its background."""
    files = [run.get(k) for k in ("design", "design_sidecar", "confounds", "bold", "mask")]
    if run.get("confounds"):  # the compcor strategies read the confounds' sidecar
        files.append(str(Path(run["confounds"]).with_suffix(".json")))
    ids = [file_identity(f) if f and Path(f).is_file() else None for f in files]
    rule = model.confounds.to_dict() if model.confounds is not None else None
    key = _fragment_key("run", run["name"], run.get("surface"), files, ids, rule)
    remembered = recall_value(memo_dir, key)
    if remembered is not None:
        return remembered, _background(run, remembered["first"], memo_dir)
    parts, background = _run_parts(run, model, memo_dir)
    remember_value(memo_dir, key, parts)
    return parts, background


def _run_parts(run: dict[str, Any], model: TaskModel, memo_dir) -> tuple[dict, Any]:
    """A run's design, correlation, VIF, FD and mask parts, its warnings and design columns."""
    confounds = model.confounds
    summary = summarize_run(run["design"], run["confounds"], confounds)
    columns = [str(c) for c in summary.design.columns]
    name = run["name"]
    corr = summary.correlation
    design = [
        html.heading("Design matrix"),
        html.svg(figures.design_svg(summary.design.to_numpy(float), columns, f"design of {name}")),
        html.heading("Regressor correlations and variance inflation factors"),
        html.svg(figures.matrix_svg(corr.to_numpy(), list(corr.index), list(corr.columns),
                                    label=f"regressor correlations of {name}")),
        _vif_table(summary),
    ]  # fmt: skip
    motion = [html.heading("Framewise displacement")]
    if summary.fd is not None:
        tr = _repetition_time(run)
        text = (
            f"FD (mm), {int(summary.censored.sum())} of {len(summary.fd)} volumes censored (red)"
        )
        if tr is None:  # the axis counts volumes
            tr, text = 1.0, f"{text}; x axis in volumes (no design sidecar or BOLD gives the TR)"
        line = (confounds or ConfoundsSpec()).fd_threshold
        motion.append(html.svg(figures.trace_svg(summary.fd, summary.censored, step_s=tr,
                                                 line=line, label=text)))  # fmt: skip
    else:
        motion.append(html.paragraph("No framewise_displacement column in the confounds."))
    first = int(np.argmin(summary.censored)) if summary.censored.any() else 0
    background = _background(run, first, memo_dir)
    motion += [html.heading("Brain mask on the mean image"), _mask_figure(run, background)]
    parts = {"design": design, "motion": motion, "columns": columns, "first": first,
             "warnings": list(summary.warnings)}  # fmt: skip
    return parts, background


def _repetition_time(run: dict[str, Any]) -> float | None:
    """From the design's frame times, else the BOLD's header (a BSM design has no sidecar);
    None when neither is there (a BSM run whose fMRIPrep BOLD was not found)."""
    if not Path(run["design_sidecar"]).is_file():
        if run["bold"] is None:
            return None
        return float(nib.load(run["bold"]).header.get_zooms()[3])
    frames = json.loads(Path(run["design_sidecar"]).read_text()).get("FrameTimes", [0.0, 1.0])
    return float(frames[1] - frames[0]) if len(frames) > 1 else 1.0


def _remembered_contrast_section(contrast, inference, atlas, anatomy, memo_dir):
    """:func:`_contrast_section`, remembered under the contents of everything it shows: the
    contrast's files, the inference, the atlas and the background (an edit that left a
    contrast's maps as they were draws it again from the memo, the same bytes)."""
    if memo_dir is None or "surface" in contrast:
        return _contrast_section(contrast, inference, atlas, anatomy)
    # every file the section shows, by its bytes (relative paths too: a map edited in place
    # must not recall its old section); of the sidecar (it holds the whole model) the
    # section shows the dropped conditions
    dropped = _dropped(contrast)
    files = {k: content_digest(v) for k, v in sorted(contrast.items()) if k != "sidecar"
             and isinstance(v, str) and Path(v).is_file()}  # fmt: skip
    background = hashlib.sha256()
    for array in anatomy or ():
        background.update(np.ascontiguousarray(array).tobytes())
    key = _fragment_key(
        "contrast", contrast, files, dropped, inference.to_dict(), atlas.name, atlas.labels,
        anatomy is not None and background.hexdigest(),
    )  # fmt: skip
    remembered = recall_value(memo_dir, key)
    if remembered is not None:
        return remembered[0], remembered[1]
    text, notes = _contrast_section(contrast, inference, atlas, anatomy)
    remember_value(memo_dir, key, [text, notes])
    return text, notes


def _dropped(contrast: dict[str, Any]) -> list[str]:
    """The conditions the contrast's sidecar says were dropped from it."""
    return list(contrast_fields(json.loads(Path(contrast["sidecar"]).read_text()))[2])


def _contrast_section(contrast, inference: InferenceSpec, atlas, anatomy) -> tuple[str, list]:
    if "surface" in contrast:
        from glmflow.core.report.surfaces import subject_surface_section

        return subject_surface_section(contrast, inference), []
    name, task = contrast["names"]
    shown = threshold_subject_map(contrast["z"], inference, atlas)
    dropped = _dropped(contrast)
    notes = [f"contrast '{name}': dropped conditions {', '.join(dropped)}"] if dropped else []
    node = contrast.get("node")  # a BIDS Stats Model's node
    if anatomy is None or anatomy[0].shape != shown.thresholded.shape:
        anatomy = (np.zeros_like(shown.thresholded), shown.thresholded != 0)
    background, brain = anatomy
    parts = [
        html.paragraph(f"Task {task}{f', node {node}' if node else ''}; shown at "
                       f"{shown.setting}."),
        html.figure(figures.slices_figure(shown.thresholded, background, shown.centre),
                    f"thresholded slices of {name}"),
        html.figure(figures.glass_brain_figure(shown.thresholded, brain),
                    f"glass brain of {name}"),
        html.table(shown.table, css="clusters", empty="No cluster survives."),
    ]  # fmt: skip
    section_id = f"contrast-{task}-{contrast_label(name)}" + (f"-node-{node}" if node else "")
    return html.section(section_id, f"Contrast {name}", *parts, level=3), notes


def _methods_section(models: dict[str, TaskModel]) -> str:
    if len(models) == 1:
        return html.section("methods", "Methods",
                            html.paragraph(next(iter(models.values())).methods, "methods"))
    parts = [part for task, model in models.items()
             for part in (html.heading(f"Task {task}"), html.paragraph(model.methods, "methods"))]
    return html.section("methods", "Methods", *parts)  # fmt: skip


def render_subject_page(
    content: dict[str, Any], title: str, atlas: VolumeAtlas,
    models: dict[str, TaskModel] | None = None, memo_dir: str | None = None,
) -> str:  # fmt: skip
    """The HTML of one subject's page (``content``: :class:`~.find.PagePlan` content);
    ``models``: per task (default: the ModelSpec glmflow's sidecars recorded); ``memo_dir``:
    where the runs' mean images, design and motion parts and the contrasts' sections are
    remembered (a contrast edit draws only the contrasts it changed and the runs' contrast
    matrices)."""
    models = _glmflow_models(content) if models is None else models
    notes: list[str] = []
    runs, backgrounds = [], []
    for run in content["runs"]:
        model = _task_model(models, task_of(run["name"]))
        text, mean = _run_section(run, model, notes, memo_dir)
        runs.append(text)
        backgrounds.append(mean)
    anatomy = next((b for b in backgrounds if b is not None), None)
    contrasts = []
    for contrast in content["contrasts"]:
        inference = _task_model(models, contrast["names"][1]).inference
        text, more = _remembered_contrast_section(contrast, inference, atlas, anatomy, memo_dir)
        contrasts.append(text)
        notes += more
    notes += [f"{name}: not drawn in this report: {reason}"
              for name, reason in content.get("not_drawn", [])]  # fmt: skip
    sections = [
        _methods_section(models),
        html.section("runs", "Runs", *runs),
        html.section("contrasts", "Contrasts", html.paragraph(atlas_credit(atlas)), *contrasts),
        html.section("warnings", "Warnings", html.warnings_list(notes)),
    ]
    return html.page(title, sections, nav=[("index.html", "All reports")])
