"""The runs to model: one :class:`RunInputs` per preprocessed BOLD run, checked."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from glmflow.core.bids.companions import companion, companions, identity
from glmflow.core.bids.layout import NIFTI, by_subject, get_files, load_layout
from glmflow.core.bids.remembered import remembered_runs
from glmflow.core.bids.select import (
    apply_excludes,
    check_dataset_dirs,
    search_selection,
    select_bolds,
)
from glmflow.core.images import load_image
from glmflow.core.model import check_repetition_time
from glmflow.errors import DatasetError, ModelSpecError

DEFAULT_SPACE = "MNI152NLin2009cAsym"
_COMPANIONS = {
    "masks": {"scope": "derivatives", "suffix": "mask", "desc": "brain", "extension": NIFTI},
    "confounds": {
        "scope": "derivatives",
        "desc": "confounds",
        "suffix": ["timeseries", "regressors"],
        "extension": ".tsv",
    },
    "events": {"scope": "raw", "suffix": "events", "extension": ".tsv"},
    "raw_bolds": {"scope": "raw", "suffix": "bold", "extension": NIFTI},
}


@dataclass(frozen=True)
class RunInputs:
    """Everything glmflow needs to model one preprocessed BOLD run.

    Paths are absolute strings. ``run`` and the values of ``entities`` are the labels exactly
    as in the file names (``"01"`` stays ``"01"``). ``entities`` uses pybids' entity names
    (``subject``, ``session``, ``task``, ``run``, ``acquisition``, ``space``, ...).
    """

    subject: str
    session: str | None
    task: str
    run: str | None
    bold: str
    mask: str
    events: str
    confounds: str
    tr: float
    slice_time_ref: float
    n_volumes: int
    entities: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInputs:
        """Build from :meth:`to_dict` output (e.g. after a JSON round trip)."""
        return cls(**{**data, "entities": dict(data["entities"])})


def discover_runs(
    bids_dir: str | os.PathLike,
    *,
    derivatives: str | os.PathLike | None = None,
    space: str = DEFAULT_SPACE,
    desc: str = "preproc",
    res: str | None = None,
    tasks: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    runs: Sequence[str | int] | None = None,
    participant_label: Sequence[str] | None = None,
    excludes: Iterable[str] = (),
    database_dir: str | os.PathLike | None = None,
    slice_time_ref: float | None = None,
    spec_tr: float | None = None,
    model_file: str | os.PathLike | None = None,
    task_given: bool = True,
    need_events: bool = True,
) -> list[RunInputs]:
    """List the preprocessed BOLD runs to model, with their companion files.

    ``bids_dir`` is the raw dataset (events live there), ``derivatives`` fMRIPrep's folder
    (default ``<bids_dir>/derivatives/fmriprep``). ``space``, ``desc`` and ``res`` choose the
    preprocessed BOLD (several resolutions and none chosen is an error naming them);
    ``tasks``, ``sessions``, ``runs``, ``participant_label`` keep only these (``None``: all;
    ``sub-`` optional); ``excludes`` leaves subjects out (logged); ``database_dir`` keeps the
    pybids index (:mod:`.layout`; ``None``: in memory). ``slice_time_ref`` overrides the
    slice-timing reference (a fraction of the TR); ``spec_tr`` and ``model_file`` are the
    model's ``"tr"`` and file, checked by :func:`~glmflow.core.model.check_repetition_time`.
    ``task_given=False``: the task is the model's own (no ``--task``), a missing task blames
    the model file. ``need_events=False``: no events (rest). Sorted by sub, ses, task, run.
    """
    if slice_time_ref is not None:
        _check_slice_time_ref(slice_time_ref)
    bids_dir = Path(bids_dir).resolve()
    deriv_dir = (
        Path(derivatives).resolve() if derivatives else bids_dir / "derivatives" / "fmriprep"
    )
    check_dataset_dirs(bids_dir, deriv_dir)
    selection = {
        "space": space, "desc": desc, "res": res, "task_given": task_given,
        "need_events": need_events,
        **search_selection(tasks=tasks, sessions=sessions, runs=runs,
                           participant_label=participant_label, excludes=excludes,
                           slice_time_ref=slice_time_ref, spec_tr=spec_tr,
                           model_file=model_file),
    }  # fmt: skip
    find = partial(_find_runs, bids_dir, deriv_dir, database_dir, **selection)
    return remembered_runs(find, RunInputs.from_dict, bids_dir, deriv_dir, database_dir, selection)


def _find_runs(
    bids_dir: Path,
    deriv_dir: Path,
    database_dir: str | os.PathLike | None,
    *,
    space: str,
    desc: str,
    res: str | None,
    tasks: list | None,
    sessions: list | None,
    runs: list | None,
    participant_label: list | None,
    excludes: list,
    slice_time_ref: float | None,
    spec_tr: float | None,
    model_file: str | None,
    task_given: bool,
    need_events: bool,
) -> list[RunInputs]:
    """:func:`discover_runs` in the pybids index (built or reused)."""
    layout = load_layout(bids_dir, deriv_dir, database_dir)
    bolds = select_bolds(
        get_files(layout, scope="derivatives", suffix="bold", extension=NIFTI),
        tasks=tasks,
        subjects=participant_label,
        sessions=sessions,
        runs=runs,
        space=space,
        desc=desc,
        res=res,
        deriv_dir=deriv_dir,
        task_source=None if task_given else (model_file or "the model"),
    )
    bolds = apply_excludes(bolds, excludes, deriv_dir)
    files = {name: by_subject(get_files(layout, **f)) for name, f in _COMPANIONS.items()}
    model = {"spec_tr": spec_tr, "model_file": model_file, "slice_time_ref": slice_time_ref,
             "need_events": need_events}  # fmt: skip
    found = [_run_inputs(bold, layout, files, bids_dir, deriv_dir, **model) for bold in bolds]
    if slice_time_ref is None:
        _warn_no_start_time([run.bold for run, has_start in found if not has_start])
    return sorted((run for run, _ in found), key=_order)


def _warn_no_start_time(bolds: list[str]) -> None:
    if bolds:
        # nilearn's first_level_from_bids warns the same way before assuming 0.0.
        warnings.warn(
            f"'slice_time_ref' not provided and StartTime missing from the sidecar of "
            f"{len(bolds)} BOLD run(s) (e.g. {bolds[0]}); assuming 0.0 "
            "(the start of each TR) as nilearn does. Set slice_time_ref in the model if "
            "the data were slice-time corrected to another reference.",
            UserWarning,
            stacklevel=3,
        )


def _order(r: RunInputs):
    return (
        r.subject,
        r.session or "",
        r.task,
        int(r.run) if r.run else -1,
        sorted(r.entities.items()),
    )


def _run_inputs(bold, layout, files, bids_dir, deriv_dir, *, spec_tr, model_file, slice_time_ref,
                need_events=True):  # fmt: skip
    """One run's inputs, and whether its sidecar gives StartTime (events: None for rest)."""
    events = files["events"] if need_events else None
    mask, conf, ev = companions(
        bold, files["masks"], files["confounds"], events, bids_dir, deriv_dir
    )
    meta = layout.get_metadata(bold.path)
    sidecar_tr = meta.get("RepetitionTime")
    raw = companion(bold, files["raw_bolds"]) if sidecar_tr is None else None
    if raw is not None:
        sidecar_tr = layout.get_metadata(raw.path).get("RepetitionTime")
    header_tr, n_volumes = _header_tr(bold.path)
    # One TR rule for the whole project (sidecar vs header vs the model's "tr").
    tr = check_repetition_time(
        spec_tr=spec_tr,
        sidecar_tr=sidecar_tr,
        header_tr=header_tr,
        bold_file=bold.path,
        model_file=model_file or "the model",
    )
    ent = bold.entities
    run = RunInputs(
        subject=str(ent["subject"]),
        session=str(ent["session"]) if "session" in ent else None,
        task=str(ent["task"]),
        run=str(ent["run"]) if "run" in ent else None,
        bold=bold.path,
        mask=mask.path,
        events=ev.path if ev is not None else "",
        confounds=conf.path,
        tr=tr,
        slice_time_ref=resolve_slice_time_ref(
            meta.get("StartTime"), tr, slice_time_ref, _sidecar_name(bold.path)
        ),
        n_volumes=n_volumes,
        entities=identity(ent),
    )
    return run, "StartTime" in meta


