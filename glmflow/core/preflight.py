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
from dataclasses import asdict, dataclass
from pathlib import Path

from glmflow.core.bids import RunInputs
from glmflow.core.bold import load_mask
from glmflow.core.confounds import select_confounds
from glmflow.core.contrasts import contrast_weights
from glmflow.core.design import build_design_matrix
from glmflow.core.events import parse_events, read_events
from glmflow.core.model import ContrastSpec, ModelSpec, expand_contrasts
from glmflow.errors import DatasetError, DesignError


@dataclass(frozen=True)
class FirstLevelPlan:
    """What the checks found: the conditions and the contrasts every run will compute."""

    conditions: tuple[str, ...]
    contrasts: tuple[ContrastSpec, ...]
    design_columns: dict[str, tuple[str, ...]]  # bold file -> design columns
    dropped: dict[str, dict[str, tuple[str, ...]]]  # bold file -> contrast -> dropped names
    skipped: dict[str, set[str]]  # bold file -> contrasts with no term left in its design


def check_first_level(
    runs: Sequence[RunInputs],
    spec: ModelSpec,
    *,
    missing_conditions: str = "error",
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

    Returns
    -------
    FirstLevelPlan
        Conditions in order of first appearance across runs, and the expanded contrasts
        (auto contrasts from one condition list for the whole dataset).
    """
    if not runs:
        raise DatasetError(f"No run of task '{spec.task}' to model; check --task and the data")
    conditions: dict[str, None] = {}
    columns: dict[str, tuple[str, ...]] = {}
    for run in runs:
        events = parse_events(
            read_events(run.events, condition_column=spec.events.condition_column),
            **spec.events.to_dict(),
            source=run.events,
        )
        for name in events.loc[events["role"] == "condition", "trial_type"]:
            conditions.setdefault(str(name), None)
        confounds, sample_mask = select_confounds(
            run.confounds, bold_file=run.bold, **spec.confounds.to_dict()
        )
        with warnings.catch_warnings():
            # the graph warns again when it builds this design; say it once, there
            warnings.simplefilter("ignore")
            design, _ = build_design_matrix(
                events,
                n_volumes=run.n_volumes,
                tr=run.tr,
                slice_time_ref=run.slice_time_ref,
                confounds=confounds,
                source=run.events,
                **spec.design.to_dict(),
            )
        kept = run.n_volumes if sample_mask is None else len(sample_mask)
        if kept <= design.shape[1]:
            raise DesignError(
                f"{run.bold}: {kept} volumes are left after censoring for {design.shape[1]} "
                "design columns; select fewer confounds or relax scrubbing"
            )
        load_mask(run.mask)  # refuses an empty or unreadable mask
        columns[run.bold] = tuple(str(c) for c in design.columns)

    contrasts = expand_contrasts(spec, list(conditions))
    if not contrasts:
        raise DatasetError(
            f"Model {spec.source} defines no contrast for task '{spec.task}'; add "
            '"design_contrasts" (or "default")'
        )
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
    return FirstLevelPlan(tuple(conditions), contrasts, columns, dropped, skipped)


def cached_check_first_level(
    runs: Sequence[RunInputs],
    spec: ModelSpec,
    *,
    missing_conditions: str = "error",
    cache_dir: str | os.PathLike,
) -> FirstLevelPlan:
    """:func:`check_first_level`, remembered in ``cache_dir`` until an input changes.

    The key covers the model, the option and every input file's path, size and
    modification time, so a rerun with nothing changed skips the checks (they passed),
    and any edit of an events, confounds or mask file or of the model checks again.
    """
    key = _plan_key(runs, spec, missing_conditions)
    path = Path(cache_dir) / f"preflight-{key}.json"
    if path.is_file():
        return _plan_from_json(path.read_text())
    plan = check_first_level(runs, spec, missing_conditions=missing_conditions)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(_plan_to_json(plan))
    os.replace(tmp, path)
    return plan


def _plan_key(runs: Sequence[RunInputs], spec: ModelSpec, missing_conditions: str) -> str:
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
        [spec.to_json(), missing_conditions, [r.to_dict() for r in runs], files],
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
    )
