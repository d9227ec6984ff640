"""A group model's page: methods, design and contrast matrices, subjects, maps and clusters.

The maps are the group level's own thresholded maps and cluster tables, at every inference
it wrote; the background is nilearn's MNI152 template (bundled with nilearn) on the maps'
grid when their space is an MNI space, else the maps' own mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.core.atlases import VolumeAtlas
from glmflow.core.group.contrasts import contrast_weights
from glmflow.core.report import figures, html
from glmflow.core.report.maps import atlas_credit, written_group_map
from glmflow.core.report.methods import group_methods
from glmflow.errors import GlmflowError

#: Sections every group page has (ids of its ``<section>`` elements).
GROUP_SECTIONS = ("methods", "design", "subjects", "maps", "warnings")


def _background(z_file: str) -> tuple[np.ndarray, np.ndarray]:
    """(background image, brain mask) on the grid of ``z_file``."""
    img = nib.load(z_file)
    inside = np.asanyarray(img.dataobj) != 0
    if "_space-MNI" not in Path(z_file).name:
        return inside.astype(np.float32), inside
    from nibabel.processing import resample_from_to
    from nilearn.datasets import load_mni152_template

    template = resample_from_to(load_mni152_template(), (img.shape[:3], img.affine), order=1)
    return np.asanyarray(template.dataobj, dtype=np.float32), inside


def _written_design(design_file: str | None, columns: list[str], rows: list[str]):
    """The design TSV if it is this model's (same columns and rows as its sidecars), else
    None: a later group run with another design rewrites ``task-<t>_design.tsv``."""
    if design_file is None:
        return None
    design = pd.read_csv(design_file, sep="\t", index_col=0)
    same = list(design.columns) == columns and list(design.index) == rows
    return design if same else None


def design_part(design_file, contrasts: list[dict], first: dict, notes: list[str]) -> list:
    columns, rows = list(first["Design"]["Columns"]), list(first["Design"]["Rows"])
    design = _written_design(design_file, columns, rows)
    weights = {}
    for contrast in contrasts:
        info = json.loads(Path(contrast["sidecar"]).read_text())["Contrast"]
        try:
            values = np.atleast_2d(
                contrast_weights(
                    info["Definition"], columns, name=info["Name"], source=contrast["sidecar"]
                )
            )
        except GlmflowError as err:  # said on the page; the maps are shown all the same
            notes.append(f"contrast matrix: {err}")
            continue
        for k, row in enumerate(values):
            weights[info["Name"] + (f" [{k + 1}]" if len(values) > 1 else "")] = row
    matrix = pd.DataFrame.from_dict(weights, orient="index", columns=columns)
    if design is None:
        notes.append(
            f"{Path(design_file).name if design_file else 'no design TSV'}: not this "
            f"model's design (columns {', '.join(columns)}); a later group run wrote it"
        )
        parts = [
            html.heading("Design matrix"),
            html.paragraph(f"Columns: {', '.join(columns)}; rows: {', '.join(rows)}."),
        ]
    else:
        parts = [
            html.heading("Design matrix"),
            html.svg(figures.matrix_svg(design.to_numpy(float), rows, columns,
                                        symmetric=False, label="group design")),
            html.table(design.reset_index()),
        ]  # fmt: skip
    parts += [
        html.heading("Contrast matrix"),
        html.svg(figures.matrix_svg(matrix.to_numpy(), list(matrix.index), columns,
                                    annotate=True, label="group contrast matrix")),
    ]  # fmt: skip
    return parts


def _inference_part(inference: dict, atlas: VolumeAtlas, anatomy, notes: list[str]) -> str:
    shown = written_group_map(inference["map"], inference["clusters"], atlas)
    background, brain = anatomy
    desc = Path(inference["map"]).name.split("_desc-")[1].split("_")[0]
    if not np.any(shown.thresholded):
        notes.append(f"{Path(inference['map']).name}: no voxel survives {desc}")
    return "\n".join([
        html.heading(f"Inference {desc} ({shown.setting})"),
        html.figure(figures.slices_figure(shown.thresholded, background, shown.centre),
                    f"thresholded slices, {desc}"),
        html.figure(figures.glass_brain_figure(shown.thresholded, brain), f"glass brain, {desc}"),
        html.table(shown.table, css="clusters", empty="No cluster survives."),
    ])  # fmt: skip


def _label(z_file: str) -> str:
    """The ``contrast-`` entity of a map's file name."""
    return next(p[9:] for p in Path(z_file).name.split("_") if p.startswith("contrast-"))


def group_page(
    title: str, methods: str, design_parts: list[str], subjects: pd.DataFrame,
    contrasts: list[dict], atlas: VolumeAtlas, notes: list[str],
) -> str:  # fmt: skip
    """A group page's HTML: the methods, design, subjects and each contrast's maps at every
    inference written (``contrasts``: plan entries with ``z`` and ``inferences``)."""
    anatomy = _background(contrasts[0]["z"])
    maps = []
    for contrast in contrasts:
        parts = [_inference_part(i, atlas, anatomy, notes) for i in contrast["inferences"]]
        if not parts:
            notes.append(f"group contrast '{contrast['names'][0]}': no thresholded map written "
                         "(inference 'none')")  # fmt: skip
        maps.append(html.section(f"group-contrast-{_label(contrast['z'])}",
                                 f"Group contrast {contrast['names'][0]}", *parts, level=3))
    n_subjects = subjects.iloc[:, 0].nunique()
    sections = [
        html.section("methods", "Methods", html.paragraph(methods, "methods")),
        html.section("design", "Design and contrasts", *design_parts),
        html.section("subjects", f"Subjects ({n_subjects})", html.table(subjects)),
        html.section("maps", "Maps", html.paragraph(atlas_credit(atlas)), *maps),
        html.section("warnings", "Warnings", html.warnings_list(notes)),
    ]  # fmt: skip
    return html.page(title, sections, nav=[("index.html", "All reports")])


def render_group_page(content: dict[str, Any], title: str, atlas: VolumeAtlas) -> str:
    """The HTML of one group model's page (``content``: :class:`~.find.PagePlan` content)."""
    contrasts = [c for c in content["contrasts"] if c["sidecar"] is not None]
    if not contrasts:
        raise ValueError(f"group model of {content['first_level']} has no unthresholded z map")
    first = json.loads(Path(contrasts[0]["sidecar"]).read_text())
    notes: list[str] = []
    design_parts = design_part(content["design"], contrasts, first, notes)
    table = subjects_table(first)
    methods = group_methods(first["GroupModel"], table.iloc[:, 0].nunique())
    return group_page(title, methods, design_parts, table, contrasts, atlas, notes)


def subjects_table(sidecar: dict[str, Any]) -> pd.DataFrame:
    """The design rows of a group sidecar, with the input map of each when it names them."""
    subjects = list(sidecar["Design"]["Rows"])
    inputs = sidecar.get("Inputs", [])
    return pd.DataFrame({"design row": subjects, **(
        {"input map": inputs} if len(inputs) == len(subjects) else {})})  # fmt: skip
