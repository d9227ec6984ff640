"""glm-express's ``Subject``: one subject and task, modelled by glmflow's cached graph.

The constructor takes glm-express 2.0.3's arguments and finds the subject's runs with
glmflow's discovery (events, confounds and masks paired with each BOLD by their entities,
the TR from the data); the methods build designs with glmflow's own design code and fit
with :func:`glmflow.runners.participant.run_participant_level`. What differs from
glm-express, and why, is in the README's glm-express table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from glmflow.core.bids import RunInputs, discover_runs
from glmflow.core.preflight import build_run_design
from glmflow.errors import DatasetError, ModelSpecError
from glmflow.glm_express import first_level
from glmflow.glm_express.project import Project, run_container, unsupported
from glmflow.runners.participant import ParticipantResult

PathLike = str | os.PathLike
_DEFAULTS = dict(
    non_steady_state=False, auto_block_regressors=None, motion_outliers=True,
    drop_fixation=True, a_comp_cor=True, t_comp_cor=True,
)  # fmt: skip
_FIT_FLAGS = (*_DEFAULTS, "smoothing", "conditions", "contrasts")


class Subject:
    """One subject's first level, with glm-express 2.0.3's arguments.

    Parameters
    ----------
    sub_id, task, bids_root, suppress, template_space
        As glm-express (``template_space`` may be the start of a space's name, as
        glm-express matched it inside file names: "MNI152NLin2009" finds
        "MNI152NLin2009cAsym" when it is the only such space).
    repetition_time
        None (the default): the TR of the data (BOLD sidecar); a number is checked against
        the data and a mismatch is one line. glm-express used 1.0 whatever the data.
    dummy_scans
        Only 0: glmflow models fMRIPrep's non-steady-state volumes
        (``non_steady_state=True``) instead.
    **glmflow
        glmflow's keywords, the same for every object: ``task_file`` (default
        ``task_information.json`` beside ``bids_root``, then in ``./``), ``output_dir``
        (maps in ``output_dir/glmflow``; default ``bids_root/derivatives``), ``derivatives``
        (fMRIPrep's folder; default ``bids_root/derivatives/fmriprep``) and the execution
        settings (``work_dir``, default ``bids_root/derivatives/glmflow-work``; ``plugin``,
        ``n_procs``, ``plugin_args``, ``progress``, ...).
    """

    def __init__(
        self, sub_id: str | int, task: str, bids_root: PathLike, suppress: bool = False,
        template_space: str = "MNI152NLin2009", repetition_time: float | None = None,
        dummy_scans: int = 0, **glmflow: Any,
    ) -> None:  # fmt: skip
        self.sub_id = str(sub_id).removeprefix("sub-")
        self.task = task
        self.bids_root = str(bids_root)
        self._project = Project.open(bids_root, **glmflow)
        self._project.check_labels(task=task, subject=self.sub_id)
        self._entry = self._project.task_entry(task)
        if repetition_time is not None:
            self._entry["tr"] = repetition_time
        self.set_dummy_scans(dummy_scans)
        self.set_template_space(template_space)
        self.conditions: list[str] = []
        self.condition_variable = self._entry["condition_identifier"]
        self.confound_regressors = list(self._entry["confound_regressors"])
        self.contrasts = self._entry["design_contrasts"]
        self.first_level_output = self._project.glmflow_dir / f"sub-{self.sub_id}"
        self.condition_maps: dict[str, Path] = {}
        self.contrast_maps: dict[str, Path] = {}
        self.result: ParticipantResult | None = None
        if not suppress:
            print(str(self))

    def __str__(self) -> str:
        return json.dumps({
            "Subject ID": self.sub_id,
            "Task": self.task,
            "# of Functional Runs": self.functional_runs,
            "Output Directory": str(self.first_level_output),
            "Defined Contrasts": self.contrasts,
            "Confound Regressors": self.confound_regressors,
        }, indent=4)  # fmt: skip

    # ---- the runs
    def _discover(self) -> None:
        """Find the runs (the TR checked against the model's, entities paired)."""
        spec = self._project.compile({self.task: self._entry}, self.task)
        if self.sub_id in spec.excludes:
            raise DatasetError(
                f"sub-{self.sub_id} is in 'excludes' of task '{self.task}' in "
                f"{self._project.task_file}; remove it there to model this subject"
            )
        self._runs: list[RunInputs] = discover_runs(
            self._project.bids_root, derivatives=self._project.derivatives, space=self._space,
            tasks=[self.task], participant_label=[self.sub_id],
            database_dir=self._project.work_dir / "bids_db", spec_tr=spec.tr,
            slice_time_ref=spec.glm.slice_time_ref, model_file=spec.source,
        )  # fmt: skip
        self.t_r = self._runs[0].tr
        self.functional_runs = len(self._runs)
        self.bids_container = run_container(self._runs)
        self.preprocessed_bold = [run.bold for run in self._runs]
        self.events = [run.events for run in self._runs]
        self.confound_files = [run.confounds for run in self._runs]

    def _run(self, run: int | str) -> RunInputs:
        for item in self._runs:
            if item.run is not None and _same_label(item.run, run):
                return item
        if len(self._runs) == 1 and self._runs[0].run is None:
            return self._runs[0]
        labels = ", ".join(str(r.run) for r in self._runs)
        raise DatasetError(
            f"Run {run!r} not found for sub-{self.sub_id} task '{self.task}' (runs: {labels})"
        )

    def _load(self, kind: str, run: int | str) -> pd.DataFrame:
        runs = self._runs if run == "ALL" else [self._run(run)]
        frames = []
        for item in runs:
            frame = pd.read_csv(getattr(item, kind), sep="\t")
            if "run" not in frame.columns:
                frame["run"] = int(item.run) if str(item.run).isdigit() else item.run
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def load_events(self, run: int | str = "ALL") -> pd.DataFrame:
        """One run's events (or all runs', ``"ALL"``) with a ``run`` column."""
        return self._load("events", run)

    def load_confounds(self, run: int | str = "ALL") -> pd.DataFrame:
        """One run's fMRIPrep confounds (or all runs', ``"ALL"``) with a ``run`` column."""
        return self._load("confounds", run)

    # ---- setters (validated at once: a mistake is one line here, not at the fit)
    def set_tr(self, incoming: float) -> None:
        self._entry["tr"] = incoming
        self._discover()

    def set_dummy_scans(self, incoming: int) -> None:
        if incoming != 0:
            raise unsupported(
                f"dummy_scans={incoming!r}",
                "fMRIPrep marks non-steady-state volumes itself: pass non_steady_state=True "
                "to model its non_steady_state_outlier* columns",
            )
        self.dummy_scans = 0

    def set_conditions(self, incoming: list) -> None:
        """As glm-express: the attribute only (each design sets it from the events again)."""
        if not isinstance(incoming, list):
            raise ModelSpecError(
                f"set_conditions takes a list of trial types. Got {incoming!r} instead."
            )
        self.conditions = incoming

    def set_template_space(self, incoming: str) -> None:
        self._space = self._project.space(incoming, self.task)
        self.template_space = incoming
        self._discover()

    def set_confound_regressors(self, incoming: list) -> None:
        self._edit("confound_regressors", incoming, list, "a list of fMRIPrep column names")
        self.confound_regressors = list(incoming)

    def set_design_contrasts(self, incoming: dict) -> None:
        self._edit("design_contrasts", incoming, dict, 'a dict {"name": "a - b"}')
        self.contrasts = incoming

    def _edit(self, key: str, value: Any, kind: type, rule: str) -> None:
        if not isinstance(value, kind):
            raise ModelSpecError(f"set_{key} takes {rule}. Got {value!r} instead.")
        entry = {**self._entry, key: value}
        self._project.compile({self.task: entry}, self.task)  # the compiler's own checks
        self._entry = entry

    # ---- designs
    def generate_design_matrix(
        self, run: int | str, non_steady_state: bool = False,
        auto_block_regressors: bool | None = None, motion_outliers: bool = True,
        drop_fixation: bool = True, a_comp_cor: bool = True, t_comp_cor: bool = True,
    ) -> pd.DataFrame:  # fmt: skip
        """The design glmflow fits for ``run`` (the flags: ``run_first_level_glm``)."""
        flags = {k: v for k, v in locals().items() if k in _DEFAULTS}
        spec = self._model("generate_design_matrix", flags)
        events, design, _, _ = build_run_design(self._run(run), spec)
        conditions = events.loc[events["role"] == "condition", "trial_type"]
        self.set_conditions(list(dict.fromkeys(str(c) for c in conditions)))
        return design

    def first_level_design(
        self, non_steady_state: bool = False, auto_block_regressors: bool | None = None,
        motion_outliers: bool = True, drop_fixation: bool = True, verbose: bool = True,
        a_comp_cor: bool = True, t_comp_cor: bool = True,
    ) -> list[pd.DataFrame]:  # fmt: skip
        """One design per run, in run order (each run's SVG is written with the maps)."""
        flags = {k: v for k, v in locals().items() if k in _DEFAULTS}
        return [self.generate_design_matrix(run.run or 1, **flags) for run in self._runs]

    def _model(self, method: str, flags: dict[str, Any]):
        values = {"smoothing": 8.0, "conditions": True, "contrasts": True, **flags}
        return first_level.model_for(self._project, self._entry, self.task, method, values)

    # ---- the fit
    def run_first_level_glm(
        self, conditions: bool = True, contrasts: bool = True, smoothing: float = 8.0,
        plot_brains: bool = True, user_design_matrices: list | None = None,
        non_steady_state: bool = False, auto_block_regressors: bool | None = None,
        motion_outliers: bool = True, drop_fixation: bool = True, verbose: bool = True,
        plot_type: str = "stat", a_comp_cor: bool = True, t_comp_cor: bool = True,
    ) -> ParticipantResult:  # fmt: skip
        """Fit every run and combine them (glmflow's cached graph); maps by contrast name.

        Sets ``condition_maps`` and ``contrast_maps`` (subject-level z maps, name -> path),
        ``conditions`` and ``result``; returns the :class:`ParticipantResult`.
        """
        first_level.check_first_level_call(user_design_matrices, plot_type)
        flags = {k: v for k, v in locals().items() if k in _FIT_FLAGS}
        spec = self._model("run_first_level_glm", flags)
        self.result = first_level.fit(
            self._project, spec, subjects=[self.sub_id], space=self._space, verbose=verbose
        )
        maps = first_level.subject_maps(self._project, self.task, self._space)
        names = {c.name for c in self._contrasts()}
        mine = {n: first_level.z_map(m[self.sub_id]) for n, m in maps.items()
                if self.sub_id in m and n in names}  # fmt: skip
        self.conditions = [n for n in self._conditions() if n in mine]
        self.condition_maps = {n: p for n, p in mine.items() if n in self.conditions}
        self.contrast_maps = {n: p for n, p in mine.items() if n not in self.conditions}
        if plot_brains:
            first_level.plot_maps(list(mine.values()), plot_type)
        return self.result

    def _contrasts(self):
        return self.result.analyses[0].contrasts if self.result else ()

    def _conditions(self) -> list[str]:
        """Contrasts that map one condition against baseline (glm-express's condition maps)."""
        return [c.name for c in self._contrasts() if c.expressions == (c.name,)]

    def reset_output_directory(self) -> None:
        """Delete this subject's glmflow outputs of this task, after asking (as glm-express)."""
        print(f"\nAre you SURE you want to delete sub-{self.sub_id} {self.task.upper()} data?")
        if input("Y/N:\t").strip().upper() != "Y":
            return
        for path in self.first_level_output.glob(f"*/sub-{self.sub_id}_*task-{self.task}_*"):
            path.unlink()
        print("DONE")


def _same_label(label: str, run: int | str) -> bool:
    if str(label) == str(run):
        return True
    return str(label).isdigit() and str(run).isdigit() and int(label) == int(run)


__all__ = ["Subject"]
