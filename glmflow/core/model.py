"""The model specification: what to fit, independent of where the data live.

A :class:`ModelSpec` is a tree of small frozen dataclasses, one per pipeline stage, so a
workflow node receives exactly the part it depends on (``spec.events.to_dict()``,
``spec.design.to_dict()`` ...) and Nipype's cache reruns only what an edit touched. Every
sub-spec validates itself when built and round-trips through ``to_dict()`` / ``from_dict()``;
``ModelSpec.to_json()`` is canonical (sorted keys) and is glmflow's native model format.

Mapping onto BIDS Stats Models (planned): a run node's model X becomes ``events`` + ``design``
+ ``confounds``, its contrasts ``ContrastSpec`` (ConditionList/Weights -> ``weights`` rows,
Test "t"/"F" -> ``stat_type``), the subject node is ``subject`` (how the runs are combined:
fixed effects, equal or precision weights), and the dataset node becomes ``group``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from glmflow.core.formula import FormulaError, check_finite, check_rows, formula_terms, term
from glmflow.errors import DatasetError, ModelSpecError

SCHEMA_VERSION = 1
TR_TOLERANCE = 1e-3  # seconds; sidecars are often rounded to the millisecond

ConfoundStrategy = Literal[
    "motion", "wm_csf", "compcor", "global_signal", "scrub", "non_steady_state", "high_pass"
]
ConfoundModel = Literal["basic", "power2", "derivatives", "full"]
CompcorType = Literal[
    "anat_combined",
    "anat_separated",
    "temporal",
    "temporal_anat_combined",
    "temporal_anat_separated",
]
HrfModel = Literal[
    "spm",
    "spm + derivative",
    "spm + derivative + dispersion",
    "glover",
    "glover + derivative",
    "glover + derivative + dispersion",
    "fir",
]
DriftModel = Literal["cosine", "polynomial"]
NoiseModel = Literal["ar1", "ols"]
StatType = Literal["t", "F"]
AutoContrast = Literal["conditions", "pairwise"]
MissingBlockColumn = Literal["error", "warn"]
RunCombination = Literal["equal", "precision"]

_LABEL = re.compile(r"[A-Za-z0-9]+")


# ---------------------------------------------------------------- validation helpers
class _FieldError(ModelSpecError):
    """A bad value for one field; rendered with the field path and file at the boundary."""

    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message
        super().__init__(f"'{name}' {message}")


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _bad(name: str, rule: str, value: Any) -> _FieldError:
    return _FieldError(name, f"must be {rule}; got {_show(value)}")


def locate(err: ModelSpecError, where: str, *, prefix: str = "", rename=None) -> ModelSpecError:
    """Return ``err`` as one line naming the field path and ``where`` (e.g. "in model.json")."""
    if isinstance(err, _FieldError):
        name = (rename or {}).get(err.name, err.name)
        return ModelSpecError(f"'{prefix}{name}' {err.message} ({where})")
    return ModelSpecError(f"{err} ({where})")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, "a non-empty string", value)
    return value


def _label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise _bad(name, "a BIDS label (letters and digits only)", value)
    return value


def _texts(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _bad(name, "a list of strings", value)
    items = tuple(_text(v, name) for v in value)
    for item in items:
        if items.count(item) > 1:
            raise _FieldError(name, f"lists {_show(item)} twice; remove the duplicate")
    return items


def _choice(value: Any, name: str, allowed: Any) -> Any:
    options = get_args(allowed)
    if not isinstance(value, str) or value not in options:
        raise _bad(name, "one of " + ", ".join(_show(o) for o in options), value)
    return value


def _number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    strict: bool = False,
    high: float | None = None,
    optional: bool = False,
) -> float | None:
    if value is None and optional:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if strict else value >= low))
    ok = ok and (high is None or value <= high)
    if not ok:
        rule = "a number"
        if low is not None and high is not None:
            rule += f" between {low:g} and {high:g}"
        elif low is not None:
            rule += f" {'>' if strict else '>='} {low:g}"
        raise _bad(name, rule + (" or null" if optional else ""), value)
    return float(value)


def _integer(value: Any, name: str, *, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _bad(name, f"an integer >= {low}", value)
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "true or false", value)
    return value


def _check_keys(data: Any, allowed: Sequence[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ModelSpecError(f"{what} must be a JSON object; got {_show(data)}")
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ModelSpecError(
                f"Unknown key '{key}' in {what}; {hint}Allowed: {', '.join(allowed)}"
            )


class FrozenMap(Mapping):
    """A read-only, hashable, picklable dict (used for renames and contrast weights)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping | Sequence = ()) -> None:
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items())))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self):
        return (FrozenMap, (self._data,))


