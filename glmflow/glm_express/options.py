"""glm-express's first-level method flags translated into the glmflow model they ask for.

glm-express 2.0.3's ``run_first_level_glm`` takes its modelling choices as flags; each one
becomes a field of the :class:`~glmflow.core.model.ModelSpec` compiled from the task file
(``glmflow.core.model.glm_express``), so the cached graph computes exactly that model.
``None`` (the default of ``auto_block_regressors`` and ``include_modulators``) keeps what
the task file says, as glmflow's command line does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from glmflow.core.model import ModelSpec
from glmflow.core.model import validation as check
from glmflow.core.model.glm_express import (
    BUILDER_BLOCK_COLUMN,
    GLMX_CONFOUND_PATTERNS,
    GLMX_DROP_CONDITIONS,
)
from glmflow.errors import ModelSpecError

#: fMRIPrep's one-hot columns of the non-steady-state volumes (glm-express's
#: ``non_steady_state`` regressor, which 2.0.3 always fills with zeros)
NON_STEADY_STATE = "non_steady_state_outlier*"
#: the wildcard of each of glm-express's "add every column containing X" flags
FLAG_PATTERNS = dict(
    zip(GLMX_CONFOUND_PATTERNS, ("motion_outliers", "a_comp_cor", "t_comp_cor"), strict=True)
)


def first_level_spec(spec: ModelSpec, *, method: str, **flags: Any) -> ModelSpec:
    """``spec`` with glm-express's flags applied (errors name ``method`` and the flag).

    Flags: ``smoothing`` (mm, 0 none), ``conditions``, ``contrasts``, ``non_steady_state``,
    ``auto_block_regressors``, ``include_modulators``, ``motion_outliers``,
    ``drop_fixation``, ``a_comp_cor``, ``t_comp_cor``.
    """
    try:
        return _apply(spec, flags)
    except ModelSpecError as err:
        raise check.locate(err, f"{method}() with {spec.source}") from None


def _apply(spec: ModelSpec, flags: dict[str, Any]) -> ModelSpec:
    value = {name: _flag(flags, name) for name in flags if name != "smoothing"}
    smoothing = check.number(flags["smoothing"], "smoothing", low=0)
    auto = tuple(a for a in spec.auto_contrasts if a != "conditions" or value["conditions"])
    explicit = spec.contrasts if value["contrasts"] else ()
    if not value["contrasts"]:
        auto = tuple(a for a in auto if a != "pairwise")
    events = spec.events
    if value.get("drop_fixation") is not None:
        events = dataclasses.replace(
            events, drop_conditions=GLMX_DROP_CONDITIONS if value["drop_fixation"] else ()
        )
    if value.get("auto_block_regressors") is not None:
        block = events.block_column or BUILDER_BLOCK_COLUMN
        events = dataclasses.replace(
            events,
            block_column=block if value["auto_block_regressors"] else None,
            missing_block_column="warn" if block == BUILDER_BLOCK_COLUMN else "error",
        )
    if value.get("include_modulators") is False:
        events = dataclasses.replace(events, modulators=())
    confounds = spec.confounds
    columns = list(confounds.columns)
    if value["non_steady_state"] and NON_STEADY_STATE not in columns:
        columns.append(NON_STEADY_STATE)
    optional = [p for p in GLMX_CONFOUND_PATTERNS if p not in columns and value[FLAG_PATTERNS[p]]]
    confounds = dataclasses.replace(
        confounds, columns=tuple(columns), optional_columns=tuple(optional)
    )
    glm = dataclasses.replace(spec.glm, smoothing_fwhm=float(smoothing) or None)
    return dataclasses.replace(
        spec, events=events, confounds=confounds, glm=glm, contrasts=explicit,
        auto_contrasts=auto,
    )  # fmt: skip


def _flag(flags: dict[str, Any], name: str) -> bool | None:
    if flags[name] is None and name in ("auto_block_regressors", "include_modulators"):
        return None
    return check.flag(flags[name], name)


__all__ = ["FLAG_PATTERNS", "NON_STEADY_STATE", "first_level_spec"]
