"""glm-express's ``GroupLevel``: group models of the subject maps, by glmflow's group level.

Each model is one :func:`glmflow.runners.group.run_group_level` call on the subject-level
*effect* maps the first level wrote (glm-express 2.0.3 fitted its z maps), with the task
file's group design (``group_level_regressors`` as demeaned covariates beside the mean).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import pandas as pd

from glmflow.core.clusters import clusters_table
from glmflow.core.group.subject_maps import SubjectMap, map_entities
from glmflow.core.model import ContrastSpec, ModelSpec
from glmflow.core.model.group_specs import GroupSpec
from glmflow.core.outputs import contrast_label, sidecar_path
from glmflow.errors import ContrastError, GroupModelError, ModelSpecError
from glmflow.glm_express import first_level
from glmflow.glm_express.project import Project, unsupported
from glmflow.runners.group import GroupResult, run_group_level

PathLike = str | os.PathLike
HEIGHT_CONTROLS = ("fdr", "fpr", "bonferroni")
PLOT_STYLES = ("ortho", "glass")
MAP_STATS = ("effect", "variance", "t", "p", "z")
#: glm-express's ``direction``: the sign of the group mean; -1 is this group contrast
NEGATIVE_MEAN = "minusMean"


class GroupLevel:
    """Group models of one task's subject maps, with glm-express 2.0.3's arguments.

    ``**glmflow`` as :class:`glmflow.glm_express.Subject`; ``template_space`` chooses the
    maps' space when the first level wrote several (None: the only one).
    """

    def __init__(
        self, task: str, bids_root: PathLike = "./bids", *, template_space: str | None = None,
        **glmflow: Any,
    ) -> None:  # fmt: skip
        self.task = task
        self.bids_root = str(bids_root)
        self._project = Project.open(bids_root, **glmflow)
        self._project.check_labels(task=task)
        self._space = self._project.space(template_space, task) if template_space else None
        self.task_file = self._project.task_entry(task)
        self.output_path = self._project.glmflow_dir
        self.result: GroupResult | None = None
        self.last_maps: dict[str, Path] = {}
        self.last_threshold: float | None = None

    @property
    def _maps(self) -> dict[str, dict[str, SubjectMap]]:
        return first_level.subject_maps(self._project, self.task, self._space)

    @property
    def subjects(self) -> list[str]:
        """Subjects with subject-level maps of the task."""
        return sorted({s for per_subject in self._maps.values() for s in per_subject})

    @property
    def all_contrasts(self) -> dict[str, list[str]]:
        """The first level's condition maps and contrast maps, by name."""
        names = sorted(self._maps)
        conditions = [n for n in names if _is_condition(next(iter(self._maps[n].values())))]
        return {"conditions": conditions, "contrasts": [n for n in names if n not in conditions]}

    # ---- the subject maps
    def get_brain_data(
        self, contrast: str, smoothing: float, discard_modulated: bool = True,
        catch_duplicates: bool = True,
    ) -> list[str]:  # fmt: skip
        """The subject-level effect maps of ``contrast`` (name or file label), one per
        subject, checked to be smoothed with ``smoothing`` mm at the first level."""
        found = self._subject_maps(contrast, smoothing)
        return [str(found[s].effect) for s in sorted(found)]

    def make_design_matrix(self, direction: int = 1) -> pd.DataFrame:
        """glm-express's intercept-only design (the models use the task file's design)."""
        _check_direction(direction)
        return pd.DataFrame({"intercept": [float(direction)] * len(self.subjects)},
                            index=pd.Index(self.subjects, name="subject_label"))  # fmt: skip

    # ---- the models
    def uncorrected_model(
        self, contrast: str, sub_smoothing: float = 8.0, group_smoothing: float | None = None,
        direction: int = 1, return_map: bool = True, save_output: bool = False,
    ) -> nib.Nifti1Image | None:  # fmt: skip
        """The group z map of ``contrast`` (``last_maps``: all the model's maps by statistic;
        glmflow writes them whatever ``save_output``)."""
        result = self._fit(contrast, sub_smoothing, group_smoothing, direction, {"method": "none"})
        return nib.load(self._output(result, "z", None)) if return_map else None

    def corrected_model(
        self, contrast: str, existing_model: Any = None, height_control: str = "fdr",
        alpha: float = 0.05, plot_style: str = "ortho", cluster_threshold: int | None = None,
        sub_smoothing: float = 8.0, group_smoothing: float | None = None, direction: int = 1,
        return_map: bool = True, save_output: bool = False,
    ) -> nib.Nifti1Image | None:  # fmt: skip
        """The thresholded group z map (``last_threshold``: the z threshold applied;
        ``last_maps``: the model's unthresholded maps by statistic)."""
        if existing_model is not None:
            raise unsupported(
                "existing_model",
                "glmflow caches the group fit: call corrected_model with the same contrast "
                "and smoothing and the fit is reused",
            )
        if height_control not in HEIGHT_CONTROLS:
            raise ModelSpecError(
                f"height_control must be one of {', '.join(HEIGHT_CONTROLS)}. "
                f"Got {height_control!r} instead."
            )
        if plot_style not in PLOT_STYLES:
            raise ModelSpecError(
                f"plot_style must be one of {', '.join(PLOT_STYLES)}. Got {plot_style!r} instead."
            )
        inference = {"method": height_control, "alpha": alpha,
                     "cluster_threshold": cluster_threshold or 0}  # fmt: skip
        result = self._fit(contrast, sub_smoothing, group_smoothing, direction, inference)
        path = self._output(result, "z", height_control)
        self.last_threshold = json.loads(sidecar_path(path).read_text()).get("Threshold")
        if save_output:
            first_level.plot_maps([path], "stat" if plot_style == "ortho" else "glass")
        return nib.load(path) if return_map else None

    def _fit(self, contrast, sub_smoothing, group_smoothing, direction, inference) -> GroupResult:
        _check_direction(direction)
        name = next(iter(self._subject_maps(contrast, sub_smoothing).values())).contrast
        spec = self._group_spec(name, group_smoothing, direction, inference)
        self.result = run_group_level(
            bids_dir=self._project.bids_root, output_dir=self._project.output_dir,
            model=self._project.model_file(spec, self.task), tasks=[self.task],
            space=self._space, **{"progress": False, **self._project.options},
        )  # fmt: skip
        self.last_maps = {s: self._output(self.result, s, None) for s in MAP_STATS}
        return self.result

    def _subject_maps(self, contrast: str, smoothing: Any) -> dict[str, SubjectMap]:
        """The subject maps of ``contrast`` (its name or file label) by subject, checked to be
        smoothed with ``smoothing`` mm; a missing contrast is one line naming it and the
        contrasts there are."""
        maps = self._maps
        if not maps:
            raise GroupModelError(
                f"No subject-level maps of task '{self.task}' in {self.output_path}; run "
                "Subject(...).run_first_level_glm() or Aggregator(...).run_all_models() first"
            )
        found = maps.get(contrast) or next(
            (m for m in maps.values() if next(iter(m.values())).label == contrast), None
        )
        if found is None:
            close = difflib.get_close_matches(contrast, list(maps), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ContrastError(
                f"Contrast '{contrast}' has no subject-level maps of task '{self.task}' in "
                f"{self.output_path}: {hint}(contrasts: {', '.join(sorted(maps))})"
            )
        for item in found.values():
            _check_smoothing(item, smoothing)
        return found

    def _group_spec(self, name, smoothing, direction, inference) -> ModelSpec:
        spec = self._project.compile({self.task: self.task_file}, self.task)
        group = spec.group.to_dict()
        sign = "" if direction == 1 else "-"
        group_name = "mean" if direction == 1 else NEGATIVE_MEAN
        group.update(
            first_level_contrasts=[name],
            contrasts=[ContrastSpec(name=group_name, expressions=(f"{sign}intercept",)).to_dict()],
            smoothing_fwhm=smoothing,
            inference={**group["inference"], **inference},
        )
        try:
            parsed = GroupSpec.from_dict(group, what="'group'")
        except ModelSpecError as err:
            raise ModelSpecError(f"{err} (GroupLevel arguments for task '{self.task}')") from None
        return dataclasses.replace(spec, group=parsed)

    def _output(self, result: GroupResult, stat: str, desc: str | None) -> Path:
        (label,) = [contrast_label(n) for n in result.plans[0].analyses[0].contrasts]
        for path in result.files:
            entities = map_entities(path)
            if (entities.get("contrast"), entities.get("stat"), entities.get("desc")) == (
                label,
                stat,
                desc,
            ) and path.name.endswith("_statmap.nii.gz"):
                return path
        raise GroupModelError(f"The group level wrote no stat-{stat} map of {label}")

    # ---- reporting
    def get_clusters(
        self, stat_map: Any, stat_thresh: float, cluster: int | None = None,
        two_sided: bool = False, min_distance: float = 8.0,
    ) -> pd.DataFrame:  # fmt: skip
        """nilearn's cluster table of ``stat_map`` (glmflow's ``clusters_table``)."""
        return clusters_table(
            stat_map, stat_thresh, cluster_threshold=cluster or 0, two_sided=two_sided,
            min_distance=min_distance,
        )  # fmt: skip

    def plot_brain_mosaic(self, contrast: str, smoothing: float = 8.0, save_local: bool = False):
        """Glass brains of every subject's z map of ``contrast`` (thresholded at 3.2)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from nilearn import plotting

        maps = self._subject_maps(contrast, smoothing)
        rows = -(-len(maps) // 5)
        figure, axes = plt.subplots(nrows=rows, ncols=5, figsize=(20, 4 * rows), squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        for axis, subject in zip(axes.flat, sorted(maps), strict=False):
            plotting.plot_glass_brain(
                str(first_level.z_map(maps[subject])), threshold=3.2, display_mode="z",
                plot_abs=False, colorbar=False, title=subject, axes=axis,
            )  # fmt: skip
        label = next(iter(maps.values())).label
        figure.suptitle(f"{label}_{int(smoothing)}mm", fontweight="bold")
        if save_local:
            folder = self.output_path / "figures"
            folder.mkdir(parents=True, exist_ok=True)
            figure.savefig(folder / f"task-{self.task}_contrast-{label}_mosaic.png")
        return figure


def _is_condition(item: SubjectMap) -> bool:
    meta = json.loads(sidecar_path(item.effect).read_text())
    return meta["Contrast"].get("Expressions") == [item.contrast]


def _check_direction(direction: Any) -> None:
    if direction not in (1, -1) or isinstance(direction, bool):
        raise ModelSpecError(f"direction must be 1 or -1. Got {direction!r} instead.")


def _check_smoothing(item: SubjectMap, smoothing: Any) -> None:
    """The first level's kernel (in the map's sidecar) is the one the call names."""
    text = str(smoothing).removesuffix("mm")
    try:
        asked = float(text)
    except ValueError:
        raise ModelSpecError(
            f"smoothing must be a number of mm. Got {smoothing!r} instead."
        ) from None
    meta = json.loads(sidecar_path(item.effect).read_text())
    used = meta["ModelSpec"]["glm"].get("smoothing_fwhm") or 0.0
    if abs(used - asked) > 1e-6:
        raise GroupModelError(
            f"The subject maps of '{item.contrast}' ({item.effect.name}, ...) were smoothed "
            f"with {used:g} mm at the first level, not {asked:g} mm; pass smoothing="
            f"{used:g} (sub_smoothing=) or rerun the first level with smoothing={asked:g}"
        )


__all__ = ["GroupLevel"]