class _Spec:
    """to_dict/from_dict shared by the sub-specs (fields are JSON scalars or lists)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, what: str | None = None) -> Any:
        """Build from a JSON object; unknown keys are refused with a close-match hint."""
        _check_keys(data, [f.name for f in fields(cls)], what or f"'{cls.__name__}'")
        return cls(**data)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, _Spec):
        return value.to_dict()
    return value


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalise a frozen dataclass field in __post_init__


# ---------------------------------------------------------------- sub-specs
@dataclass(frozen=True)
class EventsSpec(_Spec):
    """How events.tsv rows become conditions (see ``glmflow.core.events.parse_events``).

    Order of operations: drop ``drop_conditions``, apply ``rename_conditions``, merge the block
    column (trial type becomes ``f"{block}_{condition}"``, glm-express 2.0.3's convention),
    then add one ``{condition}_x_{modulator}`` regressor per condition x modulator (demeaned
    when ``demean_modulators``). When ``block_column`` is absent from an events file,
    ``missing_block_column="warn"`` warns and models no blocks, ``"error"`` refuses.
    ``incomplete_events`` ("error" or "drop", with a warning) handles events without onset,
    duration or condition; ``missing_conditions`` ("error" or "ignore") handles names in
    ``drop_conditions`` / ``rename_conditions`` that a run's events do not contain.
    """

    condition_column: str = "trial_type"
    drop_conditions: tuple[str, ...] = ()
    rename_conditions: Mapping[str, str] = field(default_factory=FrozenMap)
    modulators: tuple[str, ...] = ()
    demean_modulators: bool = True
    block_column: str | None = None
    missing_block_column: MissingBlockColumn = "error"
    incomplete_events: Literal["error", "drop"] = "error"
    missing_conditions: Literal["error", "ignore"] = "error"

    def __post_init__(self) -> None:
        column = _text(self.condition_column, "condition_column")
        if column in ("onset", "duration"):
            raise _bad("condition_column", "a column other than onset and duration", column)
        _set(self, "drop_conditions", _texts(self.drop_conditions, "drop_conditions"))
        rename = self.rename_conditions
        if not isinstance(rename, Mapping):
            raise _bad("rename_conditions", "an object mapping old to new names", rename)
        for old, new in rename.items():
            _text(old, "rename_conditions")
            _text(new, "rename_conditions")
            if old in self.drop_conditions:
                raise _FieldError("rename_conditions", f"renames {_show(old)}, which is dropped")
        _set(self, "rename_conditions", FrozenMap(rename))
        block = self.block_column
        if block is not None and (_text(block, "block_column") in ("onset", "duration", column)):
            raise _bad(
                "block_column",
                "a column other than onset, duration and the condition column, or null",
                block,
            )
        _set(self, "modulators", _texts(self.modulators, "modulators"))
        for mod in self.modulators:
            if mod in ("onset", "duration", column, block):
                raise _bad(
                    "modulators",
                    "numeric event columns other than onset, duration, "
                    "the condition and block columns",
                    list(self.modulators),
                )
        _flag(self.demean_modulators, "demean_modulators")
        _choice(self.missing_block_column, "missing_block_column", MissingBlockColumn)
        _choice(self.incomplete_events, "incomplete_events", Literal["error", "drop"])
        _choice(self.missing_conditions, "missing_conditions", Literal["error", "ignore"])

    __hash__ = _Spec.__hash__


@dataclass(frozen=True)
class ConfoundsSpec(_Spec):
    """Confound regressors: explicit ``columns`` (names or fnmatch wildcards) plus nilearn
    ``load_confounds`` strategies with its options (same names and defaults).

    ``optional_columns`` are wildcards that may match nothing in a run (with a warning):
    glm-express adds its compcor and outlier columns only where fMRIPrep wrote them.
    """

    columns: tuple[str, ...] = ()
    optional_columns: tuple[str, ...] = ()
    strategy: tuple[ConfoundStrategy, ...] = ()
    motion: ConfoundModel = "full"
    wm_csf: ConfoundModel = "basic"
    global_signal: ConfoundModel = "basic"
    compcor: CompcorType = "anat_combined"
    n_compcor: Literal["all"] | int = "all"
    fd_threshold: float = 0.5
    std_dvars_threshold: float = 1.5
    scrub: int = 5
    demean: bool = True

    def __post_init__(self) -> None:
        _set(self, "columns", _texts(self.columns, "columns"))
        _set(self, "optional_columns", _texts(self.optional_columns, "optional_columns"))
        strategy = _texts(self.strategy, "strategy")
        for item in strategy:
            _choice(item, "strategy", ConfoundStrategy)
        if "compcor" in strategy and "high_pass" not in strategy:
            # nilearn's rule: fMRIPrep's CompCor components assume the cosine high-pass
            raise _FieldError("strategy", 'contains "compcor", which needs "high_pass" too')
        _set(self, "strategy", strategy)
        for name in ("motion", "wm_csf", "global_signal"):
            _choice(getattr(self, name), name, ConfoundModel)
        _choice(self.compcor, "compcor", CompcorType)
        if self.n_compcor != "all":
            _integer(self.n_compcor, "n_compcor", low=1)
        _set(self, "fd_threshold", _number(self.fd_threshold, "fd_threshold", low=0, strict=True))
        _set(
            self,
            "std_dvars_threshold",
            _number(self.std_dvars_threshold, "std_dvars_threshold", low=0, strict=True),
        )
        _integer(self.scrub, "scrub", low=0)
        _flag(self.demean, "demean")


@dataclass(frozen=True)
class DesignSpec(_Spec):
    """Design matrix options of nilearn's ``make_first_level_design_matrix`` (high_pass in
    Hz; ``drift_model=None`` adds no drift; ``fir_delays`` in scans, required for "fir")."""

    hrf_model: HrfModel = "spm"
    drift_model: DriftModel | None = "cosine"
    high_pass: float = 0.01
    drift_order: int = 1
    fir_delays: tuple[int, ...] = ()
    min_onset: float = -24.0
    oversampling: int = 50

    def __post_init__(self) -> None:
        _choice(self.hrf_model, "hrf_model", HrfModel)
        if self.drift_model is not None:
            _choice(self.drift_model, "drift_model", DriftModel)
        _set(self, "high_pass", _number(self.high_pass, "high_pass", low=0, strict=True))
        _integer(self.drift_order, "drift_order", low=0)
        delays = self.fir_delays
        if isinstance(delays, str) or not isinstance(delays, Sequence):
            raise _bad("fir_delays", "a list of integers >= 0", delays)
        _set(self, "fir_delays", tuple(_integer(d, "fir_delays", low=0) for d in delays))
        if len(set(self.fir_delays)) != len(self.fir_delays):
            raise _bad("fir_delays", "distinct integers", list(delays))
        if self.hrf_model == "fir" and not self.fir_delays:
            raise _FieldError("fir_delays", 'must list the delays (in scans) for hrf_model "fir"')
        if self.hrf_model != "fir" and self.fir_delays:
            delays, hrf = _show(list(self.fir_delays)), _show(self.hrf_model)
            rule = f'is only used with hrf_model "fir", not {hrf}; got {delays}'
            raise _FieldError("fir_delays", rule)
        _set(self, "min_onset", _number(self.min_onset, "min_onset"))
        _integer(self.oversampling, "oversampling", low=1)


@dataclass(frozen=True)
class GlmSpec(_Spec):
    """First-level fit options (nilearn FirstLevelModel names). ``signal_scaling``: 0 (percent
    signal change of each voxel's mean) or None (nilearn's False: no scaling; JSON false is
    read as null; nilearn's 1 and (0, 1) are not supported by glmflow's engine);
    ``slice_time_ref`` None means "from the data" (fMRIPrep's StartTime / TR, else 0)."""

    noise_model: NoiseModel = "ar1"
    signal_scaling: Literal[0] | None = 0
    smoothing_fwhm: float | None = None
    slice_time_ref: float | None = None
    minimize_memory: bool = True

    def __post_init__(self) -> None:
        _choice(self.noise_model, "noise_model", NoiseModel)
        # None, not False, means "no scaling": False == 0 in Python would make the two equal
        scaling = None if self.signal_scaling is False else self.signal_scaling
        if scaling is not None and (scaling != 0 or not isinstance(scaling, int | float)):
            raise _bad("signal_scaling", "0 (percent signal change) or null (none)", scaling)
        _set(self, "signal_scaling", None if scaling is None else 0)
        fwhm = _number(self.smoothing_fwhm, "smoothing_fwhm", low=0, optional=True)
        _set(self, "smoothing_fwhm", fwhm)
        ref = _number(self.slice_time_ref, "slice_time_ref", low=0, high=1, optional=True)
        _set(self, "slice_time_ref", ref)
        _flag(self.minimize_memory, "minimize_memory")


# ---------------------------------------------------------------- contrasts
def check_formula(formula: str) -> None:
    """Raise ModelSpecError unless ``formula`` is a weighted sum of design columns.

    The rules are :func:`glmflow.core.formula.formula_terms`'s (column names are checked
    later against each design).
    """
    try:
        formula_terms(formula)
    except FormulaError as err:
        raise ModelSpecError(str(err)) from None


@dataclass(frozen=True)
class ContrastSpec(_Spec):
    """One contrast: ``expressions`` (one formula for "t", one per row for "F") or
    ``weights`` (rows of {column: weight}); exactly one of the two is given."""

    name: str
    expressions: tuple[str, ...] = ()
    weights: tuple[Mapping[str, float], ...] = ()
    stat_type: StatType = "t"

    def __post_init__(self) -> None:
        name = _text(self.name, "name")
        if name != name.strip() or any(c in name for c in "/\\") or not name.isprintable():
            raise _bad("name", "printable, without surrounding spaces, '/' or '\\'", name)
        _choice(self.stat_type, "stat_type", StatType)
        _set(self, "expressions", _texts(self.expressions, "expressions"))
        for formula in self.expressions:
            try:
                check_formula(formula)
            except ModelSpecError as err:
                raise ModelSpecError(f"Contrast {_show(name)}: {err}") from None
        if isinstance(self.weights, str | Mapping) or not isinstance(self.weights, Sequence):
            raise _bad("weights", "a list of {column: weight} rows", self.weights)
        _set(self, "weights", tuple(self._row(row) for row in self.weights))
        rows = len(self.expressions) + len(self.weights)
        if bool(self.expressions) == bool(self.weights):
            raise ModelSpecError(
                f"Contrast {_show(name)} must give either 'expressions' or 'weights' (not both)"
            )
        check_rows(name, self.stat_type, rows, error=ModelSpecError)

    def _row(self, row: Any) -> FrozenMap:
        if not isinstance(row, Mapping) or not row:
            raise _bad("weights", "a list of non-empty {column: weight} rows", row)
        for column, weight in row.items():
            _text(column, "weights")
            if isinstance(weight, float) and not math.isfinite(weight):
                try:
                    check_finite(row, f"Contrast {_show(self.name)}: 'weights'")
                except FormulaError as err:
                    raise ModelSpecError(str(err)) from None
            _number(weight, "weights")
        if not any(row.values()):
            raise _bad("weights", "rows with at least one non-zero weight", row)
        return FrozenMap({c: float(w) for c, w in row.items()})

    __hash__ = _Spec.__hash__


def _unique(conditions: Sequence[str]) -> list[str]:
    if isinstance(conditions, str):
        raise TypeError("conditions must be a sequence of names, not one string")
    return list(dict.fromkeys(_text(c, "conditions") for c in conditions))


def condition_contrasts(conditions: Sequence[str]) -> tuple[ContrastSpec, ...]:
    """One "condition vs. baseline" t contrast per condition, named after the condition."""
    return tuple(ContrastSpec(name=c, expressions=(term(c),)) for c in _unique(conditions))


def default_contrasts(conditions: Sequence[str]) -> tuple[ContrastSpec, ...]:
    """glm-express 2.0.3's ``"default"`` contrasts: every pair once, in its order.

    For conditions (a, b, c) in this order: "a-b", "a-c", "b-c" (name == formula, as
    glm-express's ``Subject._default_contrasts``; names that are not identifiers are quoted
    in backticks inside the formula only). Fewer than two conditions give none.
    """
    names = _unique(conditions)
    pairs: dict[str, tuple[str, str]] = {}
    for outer in names:
        for inner in names:
            if outer != inner and f"{inner}-{outer}" not in pairs:
                pairs[f"{outer}-{inner}"] = (outer, inner)
    return tuple(
        ContrastSpec(name=key, expressions=(f"{term(a)}-{term(b)}",))
        for key, (a, b) in pairs.items()
    )


@dataclass(frozen=True)
class SubjectSpec(_Spec):
    """Subject level: how the runs of one subject are combined.

    ``run_combination`` "equal" is nilearn's multi-run ``FirstLevelModel`` (runs weighted
    equally: ``compute_fixed_effects(..., precision_weighted=False)``); "precision" is
    precision-weighted fixed effects (each run weighted by its inverse variance).
    """

    run_combination: RunCombination = "equal"

    def __post_init__(self) -> None:
        _choice(self.run_combination, "run_combination", RunCombination)


# ---------------------------------------------------------------- group level
GroupDesign = Literal["one-sample", "two-sample", "paired", "covariates"]
GroupMethod = Literal["ols", "fixed"]
# nilearn SecondLevelModel.compute_contrast's output types: which group maps are written
GroupOutputType = Literal["z_score", "stat", "p_value", "effect_size", "effect_variance", "all"]
InferenceMethod = Literal["none", "fpr", "fdr", "bonferroni", "threshold", "permutation", "tdp"]
PermutationStat = Literal["max_t", "size", "mass", "tfce"]
#: Group contrast whose outputs keep the first-level contrast's name (one-sample mean).
MEAN_CONTRAST = "mean"


@dataclass(frozen=True)
class InferenceSpec(_Spec):
    """How group maps are thresholded (``glmflow.core.inference.run_group_inference``).

    ``method``: "fpr", "fdr", "bonferroni" (height control of the z map at ``alpha``),
    "threshold" (``z_threshold``), "permutation" (FWE by sign-flipping / permutation with
    ``n_perm`` and ``seed``; ``permutation_stat`` "max_t", "size", "mass" (these two need
    ``cluster_forming_p``) or "tfce"), "tdp" (clusters above ``z_threshold`` with a positive
    true-discovery proportion at ``alpha``) or "none". ``cluster_threshold`` is a minimum
    cluster size in voxels; ``min_distance`` (mm) separates subpeaks in the cluster tables.
    """

    method: InferenceMethod = "fdr"
    alpha: float = 0.05
    z_threshold: float = 3.09
    cluster_threshold: int = 0
    two_sided: bool = True
    n_perm: int = 10000
    seed: int | None = 0
    permutation_stat: PermutationStat = "max_t"
    cluster_forming_p: float | None = None
    min_distance: float = 8.0

    def __post_init__(self) -> None:
        _choice(self.method, "method", InferenceMethod)
        alpha = self.alpha
        if _number(alpha, "alpha", low=0, strict=True, high=1) == 1:
            raise _bad("alpha", "a number between 0 and 1 (exclusive)", alpha)
        _set(self, "alpha", float(alpha))
        _set(self, "z_threshold", _number(self.z_threshold, "z_threshold", low=0))
        _integer(self.cluster_threshold, "cluster_threshold", low=0)
        _flag(self.two_sided, "two_sided")
        _integer(self.n_perm, "n_perm", low=1)
        if self.seed is not None:
            _integer(self.seed, "seed", low=0)
        _choice(self.permutation_stat, "permutation_stat", PermutationStat)
        forming = self.cluster_forming_p
        number = _number(forming, "cluster_forming_p", low=0, strict=True, high=1, optional=True)
        if number == 1:
            raise _bad("cluster_forming_p", "a p-value between 0 and 1 (exclusive)", forming)
        _set(self, "cluster_forming_p", number)
        distance = _number(self.min_distance, "min_distance", low=0, strict=True)
        _set(self, "min_distance", distance)
        if self.method == "tdp" and self.two_sided:
            raise _FieldError(
                "two_sided",
                'must be false with method "tdp" (it tests positive clusters; add the '
                "negated contrast for negative effects)",
            )
        needs_p = self.method == "permutation" and self.permutation_stat in ("size", "mass")
        if needs_p and self.cluster_forming_p is None:
            raise _FieldError(
                "cluster_forming_p",
                f'must be set for permutation_stat "{self.permutation_stat}" (the '
                "cluster-forming p-value, e.g. 0.001)",
            )


@dataclass(frozen=True)
class GroupSpec(_Spec):
    """Group level (dataset level): which subject maps, which design, which contrasts.

    ``design``: "one-sample" (an ``intercept``), "two-sample" (one indicator column
    ``<group_column>_<level>`` per level of ``group_column``, no intercept), "paired" (the
    two first-level contrasts in ``conditions``, a ``<c0>_minus_<c1>`` column plus one
    column per subject) or "covariates" (an intercept plus at least one covariate).
    ``covariates`` are participants.tsv columns (numeric as they are, text dummy coded),
    demeaned when ``demean_covariates``. ``first_level_contrasts`` names the subject-level
    contrasts modelled (empty: every one found). ``contrasts`` are over the design columns;
    empty means the design's defaults (see ``glmflow.workflows.group_runner``).
    ``method`` "ols" is nilearn's SecondLevelModel, "fixed" precision-weighted fixed
    effects with the first-level variance maps. ``smoothing_fwhm`` (mm) smooths the maps
    before the fit; ``target_affine`` (9 or 16 numbers) and ``target_shape`` resample maps
    that are on different grids; ``output_types`` chooses the maps written per contrast
    (nilearn's output types: z_score, stat, p_value, effect_size, effect_variance, or all);
    ``minimize_memory`` false also writes the residuals,
    predicted and r-squared maps of each fit.
    """

    design: GroupDesign = "one-sample"
    group_column: str | None = None
    conditions: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    demean_covariates: bool = True
    first_level_contrasts: tuple[str, ...] = ()
    contrasts: tuple[ContrastSpec, ...] = ()
    method: GroupMethod = "ols"
    smoothing_fwhm: float | None = None
    target_affine: tuple[float, ...] | None = None
    target_shape: tuple[int, ...] | None = None
    minimize_memory: bool = True
    output_types: tuple[GroupOutputType, ...] = ("all",)
    inference: InferenceSpec = field(default_factory=InferenceSpec)

    def __post_init__(self) -> None:
        _choice(self.design, "design", GroupDesign)
        _choice(self.method, "method", GroupMethod)
        _set(self, "covariates", _texts(self.covariates, "covariates"))
        _set(self, "conditions", _texts(self.conditions, "conditions"))
        levels = _texts(self.first_level_contrasts, "first_level_contrasts")
        _set(self, "first_level_contrasts", levels)
        _flag(self.demean_covariates, "demean_covariates")
        column = self.group_column
        if column is not None:
            _text(column, "group_column")
        if "participant_id" in (*self.covariates, column):
            raise _bad(
                "covariates" if column != "participant_id" else "group_column",
                "participants.tsv columns other than participant_id",
                list(self.covariates) if column != "participant_id" else column,
            )
        if (self.design == "two-sample") != (column is not None):
            raise _FieldError(
                "group_column",
                'must name the participants.tsv column of the groups with design "two-sample"'
                if column is None
                else f'is only used by design "two-sample", not "{self.design}"; remove it',
            )
        if column is not None and column in self.covariates:
            raise _FieldError("covariates", f"lists the group column {_show(column)}; remove it")
        if self.design == "paired":
            if len(self.conditions) != 2:
                raise _bad(
                    "conditions",
                    'the two first-level contrasts compared by design "paired"',
                    list(self.conditions),
                )
            if self.covariates:
                raise _FieldError(
                    "covariates",
                    'cannot be used with design "paired": its subject columns absorb every '
                    "between-subject effect; remove them",
                )
            if self.first_level_contrasts:
                raise _FieldError(
                    "first_level_contrasts",
                    'is not used by design "paired" (it models "conditions"); remove it',
                )
        elif self.conditions:
            raise _FieldError(
                "conditions", f'is only used by design "paired", not "{self.design}"; remove it'
            )
        if self.design == "covariates" and not self.covariates:
            raise _FieldError(
                "covariates", 'must name at least one column with design "covariates"'
            )
        contrasts = self.contrasts
        if isinstance(contrasts, ContrastSpec) or not isinstance(contrasts, Sequence):
            raise _bad("contrasts", "a list of contrasts", str(contrasts))
        _set(self, "contrasts", tuple(contrasts))
        _check_unique_names(self.contrasts)
        fwhm = _number(self.smoothing_fwhm, "smoothing_fwhm", low=0, optional=True)
        _set(self, "smoothing_fwhm", fwhm or None)
        self._check_grid()
        _flag(self.minimize_memory, "minimize_memory")
        outputs = _texts(self.output_types, "output_types")
        if not outputs:
            raise _bad("output_types", "at least one output type", list(outputs))
        for item in outputs:
            _choice(item, "output_types", GroupOutputType)
        _set(self, "output_types", outputs)
        if self.method == "fixed" and not self.minimize_memory:
            raise _FieldError(
                "minimize_memory",
                'must be true with method "fixed" (residual, predicted and r-squared maps '
                'come from the OLS fit of method "ols")',
            )
        if not isinstance(self.inference, InferenceSpec):
            raise _bad("inference", "an InferenceSpec", str(self.inference))
        if self.method == "fixed" and self.smoothing_fwhm:
            raise _FieldError(
                "smoothing_fwhm",
                'cannot be used with method "fixed" (smoothing would change the variance '
                'maps); smooth at the first level or use method "ols"',
            )
        if self.inference.method == "permutation":
            if self.design == "paired":
                raise _FieldError(
                    "inference.method",
                    '"permutation" of a paired design would shuffle maps across subjects '
                    "(not exchangeable); use a parametric method, or a one-sample design on "
                    "the subjects' difference contrast (e.g. face-house) with permutation",
                )
            if self.method == "fixed":
                raise _FieldError(
                    "inference.method",
                    '"permutation" permutes an OLS model; use method "ols" or a parametric '
                    'inference method with method "fixed"',
                )
            if self.target_affine is not None:
                raise _FieldError(
                    "target_affine",
                    'cannot be used with inference method "permutation" (nilearn permutes maps '
                    "on one grid); resample the maps first or use a parametric method",
                )
            f_tests = [c.name for c in self.contrasts if c.stat_type == "F"]
            if f_tests:
                raise _FieldError(
                    "inference.method",
                    f'"permutation" tests t contrasts, but contrast {_show(f_tests[0])} is an '
                    "F test; use a parametric method or make it a t contrast",
                )

    def _check_grid(self) -> None:
        affine, shape = self.target_affine, self.target_shape
        if affine is not None:
            rule = "9 (3x3) or 16 (4x4) numbers in row order, or null"
            if isinstance(affine, str) or not isinstance(affine, Sequence):
                raise _bad("target_affine", rule, affine)
            if len(affine) not in (9, 16):
                raise _bad("target_affine", rule, list(affine))
            _set(self, "target_affine", tuple(_number(v, "target_affine") for v in affine))
        if shape is not None:
            if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) != 3:
                raise _bad("target_shape", "three integers >= 1, or null", shape)
            _set(self, "target_shape", tuple(_integer(v, "target_shape", low=1) for v in shape))
            if affine is None:
                raise _FieldError("target_shape", "needs target_affine; give both or neither")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, what: str | None = None) -> GroupSpec:
        """Build from JSON: ``contrasts`` as contrast objects, ``inference`` as an object."""
        _check_keys(data, [f.name for f in fields(cls)], what or "'GroupSpec'")
        kwargs = dict(data)
        if "inference" in kwargs:
            try:
                kwargs["inference"] = InferenceSpec.from_dict(
                    kwargs["inference"], what="'group.inference'"
                )
            except _FieldError as err:
                raise _FieldError(f"inference.{err.name}", err.message) from None
        contrasts = kwargs.get("contrasts", [])
        if not isinstance(contrasts, list):
            raise _bad("contrasts", "a list of contrasts", contrasts)
        items = []
        for i, item in enumerate(contrasts):
            try:
                items.append(ContrastSpec.from_dict(item, what=f"group contrasts[{i}]"))
            except _FieldError as err:
                raise _FieldError(f"contrasts[{i}].{err.name}", err.message) from None
        kwargs["contrasts"] = tuple(items)
        return cls(**kwargs)

    __hash__ = _Spec.__hash__


