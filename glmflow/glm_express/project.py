"""What the glm-express objects share: the dataset, the task file, the cache, the model file.

glm-express 2.0.3 finds everything by globbing file names under ``bids_root`` (its
fMRIPrep folder is ``bids_root/derivatives/fmriprep``) and reads ``task_information.json``
from the folder above ``bids_root``. :class:`Project` keeps those places, and finds the
runs with glmflow's own discovery (pybids entities, the TR from the data) instead.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmflow.core.bids import RunInputs
from glmflow.core.bids.layout import NIFTI, get_files, load_layout
from glmflow.core.bids.select import check_dataset_dirs
from glmflow.core.memo import memo_key
from glmflow.core.model import ModelSpec
from glmflow.core.model import validation as check
from glmflow.core.model.glm_express import task_information_to_spec
from glmflow.core.model.jsonfile import read_json
from glmflow.core.publish import atomic_write_text
from glmflow.errors import DatasetError, GlmflowError, ModelSpecError

PathLike = str | os.PathLike
TASK_FILE = "task_information.json"
#: the cache when none is given: beside glm-express's own outputs, whatever the current folder
WORK_FOLDER = "glmflow-work"


class UnsupportedError(GlmflowError, NotImplementedError):
    """A glm-express argument or method that glmflow does not provide (one line: what to do)."""


def unsupported(what: str, instead: str) -> UnsupportedError:
    return UnsupportedError(f"{what} is not supported by glmflow.glm_express; {instead}")


def absolute(path: PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def find_task_file(bids_root: Path, task_file: PathLike | None) -> Path:
    """The task file given, or glm-express's places: beside ``bids_root``, then ``./``."""
    if task_file is not None:
        path = absolute(task_file)
        if not path.is_file():
            raise ModelSpecError(f"task_file {path} does not exist; check the path")
        return path
    places = [bids_root.parent / TASK_FILE, Path.cwd() / TASK_FILE]
    for path in places:
        if path.is_file():
            return path
    raise ModelSpecError(
        f"No {TASK_FILE} in {places[0].parent} (beside bids_root, where glm-express's "
        f"builder writes it) or in the current folder {places[1].parent}; write one (see "
        "glmflow/data/models/task_information.json) or pass task_file="
    )


