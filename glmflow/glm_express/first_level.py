"""The first level of the glm-express objects: one glmflow participant-level run, its maps.

``Subject.run_first_level_glm`` and ``Aggregator.run_all_models`` both end here: the
flags become a model (:mod:`.options`), the model one cached
:func:`glmflow.runners.participant.run_participant_level` over the chosen subjects, and the
subject-level z maps it wrote are handed back by contrast name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.core.group.subject_maps import SubjectMap, find_subject_maps
from glmflow.core.model import ModelSpec
from glmflow.core.outputs import sidecar_path
from glmflow.glm_express.options import first_level_spec
from glmflow.glm_express.project import Project, unsupported
from glmflow.runners.participant import ParticipantResult, run_participant_level

PLOT_TYPES = ("stat", "glass")
#: glm-express's display threshold of its stat-map plots
PLOT_THRESHOLD = 2.3


def model_for(project: Project, entry: dict, task: str, method: str, flags: dict) -> ModelSpec:
    """The model a first-level method asks for: the task entry as edited, then the flags."""
    spec = project.compile({task: entry}, task)
    return first_level_spec(spec, method=method, **flags)


def fit(
    project: Project,
    spec: ModelSpec,
    *,
    subjects: Sequence[str] | None,
    space: str,
    verbose: bool,
) -> ParticipantResult:
    """One participant-level run of ``spec`` (all subjects in one graph, in parallel)."""
    options = {"progress": bool(verbose), **project.options}
    return run_participant_level(
        bids_dir=project.bids_root,
        output_dir=project.output_dir,
        derivatives=project.derivatives,
        model=project.model_file(spec, spec.task),
        participant_label=list(subjects) if subjects is not None else None,
        tasks=[spec.task],
        space=space,
        **options,
    )


def check_first_level_call(user_design_matrices: Any, plot_type: str = "stat") -> None:
    if user_design_matrices is not None:
        raise unsupported(
            "user_design_matrices",
            "glmflow builds each run's design from its events, confounds and the task file "
            "inside the cached graph; describe the design there (or in a glmflow model "
            "file) and leave user_design_matrices=None",
        )
    if plot_type not in PLOT_TYPES:
        raise unsupported(f"plot_type={plot_type!r}", f"use one of {', '.join(PLOT_TYPES)}")


def subject_maps(
    project: Project, task: str, space: str | None
) -> dict[str, dict[str, SubjectMap]]:
    """Subject-level maps of ``task`` by contrast *name*, then subject."""
    found = find_subject_maps(project.glmflow_dir, task=task, space=space)
    by_name: dict[str, dict[str, SubjectMap]] = {}
    for per_subject in found.values():
        for subject, item in per_subject.items():
            by_name.setdefault(item.contrast, {})[subject] = item
    return by_name


def z_map(item: SubjectMap) -> Path:
    return item.effect.with_name(item.effect.name.replace("_stat-effect_", "_stat-z_"))


def summary_table(maps: dict[str, dict[str, SubjectMap]]) -> pd.DataFrame:
    """One row per subject and contrast: runs, dof and the z map's extremes and file."""
    rows = []
    for contrast, per_subject in maps.items():
        for subject, item in per_subject.items():
            path = z_map(item)
            data = np.asanyarray(nib.load(path).dataobj)
            sidecar = json.loads(sidecar_path(path).read_text())
            rows.append({
                "subject": subject,
                "contrast": contrast,
                "runs": len(sidecar["Contrast"].get("Runs", [])),
                "dof": item.dof,
                "z_min": float(data.min()),
                "z_max": float(data.max()),
                "z_map": str(path),
            })  # fmt: skip
    columns = ["subject", "contrast", "runs", "dof", "z_min", "z_max", "z_map"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["subject", "contrast"], ignore_index=True)


def plot_maps(paths: Sequence[Path], plot_type: str) -> list[Path]:
    """glm-express's plots of z maps (thresholded at 2.3), beside each map in ``figures``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import plotting

    written = []
    for path in paths:
        folder = path.parent.parent / "figures"
        folder.mkdir(exist_ok=True)
        target = folder / path.name.replace(".nii.gz", f"_plot-{plot_type}.png")
        title = path.name.split("_contrast-")[1].split("_stat-")[0]
        if plot_type == "stat":
            display = plotting.plot_stat_map(
                str(path), threshold=PLOT_THRESHOLD, colorbar=False, draw_cross=False,
                title=title,
            )  # fmt: skip
        else:
            display = plotting.plot_glass_brain(
                str(path), threshold=PLOT_THRESHOLD, plot_abs=False, display_mode="lyrz",
                title=title,
            )  # fmt: skip
        display.savefig(str(target))
        display.close()
        plt.close("all")
        written.append(target)
    return written


__all__ = [
    "check_first_level_call",
    "fit",
    "model_for",
    "plot_maps",
    "subject_maps",
    "summary_table",
    "z_map",
]
