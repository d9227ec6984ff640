"""First-level stage specs (events, confounds, design, GLM) and the subject level's.

One frozen dataclass per pipeline stage, so a workflow node receives exactly the part it
depends on (``spec.events.to_dict()`` ...) and Nipype's cache reruns only what an edit
touched. Every rule a stage function would otherwise check on its options lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from glmflow.core.model import validation as check
from glmflow.core.model.validation import FrozenMap

ConfoundStrategy = Literal[
    "motion", "wm_csf", "global_signal", "compcor", "scrub", "non_steady_state", "high_pass"
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
MissingBlockColumn = Literal["error", "warn"]
RunCombination = Literal["equal", "precision"]
IncompleteEvents = Literal["error", "drop"]
MissingConditions = Literal["error", "ignore"]


@dataclass(frozen=True)
class EventsSpec(check.Spec):
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
    incomplete_events: IncompleteEvents = "error"
    missing_conditions: MissingConditions = "error"

    def __post_init__(self) -> None:
        column = check.text(self.condition_column, "condition_column")
        if column in ("onset", "duration"):
            raise check.bad("condition_column", "a column other than onset and duration", column)
        check.assign(self, "drop_conditions", check.texts(self.drop_conditions, "drop_conditions"))
        rename = self.rename_conditions
        if not isinstance(rename, Mapping):
            raise check.bad("rename_conditions", "an object mapping old to new names", rename)
        for old, new in rename.items():
            check.text(old, "rename_conditions")
            check.text(new, "rename_conditions")
            if old in self.drop_conditions:
                raise check.FieldError(
                    "rename_conditions", f"renames {check.show(old)}, which is dropped"
                )
        check.assign(self, "rename_conditions", FrozenMap(rename))
        block = self.block_column
        if block is not None and (
            check.text(block, "block_column") in ("onset", "duration", column)
        ):
            raise check.bad(
                "block_column",
                "a column other than onset, duration and the condition column, or null",
                block,
            )
        check.assign(self, "modulators", check.texts(self.modulators, "modulators"))
        for mod in self.modulators:
            if mod in ("onset", "duration", column, block):
                raise check.bad(
                    "modulators",
                    "numeric event columns other than onset, duration, "
                    "the condition and block columns",
                    list(self.modulators),
                )
        check.flag(self.demean_modulators, "demean_modulators")
        check.choice(self.missing_block_column, "missing_block_column", MissingBlockColumn)
        check.choice(self.incomplete_events, "incomplete_events", IncompleteEvents)
        check.choice(self.missing_conditions, "missing_conditions", MissingConditions)

    __hash__ = check.Spec.__hash__


@dataclass(frozen=True)
class ConfoundsSpec(check.Spec):
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
        check.assign(self, "columns", check.texts(self.columns, "columns"))
        check.assign(
            self, "optional_columns", check.texts(self.optional_columns, "optional_columns")
        )
        strategy = check.texts(self.strategy, "strategy")
        for item in strategy:
            check.choice(item, "strategy", ConfoundStrategy)
        if "compcor" in strategy and "high_pass" not in strategy:
            # nilearn's rule: fMRIPrep's CompCor components assume the cosine high-pass
            raise check.FieldError("strategy", 'contains "compcor", which needs "high_pass" too')
        check.assign(self, "strategy", strategy)
        for name in ("motion", "wm_csf", "global_signal"):
            check.choice(getattr(self, name), name, ConfoundModel)
        check.choice(self.compcor, "compcor", CompcorType)
        if self.n_compcor != "all":
            check.integer(self.n_compcor, "n_compcor", low=1)
        check.assign(
            self,
            "fd_threshold",
            check.number(self.fd_threshold, "fd_threshold", low=0, strict=True),
        )
        check.assign(
            self,
            "std_dvars_threshold",
            check.number(self.std_dvars_threshold, "std_dvars_threshold", low=0, strict=True),
        )
        check.integer(self.scrub, "scrub", low=0)
        check.flag(self.demean, "demean")


@dataclass(frozen=True)
class DesignSpec(check.Spec):
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
        check.choice(self.hrf_model, "hrf_model", HrfModel)
        if self.drift_model is not None:
            check.choice(self.drift_model, "drift_model", DriftModel)
        check.assign(
            self, "high_pass", check.number(self.high_pass, "high_pass", low=0, strict=True)
        )
        check.integer(self.drift_order, "drift_order", low=0)
        delays = self.fir_delays
        if isinstance(delays, str) or not isinstance(delays, Sequence):
            raise check.bad("fir_delays", "a list of integers >= 0", delays)
        check.assign(
            self, "fir_delays", tuple(check.integer(d, "fir_delays", low=0) for d in delays)
        )
        if len(set(self.fir_delays)) != len(self.fir_delays):
            raise check.bad("fir_delays", "distinct integers", list(delays))
        if self.hrf_model == "fir" and not self.fir_delays:
            raise check.FieldError(
                "fir_delays", 'must list the delays (in scans) for hrf_model "fir"'
            )
        if self.hrf_model != "fir" and self.fir_delays:
            delays, hrf = check.show(list(self.fir_delays)), check.show(self.hrf_model)
            rule = f'is only used with hrf_model "fir", not {hrf}; got {delays}'
            raise check.FieldError("fir_delays", rule)
        check.assign(self, "min_onset", check.number(self.min_onset, "min_onset"))
        check.integer(self.oversampling, "oversampling", low=1)


@dataclass(frozen=True)
class GlmSpec(check.Spec):
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
        check.choice(self.noise_model, "noise_model", NoiseModel)
        # None, not False, means "no scaling": False == 0 in Python would make the two equal
        scaling = None if self.signal_scaling is False else self.signal_scaling
        if scaling is not None and (scaling != 0 or not isinstance(scaling, int | float)):
            raise check.bad("signal_scaling", "0 (percent signal change) or null (none)", scaling)
        check.assign(self, "signal_scaling", None if scaling is None else 0)
        fwhm = check.number(self.smoothing_fwhm, "smoothing_fwhm", low=0, optional=True)
        check.assign(self, "smoothing_fwhm", fwhm)
        ref = check.number(self.slice_time_ref, "slice_time_ref", low=0, high=1, optional=True)
        check.assign(self, "slice_time_ref", ref)
        check.flag(self.minimize_memory, "minimize_memory")


@dataclass(frozen=True)
class SubjectSpec(check.Spec):
    """Subject level: how the runs of one subject are combined.

    ``run_combination`` "equal" is nilearn's multi-run ``FirstLevelModel`` (runs weighted
    equally: ``compute_fixed_effects(..., precision_weighted=False)``); "precision" is
    precision-weighted fixed effects (each run weighted by its inverse variance).
    """

    run_combination: RunCombination = "equal"

    def __post_init__(self) -> None:
        check.choice(self.run_combination, "run_combination", RunCombination)
