"""glm-express's ``Aggregator``: the first level of every subject of a task, in one graph.

glm-express 2.0.3 loops over the subjects one after the other and prints, then skips, any
subject that fails (its own ``include_modulators`` argument makes every subject fail). Here
the subjects are one :func:`glmflow.runners.participant.run_participant_level` call: checked
together before any compute, fitted in parallel (MultiProc, or a cluster), and a mistake
is one line, never a skipped subject.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from glmflow.glm_express import first_level
from glmflow.glm_express.project import Project
from glmflow.runners.participant import ParticipantResult

LOGGER = logging.getLogger("glmflow")
PathLike = str | os.PathLike


class Aggregator:
    """Every subject's first level, with glm-express 2.0.3's arguments.

    ``**glmflow`` as :class:`glmflow.glm_express.Subject` (``n_procs``: how many of the
    subjects' runs are fitted at once).
    """

    def __init__(
        self, bids_root: PathLike, task: str, template_space: str = "MNI152NLin2009",
        **glmflow: Any,
    ) -> None:  # fmt: skip
        self.bids_root = str(bids_root)
        self.task = task
        self.template_space = template_space
        self._project = Project.open(bids_root, **glmflow)
        found = self._project.check_labels(task=task)
        self._space = self._project.space(template_space, task)
        self._entry = self._project.task_entry(task)
        excludes = set(self._project.compile({task: self._entry}, task).excludes)
        self.subjects = [s for s in found if s not in excludes]
        self.result: ParticipantResult | None = None
        self.summary: pd.DataFrame | None = None

    def run_all_models(
        self, smoothing: float = 8.0, verbose: bool = False, conditions: bool = True,
        contrasts: bool = True, plot_brains: bool = True, user_design_matrices: list | None = None,
        non_steady_state: bool = False, include_modulators: bool | None = None,
        auto_block_regressors: bool | None = None, motion_outliers: bool = True,
        drop_fixation: bool = True,
    ) -> pd.DataFrame:  # fmt: skip
        """Fit every subject (one cached graph) and return ``summary``: one row per subject
        and contrast (runs, dof, the z map's minimum and maximum, its file)."""
        first_level.check_first_level_call(user_design_matrices)
        flags = dict(
            smoothing=smoothing, conditions=conditions, contrasts=contrasts,
            non_steady_state=non_steady_state, include_modulators=include_modulators,
            auto_block_regressors=auto_block_regressors, motion_outliers=motion_outliers,
            drop_fixation=drop_fixation, a_comp_cor=True, t_comp_cor=True,
        )  # fmt: skip
        spec = first_level.model_for(
            self._project, self._entry, self.task, "run_all_models", flags
        )
        print(f"\n** Fitting first-level models for {len(self.subjects)} subjects **\n")
        self.result = first_level.fit(
            self._project, spec, subjects=self.subjects, space=self._space, verbose=verbose
        )
        names = {c.name for a in self.result.analyses for c in a.contrasts}
        maps = first_level.subject_maps(self._project, self.task, self._space)
        mine = {
            name: {s: m for s, m in per_subject.items() if s in self.subjects}
            for name, per_subject in maps.items() if name in names
        }  # fmt: skip
        self.summary = first_level.summary_table(mine)
        if plot_brains:
            paths = [first_level.z_map(m) for per in mine.values() for m in per.values()]
            first_level.plot_maps(paths, "stat")
        return self.summary


__all__ = ["Aggregator"]