# ---------------------------------------------------------------- the model
_SECTIONS = {
    "events": EventsSpec,
    "confounds": ConfoundsSpec,
    "design": DesignSpec,
    "glm": GlmSpec,
    "subject": SubjectSpec,
    "group": GroupSpec,
}


@dataclass(frozen=True)
class ModelSpec:
    """A complete GLM specification for one task.

    ``tr`` None takes the repetition time from the data (see :func:`check_repetition_time`);
    ``excludes`` are subject labels without "sub-" (a "sub-" prefix is stripped);
    ``contrasts`` are explicit; ``auto_contrasts`` are generated once the conditions are known
    (:func:`expand_contrasts`): "conditions" = one map per condition vs. baseline, "pairwise"
    = :func:`default_contrasts`. ``source`` is the file the spec was read from (used in
    messages; not part of the JSON, so moving a file does not invalidate the cache).
    """

    name: str
    task: str
    source: str = "<model>"
    tr: float | None = None
    excludes: tuple[str, ...] = ()
    events: EventsSpec = field(default_factory=EventsSpec)
    confounds: ConfoundsSpec = field(default_factory=ConfoundsSpec)
    design: DesignSpec = field(default_factory=DesignSpec)
    glm: GlmSpec = field(default_factory=GlmSpec)
    contrasts: tuple[ContrastSpec, ...] = ()
    auto_contrasts: tuple[AutoContrast, ...] = ()
    subject: SubjectSpec = field(default_factory=SubjectSpec)
    group: GroupSpec = field(default_factory=GroupSpec)

    def __post_init__(self) -> None:
        _label(self.name, "name")
        _label(self.task, "task")
        if not isinstance(self.source, str):
            raise _bad("source", "a string", self.source)
        _set(self, "tr", _number(self.tr, "tr", low=0, strict=True, optional=True))
        excludes = _texts(self.excludes, "excludes")
        excludes = tuple(e[4:] if e.startswith("sub-") else e for e in excludes)
        for label in excludes:
            _label(label, "excludes")
        _set(self, "excludes", _texts(excludes, "excludes"))
        for key, cls in _SECTIONS.items():
            if not isinstance(getattr(self, key), cls):
                raise _bad(key, f"a {cls.__name__}", str(getattr(self, key)))
        contrasts = self.contrasts
        if isinstance(contrasts, ContrastSpec) or not isinstance(contrasts, Sequence):
            raise _bad("contrasts", "a list of contrasts", str(contrasts))
        _set(self, "contrasts", tuple(contrasts))
        _check_unique_names(self.contrasts)
        auto = _texts(self.auto_contrasts, "auto_contrasts")
        for item in auto:
            _choice(item, "auto_contrasts", AutoContrast)
        order = get_args(AutoContrast)  # canonical order: equal specs give equal JSON
        _set(self, "auto_contrasts", tuple(sorted(auto, key=order.index)))

    __hash__ = _Spec.__hash__

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (without ``source``), with the schema version."""
        data = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        del data["source"]
        return {"schema_version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<model>") -> ModelSpec:
        """Build and validate a spec; errors name the field path and ``source``."""
        where = f"in {source}"
        allowed = ["schema_version"] + [f.name for f in fields(cls) if f.name != "source"]
        try:
            _check_keys(data, allowed, "the model")
            if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
                raise _bad("schema_version", str(SCHEMA_VERSION), data["schema_version"])
            for key in ("name", "task"):
                if key not in data:
                    raise ModelSpecError(f"The model has no '{key}'; add it")
            kwargs = {k: v for k, v in data.items() if k != "schema_version"}
        except ModelSpecError as err:
            raise locate(err, where) from None
        for key in [key for key in _SECTIONS if key in kwargs]:
            try:
                kwargs[key] = _SECTIONS[key].from_dict(kwargs[key], what=f"'{key}'")
            except ModelSpecError as err:
                raise locate(err, where, prefix=f"{key}.") from None
        if "contrasts" in kwargs:
            kwargs["contrasts"] = _contrast_list(kwargs["contrasts"], where)
        try:
            return cls(source=source, **kwargs)
        except ModelSpecError as err:
            raise locate(err, where) from None

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, 2-space indent): glmflow's native model file."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<json>") -> ModelSpec:
        """Parse :meth:`to_json` output (strict JSON: no NaN, no duplicate keys)."""
        return cls.from_dict(parse_json(text, source), source=source)


def _contrast_list(value: Any, where: str) -> tuple[ContrastSpec, ...]:
    if not isinstance(value, list):
        raise ModelSpecError(
            f"'contrasts' must be a list of contrasts; got {_show(value)} ({where})"
        )
    contrasts = []
    for i, item in enumerate(value):
        try:
            contrasts.append(ContrastSpec.from_dict(item, what=f"contrasts[{i}]"))
        except ModelSpecError as err:
            raise locate(err, where, prefix=f"contrasts[{i}].") from None
    return tuple(contrasts)


def _check_unique_names(contrasts: Sequence[ContrastSpec]) -> None:
    seen: set[str] = set()
    for contrast in contrasts:
        if not isinstance(contrast, ContrastSpec):
            raise _bad("contrasts", "a list of contrasts", str(contrast))
        if contrast.name in seen:
            raise ModelSpecError(
                f"Contrast name {_show(contrast.name)} is used twice; give each contrast a "
                "unique name"
            )
        seen.add(contrast.name)


def expand_contrasts(spec: ModelSpec, conditions: Sequence[str]) -> tuple[ContrastSpec, ...]:
    """All contrasts of ``spec`` for these conditions: auto contrasts first, then explicit.

    ``conditions`` are the condition regressors (after drops, renames and block merging; no
    modulator columns) in the order glm-express would list them (first appearance in the
    events). Pass ONE list for the whole dataset so that every subject gets the same pairwise
    contrasts (glm-express recomputes the order per subject and may flip "a-b" into "b-a").
    A generated contrast identical to an explicit one is kept once; a name clash between
    different definitions raises ModelSpecError.
    """
    generated: list[ContrastSpec] = []
    if "conditions" in spec.auto_contrasts:
        generated += condition_contrasts(conditions)
    if "pairwise" in spec.auto_contrasts:
        generated += default_contrasts(conditions)
    result: dict[str, ContrastSpec] = {}
    for contrast in (*generated, *spec.contrasts):
        other = result.setdefault(contrast.name, contrast)
        if other != contrast:
            raise ModelSpecError(
                f"Contrast {_show(contrast.name)} is defined twice ({_show(other.to_dict())} "
                f"and {_show(contrast.to_dict())}) in {spec.source}; rename the explicit contrast"
            )
    return tuple(result.values())


# ---------------------------------------------------------------- files
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ModelSpecError(
                f"Key '{key}' appears twice in one JSON object (JSON readers would silently "
                "keep the last); remove one"
            )
        data[key] = value
    return data


def _no_constant(name: str) -> None:
    raise ModelSpecError(f"{name} is not valid JSON; use a number or null")


def parse_json(text: str, source: str) -> Any:
    """Strict JSON: errors give line and column; NaN/Infinity and duplicate keys refused."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ModelSpecError(
            f"{source} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}; "
            "fix the syntax there"
        ) from None
    except ModelSpecError as err:
        raise ModelSpecError(f"{err} (in {source})") from None


