"""The glm-express compiler: a ``task_information.json`` entry translated into a ModelSpec.

This module's only job is translating one file format into :class:`ModelSpec` (reading the
file is :func:`glmflow.core.model.files.load_task_information`'s); a BIDS Stats Models
compiler will sit beside it.

glm-express 2.0.3's file is a JSON object keyed by task name; each task is an object with
these keys (glm-express's README glossary; 2.0.3's builder writes all but ``modulators``):

=======================  ====================================================================
key                      glmflow meaning
=======================  ====================================================================
tr                       ``ModelSpec.tr`` (s; null = from the data). glm-express 2.0.3 never
                         reads it (it uses ``Subject(repetition_time=1.)``) and its builder
                         writes 1.0 whatever the data say: glmflow checks it against the data
                         and refuses a mismatch (``check_repetition_time``).
excludes                 subject labels left out ("sub-" optional). Not read by 2.0.3.
condition_identifier     events column holding the conditions (required, as in 2.0.3).
confound_regressors      fMRIPrep confound columns, names or fnmatch wildcards (required).
modulators               parametric modulators (events columns): one ``{condition}_x_{mod}``
                         regressor per condition x modulator, demeaned (glm-express 1.x;
                         2.0.3 no longer reads the key).
block_identifier         events column of block labels (null = none); conditions become
                         ``{block}_{condition}`` (2.0.3's ``auto_block_regressors``). The
                         builder writes "block_type" for every task, so a missing "block_type"
                         column warns and models no blocks; any other missing column is an
                         error (a typo must not be ignored).
design_contrasts         "default": every pair of conditions once ("a-b", "a-c", "b-c"); an
                         object {name: formula}; a list of formulas (named by the formula
                         without spaces); [] (the builder's value): none. Like glm-express,
                         every condition is also mapped against baseline (required key).
group_level_regressors   participants.tsv columns added to the group design as covariates
                         (``GroupSpec.covariates``, demeaned) next to the group mean: a
                         one-sample design with covariates (glm-express marks the key "in
                         development" and never used it).
=======================  ====================================================================

Where the file is silent, glmflow follows glm-express 2.0.3's ``run_first_level_glm``
defaults: SPM HRF, cosine drift with high_pass 0.01 Hz (nilearn's defaults, which glm-express
uses), AR(1) noise model, signal_scaling 0 (percent signal change), 8 mm smoothing, trials of
type "fixation" dropped (``drop_fixation=True``), and all fMRIPrep columns "motion_outlier*",
"a_comp_cor_*" and "t_comp_cor_*" added to the confounds (``motion_outliers``, ``a_comp_cor``,
``t_comp_cor`` all default to True). Deliberate difference: the slice-timing reference comes
from the data (fMRIPrep's StartTime), where glm-express always used 0.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmflow.core.model import validation as check
from glmflow.core.model.contrast_specs import ContrastSpec
from glmflow.core.model.group_specs import GroupSpec
from glmflow.core.model.spec import ModelSpec
from glmflow.core.model.stages import ConfoundsSpec, DesignSpec, EventsSpec, GlmSpec
from glmflow.core.model.validation import locate
from glmflow.errors import ModelSpecError

KEYS = (
    "tr",
    "excludes",
    "condition_identifier",
    "confound_regressors",
    "modulators",
    "block_identifier",
    "design_contrasts",
    "group_level_regressors",
)
REQUIRED = ("condition_identifier", "confound_regressors", "design_contrasts")
BUILDER_BLOCK_COLUMN = "block_type"
GLMX_DROP_CONDITIONS = ("fixation",)
# glm-express adds every column *containing* these names; fMRIPrep's start with them, and the
# confounds stage accepts a "motion_outlier*" wildcard that matches nothing (clean runs)
GLMX_CONFOUND_PATTERNS = ("motion_outlier*", "a_comp_cor_*", "t_comp_cor_*")
GLMX_SMOOTHING_FWHM = 8.0

# spec field -> task_information key, so errors raised by the spec name the user's key
_KEY_OF = {
    "condition_column": "condition_identifier",
    "block_column": "block_identifier",
    "columns": "confound_regressors",
    "covariates": "group_level_regressors",
}


def task_information_to_spec(data: Any, path: str | Path, task: str | None) -> ModelSpec:
    """Build the spec for ``task`` (None: the file's only task) from parsed JSON ``data``."""
    if not isinstance(data, Mapping) or not data:
        raise ModelSpecError(
            f"{path} must be a JSON object keyed by task name (glm-express "
            'task_information.json), e.g. {"faces": {...}}'
        )
    tasks = sorted(data)
    if task is None:
        if len(tasks) > 1:
            raise ModelSpecError(
                f"{path} describes several tasks ({', '.join(tasks)}); choose one with --task"
            )
        task = tasks[0]
    if task not in data:
        close = difflib.get_close_matches(task, tasks, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ModelSpecError(
            f"Task '{task}' is not in {path}: {hint}(tasks in the file: {', '.join(tasks)})"
        )
    try:
        return _to_spec(data[task], task, str(path))
    except ModelSpecError as err:
        raise locate(err, f"task '{task}' in {path}", rename=_KEY_OF) from None


def _to_spec(entry: Any, task: str, path: str) -> ModelSpec:
    check.keys(entry, KEYS, "the task's entry")
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        raise ModelSpecError(
            f"Missing key(s) {', '.join(missing)} (glm-express requires them); add "
            'e.g. "condition_identifier": "trial_type", "confound_regressors": [], '
            '"design_contrasts": "default"'
        )
    condition = check.text(entry["condition_identifier"], "condition_identifier")
    block = entry.get("block_identifier")
    events = EventsSpec(
        condition_column=condition,
        drop_conditions=GLMX_DROP_CONDITIONS,
        modulators=entry.get("modulators", ()),
        block_column=block,
        missing_block_column="warn" if block == BUILDER_BLOCK_COLUMN else "error",
        # glm-express drops fixation trials where there are any: a run without them is fine
        missing_conditions="ignore",
    )
    columns = check.texts(entry["confound_regressors"], "confound_regressors")
    confounds = ConfoundsSpec(
        columns=columns,
        optional_columns=tuple(p for p in GLMX_CONFOUND_PATTERNS if p not in columns),
    )
    contrasts, auto = _contrasts(entry["design_contrasts"])
    return ModelSpec(
        name=task,
        task=task,
        source=path,
        tr=entry.get("tr"),
        excludes=entry.get("excludes", ()),
        events=events,
        confounds=confounds,
        design=DesignSpec(hrf_model="spm", drift_model="cosine", high_pass=0.01),
        glm=GlmSpec(noise_model="ar1", signal_scaling=0, smoothing_fwhm=GLMX_SMOOTHING_FWHM),
        contrasts=contrasts,
        auto_contrasts=auto,
        group=GroupSpec(covariates=entry.get("group_level_regressors", ())),
    )


def _contrasts(value: Any) -> tuple[tuple[ContrastSpec, ...], tuple[str, ...]]:
    """Map design_contrasts to (explicit contrasts, auto contrasts)."""
    if value == "default":
        return (), ("conditions", "pairwise")
    if isinstance(value, Mapping):
        pairs = [
            (check.text(name, "design_contrasts"), formula) for name, formula in value.items()
        ]
    elif isinstance(value, list):
        # glm-express names its own contrasts by the formula with spaces removed ("a-b")
        pairs = [("".join(check.text(f, "design_contrasts").split()), f) for f in value]
    else:
        raise check.bad(
            "design_contrasts",
            '"default", a list of formulas or an object {"name": "formula"}',
            value,
        )
    contrasts = []
    for name, formula in pairs:
        check.text(formula, f"design_contrasts.{name}")
        try:
            contrasts.append(ContrastSpec(name=name, expressions=(formula.strip(),)))
        except check.FieldError as err:  # name the contrast, not ContrastSpec's field
            raise check.FieldError(
                f"design_contrasts.{name}", f"({err.name}) {err.message}"
            ) from None
    return tuple(contrasts), ("conditions",)
