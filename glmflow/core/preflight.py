"""Check a whole first-level analysis before any compute.

Everything a user can get wrong in the events, confounds, design or contrasts of any run
is found here, in seconds, before the graph runs: a mistake costs one line on stderr, not
a crash half-way through a cluster job, and nothing is written to the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from glmflow.core.bids import RunInputs
from glmflow.core.bold import load_mask
from glmflow.core.confounds import select_confounds
from glmflow.core.contrasts import contrast_weights
from glmflow.core.design import build_design_matrix, check_censored_rank
from glmflow.core.events import parse_events, read_events
from glmflow.core.model import ContrastSpec, ModelSpec, expand_contrasts
from glmflow.core.outputs import contrast_labels
from glmflow.errors import DatasetError, DesignError, GlmflowError


@dataclass(frozen=True)
class FirstLevelPlan:
    """What the checks found: the conditions and the contrasts every run will compute."""

    conditions: tuple[str, ...]
    contrasts: tuple[ContrastSpec, ...]
    design_columns: dict[str, tuple[str, ...]]  # bold file -> design columns
    dropped: dict[str, dict[str, tuple[str, ...]]]  # bold file -> contrast -> dropped names
    skipped: dict[str, set[str]]  # bold file -> contrasts with no term left in its design
    warnings: tuple[str, ...] = ()  # said once here; said again when the plan is reused


def dataset_conditions(bids_dir: str | os.PathLike, spec: ModelSpec) -> tuple[str, ...]:
    """Conditions of the task across the whole raw dataset, in order of first appearance.

    Automatic contrasts ("default" pairs, one map per condition) are named from this list,
    so every participant job gets the same contrasts whichever subjects it selects
    (glm-express recomputes the order per subject and can flip "a-b" into "b-a"). Events
    files that cannot be parsed are passed over here: the run that uses one reports it.
    """
    found: dict[str, None] = {}
    pattern = f"sub-*/**/func/*_task-{spec.task}_*events.tsv"
    for path in sorted(Path(bids_dir).glob(pattern)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                events = parse_events(
                    read_events(path, condition_column=spec.events.condition_column),
                    **spec.events.to_dict(),
                    source=str(path),
                )
        except GlmflowError:
            continue
        for name in events.loc[events["role"] == "condition", "trial_type"]:
            found.setdefault(str(name), None)
    return tuple(found)


def check_first_level(
    runs: Sequence[RunInputs],
    spec: ModelSpec,
    *,
    missing_conditions: str = "error",
    conditions: Sequence[str] | None = None,
) -> FirstLevelPlan:
    """Parse events, select confounds and build the design of every run; check contrasts.

    Parameters
    ----------
    runs
        The runs to model (``discover_runs`` output), all of ``spec.task``.
    spec
        The model.
    missing_conditions
        ``"error"`` or ``"drop"`` (see :func:`glmflow.core.contrasts.contrast_weights`).
    conditions
        The dataset's conditions for automatic contrasts (:func:`dataset_conditions`);
        default: those of ``runs``, in order of first appearance.

    Returns
    -------
    FirstLevelPlan
        The conditions, the expanded contrasts and what ``missing_conditions="drop"``
        removed; every warning raised on the way is kept in ``warnings``.
    """
    if not runs:
        raise DatasetError(f"No run of task '{spec.task}' to model; check --task and the data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = _check(runs, spec, missing_conditions, conditions)
    messages = tuple(dict.fromkeys(str(w.message) for w in caught))
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    return replace(plan, warnings=messages)


def _check(runs, spec, missing_conditions, dataset_conditions) -> FirstLevelPlan:
    found: dict[str, None] = {}
    columns: dict[str, tuple[str, ...]] = {}
    grids: dict[tuple[str, str | None], tuple[str, tuple, bytes]] = {}
    for run in runs:
        events = parse_events(
            read_events(run.events, condition_column=spec.events.condition_column),
            **spec.events.to_dict(),
            source=run.events,
        )
        for name in events.loc[events["role"] == "condition", "trial_type"]:
            found.setdefault(str(name), None)
        confounds, sample_mask = select_confounds(
            run.confounds, bold_file=run.bold, **spec.confounds.to_dict()
        )
        with warnings.catch_warnings():
            # nilearn's notes on singular designs: _check_rank below says it in one line
            warnings.simplefilter("ignore")
            design, roles = build_design_matrix(
                events,
                confounds,
                spec.design,
                n_volumes=run.n_volumes,
                tr=run.tr,
                slice_time_ref=run.slice_time_ref,
                source=run.events,
            )
        kept = run.n_volumes if sample_mask is None else len(sample_mask)
        if kept <= design.shape[1]:
            raise DesignError(
                f"{run.bold}: {kept} volumes are left after censoring for {design.shape[1]} "
                "design columns; select fewer confounds or relax scrubbing"
            )
        check_censored_rank(design, roles, sample_mask, source=run.events)
        mask, affine = load_mask(run.mask)  # refuses an empty or unreadable mask
        _check_same_grid(grids, run, mask.shape, affine)
        columns[run.bold] = tuple(str(c) for c in design.columns)

    contrasts = expand_contrasts(spec, list(dataset_conditions or found))
    if not contrasts:
        raise DatasetError(
            f"Model {spec.source} defines no contrast for task '{spec.task}'; add "
            '"design_contrasts" (or "default")'
        )
    contrast_labels([c.name for c in contrasts], source=spec.source)  # filename clashes
    dropped: dict[str, dict[str, tuple[str, ...]]] = {}
    skipped: dict[str, set[str]] = {}
    for bold, names in columns.items():
        for contrast in contrasts:
            weights, missing = contrast_weights(
                contrast.to_dict(), names, missing=missing_conditions, source=bold
            )
            if missing:
                dropped.setdefault(bold, {})[contrast.name] = missing
                warnings.warn(
                    f"Contrast '{contrast.name}': {', '.join(missing)} not in the design of "
                    f"{bold}; dropped from the contrast there (--missing-conditions drop)",
                    stacklevel=2,
                )
            if weights.shape[0] == 0:
                skipped.setdefault(bold, set()).add(contrast.name)
    return FirstLevelPlan(tuple(found), contrasts, columns, dropped, skipped)


def _check_same_grid(grids: dict, run: RunInputs, shape: tuple, affine) -> None:
    """The runs of one subject are combined voxel by voxel: they must share a grid."""
    key = (run.subject, run.task)
    grid = (tuple(shape), np.round(np.asarray(affine), 4).tobytes())
    first = grids.setdefault(key, (run.mask, *grid))
    if first[1:] != grid:
        raise DatasetError(
            f"Runs of sub-{run.subject} task '{run.task}' are on different grids: {first[0]} "
            f"is {first[1]} and {run.mask} is {tuple(shape)} (or their affines differ); "
            "keep one resolution (res-) per run in the derivatives, or resample the runs to "
            "one grid"
        )


def cached_check_first_level(
    runs: Sequence[RunInputs],
    spec: ModelSpec,
    *,
    missing_conditions: str = "error",
    conditions: Sequence[str] | None = None,
    cache_dir: str | os.PathLike,
) -> FirstLevelPlan:
    """:func:`check_first_level`, remembered in ``cache_dir`` until an input changes.

    The key covers the model, the option and every input file's path, size and
    modification time, so a rerun with nothing changed skips the checks (they passed),
    and any edit of an events, confounds or mask file or of the model checks again.
    """
    key = _plan_key(runs, spec, missing_conditions, conditions)
    path = Path(cache_dir) / f"preflight-{key}.json"
    if path.is_file():
        plan = _plan_from_json(path.read_text())
        for message in plan.warnings:  # the checks passed; what they warned still holds
            warnings.warn(message, UserWarning, stacklevel=2)
        return plan
    plan = check_first_level(
        runs, spec, missing_conditions=missing_conditions, conditions=conditions
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(_plan_to_json(plan))
    os.replace(tmp, path)
    return plan


def _plan_key(
    runs: Sequence[RunInputs], spec: ModelSpec, missing_conditions: str, conditions
) -> str:
    from nilearn import __version__ as nilearn_version

    from glmflow import __version__

    files = []
    for run in runs:
        for name in (run.bold, run.mask, run.events, run.confounds):
            stat = os.stat(name)
            files.append((name, stat.st_size, stat.st_mtime_ns))
        sidecar = Path(run.confounds).with_suffix(".json")
        if sidecar.is_file():
            stat = sidecar.stat()
            files.append((str(sidecar), stat.st_size, stat.st_mtime_ns))
    payload = json.dumps(
        [
            __version__,
            nilearn_version,
            spec.to_json(),
            missing_conditions,
            list(conditions or ()),
            [r.to_dict() for r in runs],
            files,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _plan_to_json(plan: FirstLevelPlan) -> str:
    data = asdict(plan)
    data["contrasts"] = [c.to_dict() for c in plan.contrasts]
    data["skipped"] = {k: sorted(v) for k, v in plan.skipped.items()}
    return json.dumps(data, sort_keys=True)


def _plan_from_json(text: str) -> FirstLevelPlan:
    data = json.loads(text)
    return FirstLevelPlan(
        conditions=tuple(data["conditions"]),
        contrasts=tuple(ContrastSpec.from_dict(c) for c in data["contrasts"]),
        design_columns={k: tuple(v) for k, v in data["design_columns"].items()},
        dropped={b: {c: tuple(n) for c, n in d.items()} for b, d in data["dropped"].items()},
        skipped={k: set(v) for k, v in data["skipped"].items()},
        warnings=tuple(data.get("warnings", ())),
    )