def read_json(path: str | Path) -> Any:
    """Read a model file as strict JSON (UTF-8, BOM tolerated)."""
    path = Path(path)
    if not path.is_file():
        raise ModelSpecError(f"Model file {path} does not exist; check the path")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ModelSpecError(f"Model file {path} is not UTF-8 text ({err.reason})") from None
    return parse_json(text, str(path))


def load_model(path: str | Path, task: str | None = None) -> ModelSpec:
    """Load a model file, detecting its format.

    glmflow's native JSON (``ModelSpec.to_json``, has "schema_version") or a glm-express
    ``task_information.json`` (see :mod:`glmflow.core.taskinfo`; ``task`` may be omitted when
    the file holds one task). BIDS Stats Models are recognised and refused for now.
    """
    # imported here: taskinfo builds on this module
    from glmflow.core.taskinfo import task_information_to_spec

    data = read_json(path)
    if isinstance(data, Mapping) and ("Nodes" in data or "BIDSModelVersion" in data):
        raise ModelSpecError(
            f"{path} is a BIDS Stats Model, which glmflow does not support yet; write a "
            "glmflow model (ModelSpec.to_json) or a glm-express task_information.json"
        )
    if isinstance(data, Mapping) and "schema_version" in data:
        spec = ModelSpec.from_dict(data, source=str(path))
        if task is not None and task != spec.task:
            raise ModelSpecError(
                f"Model {path} is for task '{spec.task}', not '{task}'; pick the matching task"
            )
        return spec
    return task_information_to_spec(data, path, task)