def resolve_slice_time_ref(start_time, tr: float, override: float | None, sidecar: str) -> float:
    """StartTime / TR as nilearn's first_level_from_bids, unless overridden; 0.0 if absent."""
    if start_time is None:
        return 0.0 if override is None else float(override)
    number = isinstance(start_time, (int, float)) and not isinstance(start_time, bool)
    if not number or not 0 <= start_time < tr:
        raise DatasetError(
            f"StartTime {start_time!r} in {sidecar} is not a number within "
            f"[0, RepetitionTime={tr:g}); fix the sidecar or set slice_time_ref in the model"
        )
    if override is None:
        return start_time / tr
    if not math.isclose(override, start_time / tr):
        warnings.warn(
            f"slice_time_ref {override:g} overrides StartTime/RepetitionTime = "
            f"{start_time / tr:g} from {sidecar}",
            UserWarning,
            stacklevel=3,
        )
    return float(override)


def _sidecar_name(path: str) -> str:
    base = path[: -len(".nii.gz")] if path.endswith(".nii.gz") else os.path.splitext(path)[0]
    return base + ".json"


def _header_tr(bold_path: str) -> tuple[float | None, int]:
    """Return (TR in seconds or None when unknown, number of volumes) from the header."""
    img = load_image(bold_path, "BOLD")  # reads the header only
    if len(img.shape) != 4:
        raise DatasetError(
            f"BOLD {bold_path} has shape {img.shape}, expected 4D (x, y, z, time); "
            "point glmflow at the preprocessed 4D series"
        )
    hdr = img.header
    tr = float(hdr.get_zooms()[3])
    unit = hdr.get_xyzt_units()[1] if hasattr(hdr, "get_xyzt_units") else "sec"
    tr *= {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)
    return (tr if math.isfinite(tr) and tr > 0 else None), int(img.shape[3])


def _check_slice_time_ref(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ModelSpecError(
            f"'slice_time_ref' must be a number between 0 and 1 (a fraction of the TR). "
            f"Got {value!r} instead"
        )