@dataclasses.dataclass
class Project:
    """A BIDS project as the glm-express objects see it, and where glmflow writes.

    ``output_dir`` (default ``bids_root/derivatives``) gets the maps in
    ``output_dir/glmflow``; ``options`` are the runners' execution settings (``work_dir``
    defaults to ``bids_root/derivatives/glmflow-work``).
    """

    bids_root: Path
    derivatives: Path
    output_dir: Path
    task_file: Path
    options: dict[str, Any]

    @classmethod
    def open(
        cls,
        bids_root: PathLike,
        *,
        derivatives: PathLike | None = None,
        output_dir: PathLike | None = None,
        task_file: PathLike | None = None,
        **options: Any,
    ) -> Project:
        """The objects' glmflow keywords: these folders and the runners' execution settings."""
        root = absolute(bids_root)
        deriv = absolute(derivatives) if derivatives else root / "derivatives" / "fmriprep"
        check_dataset_dirs(root, deriv)
        out = absolute(output_dir) if output_dir else root / "derivatives"
        settings = dict(options)
        work = settings.get("work_dir")
        settings["work_dir"] = absolute(work) if work else root / "derivatives" / WORK_FOLDER
        return cls(root, deriv, out, find_task_file(root, task_file), settings)

    @property
    def work_dir(self) -> Path:
        return self.options["work_dir"]

    @property
    def glmflow_dir(self) -> Path:
        return self.output_dir / "glmflow"

    def bold_entities(self) -> list[dict[str, Any]]:
        """Entities of every preprocessed BOLD of the fMRIPrep folder (the stored index)."""
        layout = load_layout(self.bids_root, self.derivatives, self.work_dir / "bids_db")
        found = get_files(layout, scope="derivatives", suffix="bold", extension=NIFTI)
        return [f.entities for f in found if f.entities.get("desc") == "preproc"]

    def check_labels(self, *, task: str, subject: str | None = None) -> list[str]:
        """The subjects with a preprocessed run of ``task``; one line for an unknown label."""
        bolds = self.bold_entities()
        tasks = sorted({str(e["task"]) for e in bolds if "task" in e})
        if task not in tasks:
            raise DatasetError(
                f"Task '{task}' not found in BIDS project {self.derivatives} (tasks with "
                f"preprocessed BOLD: {', '.join(tasks) or 'none'}); check task"
            )
        subjects = sorted({str(e["subject"]) for e in bolds if e.get("task") == task})
        if subject is not None and subject not in subjects:
            raise DatasetError(
                f"Subject '{subject}' not found in BIDS project {self.derivatives} for task "
                f"'{task}' (subjects: {', '.join(subjects)}); check sub_id"
            )
        return subjects

    def space(self, template_space: str, task: str) -> str:
        """glm-express matches the space as part of the file name: the one space it names."""
        spaces = sorted(
            {str(e["space"]) for e in self.bold_entities() if e.get("task") == task} - {"None"}
        )
        if template_space in spaces:
            return template_space
        matches = [s for s in spaces if s.startswith(template_space)]
        if len(matches) != 1:
            raise DatasetError(
                f"template_space '{template_space}' names {len(matches)} of the spaces of "
                f"task '{task}' in {self.derivatives} ({', '.join(spaces) or 'none'}); "
                "pass one of them"
            )
        return matches[0]

    def task_entry(self, task: str) -> dict[str, Any]:
        """A copy of ``task``'s entry of the task file (validated by compiling it)."""
        data = read_json(self.task_file)
        self.compile(data, task)  # a task the file lacks, or a bad key: one line here
        return copy.deepcopy(dict(data[task]))

    def confound_names(self, task: str) -> list[str]:
        """``confound_regressors`` of ``task`` (all a resting-state task reads of the file)."""
        data = read_json(self.task_file)
        if not isinstance(data, dict) or not isinstance(data.get(task), dict):
            tasks = ", ".join(sorted(data)) if isinstance(data, dict) else "none"
            raise ModelSpecError(
                f"Task '{task}' is not in {self.task_file} (tasks in the file: {tasks}); add "
                f'"{task}": {{"confound_regressors": [...]}} to it'
            )
        try:
            return list(
                check.texts(data[task].get("confound_regressors", []), "confound_regressors")
            )
        except ModelSpecError as err:
            raise check.locate(err, f"task '{task}' in {self.task_file}") from None

    def compile(self, data: Any, task: str) -> ModelSpec:
        return task_information_to_spec(data, self.task_file, task)

    def model_file(self, spec: ModelSpec, task: str) -> Path:
        """The task file itself when ``spec`` is what it says, else ``spec`` as a glmflow
        model file in the cache (named by its content: the same spec, the same file)."""
        if spec == self.compile(read_json(self.task_file), task):
            return self.task_file
        text = spec.to_json()
        path = self.work_dir / "glm_express" / f"{task}_{memo_key('glmx', text)[:12]}.json"
        if not path.is_file():
            atomic_write_text(path, text)
        return path


def run_container(runs: Sequence[RunInputs]) -> dict[str, Any]:
    """glm-express's ``bids_container``: files per run (paired by entities) and all runs'."""
    container: dict[str, Any] = {}
    for run in runs:
        key = "_".join(f"{k}-{v}" for k, v in (("ses", run.session), ("run", run.run)) if v)
        container[key or f"task-{run.task}"] = {
            "preprocessed_bold": run.bold, "event": run.events, "confounds": run.confounds,
            "mask": run.mask,
        }  # fmt: skip
    for name, field in (("bold", "bold"), ("events", "events"), ("confounds", "confounds")):
        key = "all_preprocessed_bold" if name == "bold" else f"all_{name}"
        container[key] = [getattr(run, field) for run in runs]
    return container


__all__ = ["Project", "UnsupportedError", "find_task_file", "run_container"]