def check_repetition_time(
    *,
    spec_tr: float | None,
    sidecar_tr: float | None,
    header_tr: float | None,
    bold_file: str | Path,
    model_file: str | Path,
) -> float:
    """Return the repetition time (s) of ``bold_file``, refusing any disagreement.

    ``sidecar_tr`` is the BOLD sidecar's RepetitionTime, ``header_tr`` the NIfTI pixdim[4]
    in seconds (None or 0 = unknown), ``spec_tr`` the model's "tr" (None = from the data).
    Values closer than ``TR_TOLERANCE`` agree. A header/sidecar conflict is a DatasetError, a
    model/data conflict a ModelSpecError; both name the values, files and the fix.
    """
    sidecar = _data_tr(sidecar_tr, "the sidecar's RepetitionTime", bold_file, zero_ok=False)
    header = _data_tr(header_tr, "the NIfTI header's pixdim[4]", bold_file, zero_ok=True)
    if sidecar and header and abs(sidecar - header) > TR_TOLERANCE:
        raise DatasetError(
            f"{bold_file}: the sidecar says RepetitionTime {sidecar:g} s but the NIfTI "
            f"header (pixdim[4]) says {header:g} s; BIDS takes the sidecar as authoritative: "
            "fix the header (or the sidecar, whichever is wrong)"
        )
    data_tr, origin = (
        (sidecar, "sidecar RepetitionTime") if sidecar else (header, "NIfTI header pixdim[4]")
    )
    if spec_tr is None:
        if data_tr is None:
            raise DatasetError(
                f"{bold_file} has no repetition time (no sidecar RepetitionTime, header "
                f'pixdim[4] is 0); add RepetitionTime to its sidecar or set "tr" in {model_file}'
            )
        return float(data_tr)
    try:
        spec_tr = _number(spec_tr, "tr", low=0, strict=True)
    except ModelSpecError as err:
        raise locate(err, f"in {model_file}") from None
    if data_tr is not None and abs(spec_tr - data_tr) > TR_TOLERANCE:
        hint = " (glm-express's builder writes tr 1.0 whatever the data)" if spec_tr == 1 else ""
        raise ModelSpecError(
            f'"tr" is {spec_tr:g} s in {model_file} but {bold_file} has {data_tr:g} s '
            f'({origin}); set "tr" to {data_tr:g} in {model_file} or remove it to use the '
            f"data's value{hint}"
        )
    return float(data_tr if data_tr is not None else spec_tr)


def _data_tr(value: Any, what: str, bold_file: str | Path, *, zero_ok: bool) -> float | None:
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise DatasetError(
            f"{what} of {bold_file} must be a positive number of seconds; got {_show(value)}"
        )
    return float(value) or None  # a zero pixdim[4] is how NIfTI says "unknown"
