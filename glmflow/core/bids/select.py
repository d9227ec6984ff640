"""Which preprocessed BOLD runs to model: the user's selection, checked label by label."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from glmflow.errors import DatasetError

LOGGER = logging.getLogger(__name__)  # said again when the runs are recalled


def select_bolds(
    all_bolds, *, tasks, subjects, sessions, runs, space, desc, res, deriv_dir, task_source=None
):
    """Apply the filters, checking each asked-for label exists (listing those that do).

    ``task_source``: the model file when the task is the model's own (no ``--task`` given),
    so that a task the dataset lacks is blamed on the model, not on ``--task``.
    """
    _check_task(tasks, values(all_bolds, "task"), deriv_dir, task_source)
    subjects = _check_labels(
        "Participant label",
        "--participant-label",
        [strip(s, "sub-") for s in subjects] if subjects else None,
        values(all_bolds, "subject"),
        deriv_dir,
    )
    sessions = _check_labels(
        "Session", "--session", sessions, values(all_bolds, "session"), deriv_dir
    )
    tasks = [str(t) for t in tasks] if tasks is not None else None
    wanted = {"task": tasks, "subject": subjects, "session": sessions}
    selected = [f for f in all_bolds if all(_keep(f, k, v) for k, v in wanted.items())]
    if runs is not None:
        selected = _select_runs(selected, runs, deriv_dir)
    bolds = [
        f for f in selected if f.entities.get("space") == space and f.entities.get("desc") == desc
    ]
    if not bolds:
        raise DatasetError(
            f"No BOLD with space '{space}' and desc '{desc}'"
            f"{' for task ' + ', '.join(tasks) if tasks else ''} in {deriv_dir} (spaces "
            f"available: {join(values(selected, 'space'))}; desc available: "
            f"{join(values(selected, 'desc'))}); pass one of them with --space / --desc"
        )
    return _select_resolution(bolds, res, space, deriv_dir)


def _check_task(tasks, available, deriv_dir, task_source) -> None:
    if task_source is None:
        _check_labels("Task", "--task", tasks, available, deriv_dir)
        return
    for task in tasks or ():
        if str(task) not in available:
            raise DatasetError(
                f"Task '{task}' of model {task_source} has no BOLD in {deriv_dir} (tasks "
                f"present: {join(available)}); fix the task in the model file (in a file of "
                "several tasks, choose one with --task)"
            )


def _select_runs(selected, runs, deriv_dir):
    # Compare run labels as numbers, as pybids does ("01" is run 1).
    available = values(selected, "run")
    for r in runs:
        if not str(r).isdigit() or int(r) not in {int(a) for a in available}:
            raise DatasetError(
                f"Run '{r}' not found in {deriv_dir} (available: {join(available)}); fix --run"
            )
    wanted = {int(r) for r in runs}
    return [f for f in selected if f.entities.get("run") in wanted]


def _select_resolution(bolds, res, space, deriv_dir):
    resolutions = values(bolds, "res")
    if res is not None:
        res = strip(str(res), "res-")
        if res not in resolutions:
            raise DatasetError(
                f"No BOLD with space '{space}' at res-{res} in {deriv_dir} (resolutions: "
                f"{join(resolutions) or 'none given in the file names'}); fix --res"
            )
        return [f for f in bolds if str(f.entities.get("res")) == res]
    if len(resolutions) > 1:
        raise DatasetError(
            f"fMRIPrep wrote space '{space}' at several resolutions in {deriv_dir} "
            f"(res-{', res-'.join(resolutions)}); choose one with --res"
        )
    return bolds


def values(files, key: str) -> list[str]:
    return sorted({str(f.entities[key]) for f in files if key in f.entities})


def as_list(values) -> list | None:
    """A lone label (``"faces"``, ``2``) counts as a list of one, not as its characters."""
    if values is None:
        return None
    return [values] if isinstance(values, (str, int)) else list(values)


def search_selection(*, tasks, sessions, runs, participant_label, excludes, slice_time_ref,
                     spec_tr, model_file) -> dict[str, Any]:  # fmt: skip
    """A run search's common selection, as lists and strings: the keywords of its search
    and, JSON-able, part of the key of the runs it finds (:mod:`.remembered`)."""
    return {
        "tasks": as_list(tasks), "sessions": as_list(sessions), "runs": as_list(runs),
        "participant_label": as_list(participant_label), "excludes": as_list(excludes) or [],
        "slice_time_ref": slice_time_ref, "spec_tr": spec_tr,
        "model_file": None if model_file is None else str(model_file),
    }  # fmt: skip


def strip(label: str, prefix: str) -> str:
    return label[len(prefix) :] if label.startswith(prefix) else label


def join(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _check_labels(what, option, wanted, available, where) -> list[str] | None:
    """Return ``wanted`` as strings after checking each is available."""
    if wanted is None:
        return None
    wanted = [str(w) for w in wanted]
    for w in wanted:
        if w not in available:
            raise DatasetError(
                f"{what} '{w}' not found in {where} (available: {join(available)}); fix {option}"
            )
    return wanted


def _keep(bids_file, key: str, wanted: list[str] | None) -> bool:
    return wanted is None or str(bids_file.entities.get(key)) in wanted


def apply_excludes(bolds, excludes: Iterable[str], deriv_dir: Path):
    """Drop excluded subjects, logging each; warn for labels with no data."""
    excluded = {strip(str(s), "sub-") for s in excludes}
    present = set(values(bolds, "subject"))
    for label in sorted(excluded):
        if label in present:
            LOGGER.info("Excluding sub-%s (listed in the model's excludes)", label)
        else:
            warnings.warn(
                f"excludes lists sub-{label}, which has no selected BOLD in {deriv_dir}",
                UserWarning,
                stacklevel=3,
            )
    kept = [b for b in bolds if str(b.entities["subject"]) not in excluded]
    if not kept:
        raise DatasetError(
            f"All subjects with selected BOLD in {deriv_dir} are excluded "
            f"({join(sorted(present))}); check the model's excludes"
        )
    return kept


def check_dataset_dirs(bids_dir: Path, deriv_dir: Path) -> None:
    if not bids_dir.is_dir():
        raise DatasetError(f"BIDS dataset folder {bids_dir} does not exist; check the path")
    if not deriv_dir.is_dir():
        raise DatasetError(
            f"fMRIPrep derivatives folder {deriv_dir} does not exist; pass --derivatives"
        )
    if not (deriv_dir / "dataset_description.json").is_file():
        raise DatasetError(
            f"{deriv_dir} has no dataset_description.json, so it is not a BIDS derivatives "
            "dataset; pass the fMRIPrep output folder itself with --derivatives"
        )
