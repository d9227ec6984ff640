"""Check a whole first-level analysis before any compute.

Everything a user can get wrong in the events, confounds, design or contrasts of any run
is found here, in seconds, before the graph runs: a mistake costs one line on stderr, not
a crash half-way through a cluster job, and nothing is written to the output folder.

The designs the pre-flight builds are remembered in the work folder's memo and recalled by
the graph's ``build_design`` nodes (:func:`glmflow.core.design.run.design_from_files`); each
run's check is remembered too, so a contrast edit builds no design again. The runs not
remembered are checked in forked processes, their errors and warnings said in the runs'
order as one after another would (:func:`_run_records`).
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from glmflow.core.bids import RunInputs
from glmflow.core.contrasts import contrast_weights
from glmflow.core.design import check_censored_rank
from glmflow.core.design.run import confounds_sidecar, design_from_files
from glmflow.core.fork_map import fork_map
from glmflow.core.images import check_gzip_size, check_same_grid, load_image, load_mask
from glmflow.core.memo import code_identity, file_identity, memo_key, recall_value, remember_value
from glmflow.core.model import ContrastSpec, ModelSpec, expand_contrasts
from glmflow.core.outputs import contrast_labels
from glmflow.core.publish import atomic_write_text
from glmflow.errors import DatasetError, DesignError


@dataclass(frozen=True)
class FirstLevelPlan:
    """What the checks found: the conditions and the contrasts every run will compute."""

    conditions: tuple[str, ...]
    contrasts: tuple[ContrastSpec, ...]
    design_columns: dict[str, tuple[str, ...]]  # bold file -> design columns
    dropped: dict[str, dict[str, tuple[str, ...]]]  # bold file -> contrast -> dropped names
    skipped: dict[str, set[str]]  # bold file -> contrasts with no term left in its design
    warnings: tuple[str, ...] = ()  # said once here; said again when the plan is reused


def check_first_level(
    runs: Sequence[RunInputs],
    spec: ModelSpec,
    *,
    missing_conditions: str = "error",
    conditions: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    memo_dir: str | os.PathLike | None = None,
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
        The dataset's conditions for automatic contrasts
        (:func:`glmflow.core.conditions.dataset_conditions`);
        default: those of ``runs``, in order of first appearance.
    cache_dir
        Where each run's checks are remembered (:func:`_checked_run`): a contrast edit
        checks the contrasts against the remembered designs, it builds none again.
    memo_dir
        glmflow's memo folder, where each design built is remembered for the graph's
        ``build_design`` node given the same folder
        (:func:`glmflow.core.design.run.design_from_files`).

    Returns
    -------
    FirstLevelPlan
        The conditions, the expanded contrasts and what ``missing_conditions="drop"``
        removed; every warning raised on the way is kept in ``warnings``, one per distinct
        problem (:func:`group_warnings`).
    """
    if not runs:
        raise DatasetError(f"No run of task '{spec.task}' to model; check --task and the data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = _check(runs, spec, missing_conditions, conditions, (cache_dir, memo_dir))
    messages = group_warnings([str(w.message) for w in caught], runs)
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
    return replace(plan, warnings=messages)


def _check(runs, spec, missing_conditions, given_conditions, memos) -> FirstLevelPlan:
    found: dict[str, None] = {}
    conditions_of: dict[str, set[str]] = {}
    columns: dict[str, tuple[str, ...]] = {}
    grids: dict[tuple[str, str | None], tuple[str, tuple, bytes]] = {}
    for run, record in zip(runs, _run_records(runs, spec, *memos), strict=True):
        conditions, columns[run.bold] = _checked_run(run, record, grids)
        found.update(dict.fromkeys(conditions))
        conditions_of[run.bold] = set(conditions)
    wanted = list(given_conditions or found)
    if spec.auto_contrasts and missing_conditions == "error":
        _check_conditions_everywhere(wanted, conditions_of, runs)
    contrasts = expand_contrasts(spec, wanted)
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


def build_run_design(run: RunInputs, spec: ModelSpec, memo_dir=None):
    """(parsed events, design matrix, column roles, sample mask) of one run, as the graph
    builds them (:func:`glmflow.core.design.run.design_from_files`, remembered in
    ``memo_dir`` when given; the glm-express ``Subject.generate_design_matrix`` shows this
    design)."""
    built = design_from_files(
        run.events, run.confounds, events=spec.events, confounds=spec.confounds,
        design=spec.design, n_volumes=run.n_volumes, tr=run.tr,
        slice_time_ref=run.slice_time_ref, bold_file=run.bold, memo_dir=memo_dir,
    )  # fmt: skip
    return built.events, built.design, built.roles, built.sample_mask


def _check_run(run: RunInputs, spec: ModelSpec, memo_dir) -> tuple[list[str], tuple[str, ...]]:
    """Events, confounds and design of one run: its conditions and design columns."""
    events, design, roles, sample_mask = build_run_design(run, spec, memo_dir)
    conditions = [str(n) for n in events.loc[events["role"] == "condition", "trial_type"]]
    kept = run.n_volumes if sample_mask is None else len(sample_mask)
    if kept <= design.shape[1]:
        raise DesignError(
            f"{run.bold}: {kept} volumes are left after censoring for {design.shape[1]} "
            "design columns; select fewer confounds or relax scrubbing"
        )
    check_censored_rank(design, roles, sample_mask, source=run.events)
    return list(dict.fromkeys(conditions)), tuple(str(c) for c in design.columns)


def _run_records(runs: Sequence[RunInputs], spec: ModelSpec, cache_dir, memo_dir) -> list:
    """Each run's record (:func:`_compute_record`), recalled from ``cache_dir`` under the
    run's files' identities, the model sections its design reads (events, confounds,
    design) and the code's identity (a code edit or an upgrade checks again); the records
    not remembered are computed in forked processes (:func:`glmflow.core.fork_map.fork_map`)
    and remembered. A run whose check failed has its error in place of its record."""
    memo = Path(cache_dir) / "preflight-runs" if cache_dir is not None else None
    keys = [_record_key(run, spec) for run in runs]
    records = [recall_value(memo, key) for key in keys]
    missing = [i for i, record in enumerate(records) if record is None]
    computed = fork_map(partial(_compute_record, spec=spec, memo_dir=memo_dir),
                        [runs[i] for i in missing])  # fmt: skip
    for i, record in zip(missing, computed, strict=True):
        if not isinstance(record, Exception):
            remember_value(memo, keys[i], record)
        records[i] = record
    return records


def _record_key(run: RunInputs, spec: ModelSpec) -> str:
    files = [run.bold, run.mask, run.events, run.confounds, _confounds_sidecar(run)]
    return memo_key(
        "preflight-run", code_identity(), run.to_dict(),
        [[str(f), *file_identity(f)] for f in files if f and Path(f).is_file()],
        [part.to_dict() for part in (spec.events, spec.confounds, spec.design)],
    )  # fmt: skip


def _compute_record(run: RunInputs, spec: ModelSpec, memo_dir) -> dict | Exception:
    """:func:`_check_images` and :func:`_check_run` of one run and the warnings they raised;
    or the error it raised, returned so that the runs' errors come in the runs' order."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            grid = _check_images(run) if run.mask else None  # surface runs: no mask
            conditions, columns = _check_run(run, spec, memo_dir)
    except Exception as err:  # noqa: BLE001 - raised by _checked_run, in the runs' order
        return err
    said = [str(w.message) for w in caught]
    return {"grid": grid, "conditions": conditions, "columns": columns, "said": said}


def _checked_run(run: RunInputs, record: dict | Exception, grids: dict):
    """One run's record: its error raised, its warnings said again (check_first_level
    groups them), its grid compared with its subject's other runs'."""
    if isinstance(record, Exception):
        raise record
    for message in record["said"]:
        warnings.warn(message, UserWarning, stacklevel=2)
    if record["grid"] is not None:
        _check_same_grid(grids, run, tuple(record["grid"][0]), np.asarray(record["grid"][1]))
    return list(record["conditions"]), tuple(record["columns"])


def _confounds_sidecar(run: RunInputs) -> str | None:
    return str(confounds_sidecar(run.confounds)) if run.confounds else None


def _check_images(run: RunInputs) -> list:
    """What the headers tell before any voxel is read: readable, one grid, not truncated.
    Returns the mask's [shape, affine] (the subject's runs must share them)."""
    bold = load_image(run.bold, "BOLD")
    mask, affine = load_mask(run.mask)  # refuses an empty, unreadable or non-binary mask
    check_same_grid(bold.shape, bold.affine, mask, affine, run.bold, run.mask)
    check_gzip_size(bold)
    return [list(mask.shape), np.asarray(affine, dtype=float).tolist()]


def _check_conditions_everywhere(
    conditions: Sequence[str], conditions_of: dict[str, set[str]], runs: Sequence[RunInputs]
) -> None:
    """Automatic contrasts (one per condition) need every condition in every run: name the
    condition that is missing where, not an automatic contrast the user never wrote."""
    events_of = {run.bold: run.events for run in runs}
    for condition in conditions:
        lacking = [bold for bold, found in conditions_of.items() if condition not in found]
        if not lacking:
            continue
        having = [bold for bold, found in conditions_of.items() if condition in found]
        where = (
            f"is in the events of {events_of[having[0]]}"
            if having
            else "is in the dataset's events (automatic contrasts are named from every subject's)"
        )
        close = _close_match(condition, conditions_of[lacking[0]])
        raise DatasetError(
            f"Condition '{condition}' {where} but not in those of {len(lacking)} of the "
            f"{len(conditions_of)} runs modelled (e.g. {events_of[lacking[0]]}{close}); "
            "the automatic contrasts need every condition in every run: rename it in the "
            "events files (or with rename_conditions in the model), or run with "
            "--missing-conditions drop"
        )


def _close_match(name: str, available: set[str]) -> str:
    by_case = {a.lower(): a for a in available}
    close = by_case.get(name.lower()) or next(
        iter(difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.75)), None
    )
    return f", which has '{close}'" if close else ""


def group_warnings(messages: Sequence[str], runs: Sequence[RunInputs]) -> tuple[str, ...]:
    """One line per distinct problem: the same warning about several runs' files is said
    once, with the count and the first file ("4 runs (e.g. ...): ...")."""
    files = {f for run in runs for f in (run.events, run.confounds, run.bold, run.mask)}
    files |= {os.path.basename(f) for f in files}
    by_length = sorted(files, key=len, reverse=True)
    groups: dict[str, list[str | None]] = {}
    for message in dict.fromkeys(messages):
        named = next((f for f in by_length if f in message), None)
        template = message.replace(named, "\0") if named else message
        groups.setdefault(template, []).append(named)
    out = []
    for template, named in groups.items():
        if len(named) == 1:
            out.append(template.replace("\0", named[0]) if named[0] else template)
        else:
            out.append(template.replace("\0", f"{len(named)} runs (e.g. {named[0]})", 1))
    return tuple(out)


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
    memo_dir: str | os.PathLike | None = None,
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
        runs, spec, missing_conditions=missing_conditions, conditions=conditions,
        cache_dir=cache_dir, memo_dir=memo_dir,
    )  # fmt: skip
    atomic_write_text(path, _plan_to_json(plan))
    return plan


def _plan_key(
    runs: Sequence[RunInputs], spec: ModelSpec, missing_conditions: str, conditions
) -> str:
    files = []
    for run in runs:
        for name in (run.bold, run.mask, run.events, run.confounds):
            files.append([name, *file_identity(name)])
        sidecar = confounds_sidecar(run.confounds)
        if sidecar.is_file():
            files.append([str(sidecar), *file_identity(sidecar)])
    return memo_key(
        "preflight",
        code_identity(),
        spec.to_json(),
        missing_conditions,
        list(conditions or ()),
        [r.to_dict() for r in runs],
        files,
    )


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
