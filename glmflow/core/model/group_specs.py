"""Group level (dataset level) specs: the design, the fit and the inference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from glmflow.core.model import validation as check
from glmflow.core.model.contrast_specs import ContrastSpec, _check_unique_names

GroupDesign = Literal["one-sample", "two-sample", "paired", "covariates"]
GroupMethod = Literal["ols", "fixed"]
# nilearn SecondLevelModel.compute_contrast's output types: which group maps are written
GroupOutputType = Literal["z_score", "stat", "p_value", "effect_size", "effect_variance", "all"]
InferenceMethod = Literal["none", "fpr", "fdr", "bonferroni", "threshold", "permutation", "tdp"]
PermutationStat = Literal["max_t", "size", "mass", "tfce"]
#: Group contrast whose outputs keep the first-level contrast's name (one-sample mean).
MEAN_CONTRAST = "mean"


@dataclass(frozen=True)
class InferenceSpec(check.Spec):
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
        check.choice(self.method, "method", InferenceMethod)
        alpha = self.alpha
        if check.number(alpha, "alpha", low=0, strict=True, high=1) == 1:
            raise check.bad("alpha", "a number between 0 and 1 (exclusive)", alpha)
        check.assign(self, "alpha", float(alpha))
        check.assign(self, "z_threshold", check.number(self.z_threshold, "z_threshold", low=0))
        check.integer(self.cluster_threshold, "cluster_threshold", low=0)
        check.flag(self.two_sided, "two_sided")
        check.integer(self.n_perm, "n_perm", low=1)
        if self.seed is not None:
            check.integer(self.seed, "seed", low=0)
        check.choice(self.permutation_stat, "permutation_stat", PermutationStat)
        forming = self.cluster_forming_p
        number = check.number(
            forming, "cluster_forming_p", low=0, strict=True, high=1, optional=True
        )
        if number == 1:
            raise check.bad("cluster_forming_p", "a p-value between 0 and 1 (exclusive)", forming)
        check.assign(self, "cluster_forming_p", number)
        distance = check.number(self.min_distance, "min_distance", low=0, strict=True)
        check.assign(self, "min_distance", distance)
        if self.method == "tdp" and self.two_sided:
            raise check.FieldError(
                "two_sided",
                'must be false with method "tdp" (it tests positive clusters; add the '
                "negated contrast for negative effects)",
            )
        needs_p = self.method == "permutation" and self.permutation_stat in ("size", "mass")
        if needs_p and self.cluster_forming_p is None:
            raise check.FieldError(
                "cluster_forming_p",
                f'must be set for permutation_stat "{self.permutation_stat}" (the '
                "cluster-forming p-value, e.g. 0.001)",
            )


@dataclass(frozen=True)
class GroupSpec(check.Spec):
    """Group level (dataset level): which subject maps, which design, which contrasts.

    ``design``: "one-sample" (an ``intercept``), "two-sample" (one indicator column
    ``<group_column>_<level>`` per level of ``group_column``, no intercept), "paired" (the
    two first-level contrasts in ``conditions``, a ``<c0>_minus_<c1>`` column plus one
    column per subject) or "covariates" (an intercept plus at least one covariate).
    ``covariates`` are participants.tsv columns (numeric as they are, text dummy coded),
    demeaned when ``demean_covariates``. ``first_level_contrasts`` names the subject-level
    contrasts modelled (empty: every one found). ``contrasts`` are over the design columns;
    empty means the design's defaults (``glmflow.core.group.default_group_contrasts``).
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
        check.choice(self.design, "design", GroupDesign)
        check.choice(self.method, "method", GroupMethod)
        self._check_columns()
        self._check_design()
        self._check_fit()
        if self.inference.method == "permutation":
            self._check_permutation()

    def _check_columns(self) -> None:
        """The participants.tsv columns and first-level contrasts the design names."""
        check.assign(self, "covariates", check.texts(self.covariates, "covariates"))
        check.assign(self, "conditions", check.texts(self.conditions, "conditions"))
        levels = check.texts(self.first_level_contrasts, "first_level_contrasts")
        check.assign(self, "first_level_contrasts", levels)
        check.flag(self.demean_covariates, "demean_covariates")
        column = self.group_column
        if column is not None:
            check.text(column, "group_column")
        if "participant_id" in (*self.covariates, column):
            raise check.bad(
                "covariates" if column != "participant_id" else "group_column",
                "participants.tsv columns other than participant_id",
                list(self.covariates) if column != "participant_id" else column,
            )
        if (self.design == "two-sample") != (column is not None):
            raise check.FieldError(
                "group_column",
                'must name the participants.tsv column of the groups with design "two-sample"'
                if column is None
                else f'is only used by design "two-sample", not "{self.design}"; remove it',
            )
        if column is not None and column in self.covariates:
            raise check.FieldError(
                "covariates", f"lists the group column {check.show(column)}; remove it"
            )

    def _check_design(self) -> None:
        """What each design needs and refuses."""
        if self.design == "paired":
            if len(self.conditions) != 2:
                raise check.bad(
                    "conditions",
                    'the two first-level contrasts compared by design "paired"',
                    list(self.conditions),
                )
            if self.covariates:
                raise check.FieldError(
                    "covariates",
                    'cannot be used with design "paired": its subject columns absorb every '
                    "between-subject effect; remove them",
                )
            if self.first_level_contrasts:
                raise check.FieldError(
                    "first_level_contrasts",
                    'is not used by design "paired" (it models "conditions"); remove it',
                )
        elif self.conditions:
            raise check.FieldError(
                "conditions", f'is only used by design "paired", not "{self.design}"; remove it'
            )
        if self.design == "covariates" and not self.covariates:
            raise check.FieldError(
                "covariates", 'must name at least one column with design "covariates"'
            )

    def _check_fit(self) -> None:
        """Contrasts, smoothing, grid, outputs, and what method "fixed" refuses."""
        contrasts = self.contrasts
        if isinstance(contrasts, ContrastSpec) or not isinstance(contrasts, Sequence):
            raise check.bad("contrasts", "a list of contrasts", str(contrasts))
        check.assign(self, "contrasts", tuple(contrasts))
        _check_unique_names(self.contrasts)
        fwhm = check.number(self.smoothing_fwhm, "smoothing_fwhm", low=0, optional=True)
        check.assign(self, "smoothing_fwhm", fwhm or None)
        self._check_grid()
        check.flag(self.minimize_memory, "minimize_memory")
        outputs = check.texts(self.output_types, "output_types")
        if not outputs:
            raise check.bad("output_types", "at least one output type", list(outputs))
        for item in outputs:
            check.choice(item, "output_types", GroupOutputType)
        check.assign(self, "output_types", outputs)
        if self.method == "fixed" and not self.minimize_memory:
            raise check.FieldError(
                "minimize_memory",
                'must be true with method "fixed" (residual, predicted and r-squared maps '
                'come from the OLS fit of method "ols")',
            )
        if not isinstance(self.inference, InferenceSpec):
            raise check.bad("inference", "an InferenceSpec", str(self.inference))
        if self.method == "fixed" and self.smoothing_fwhm:
            raise check.FieldError(
                "smoothing_fwhm",
                'cannot be used with method "fixed" (smoothing would change the variance '
                'maps); smooth at the first level or use method "ols"',
            )

    def _check_permutation(self) -> None:
        """What inference method "permutation" (nilearn's permuted OLS) refuses."""
        if self.design == "paired":
            raise check.FieldError(
                "inference.method",
                '"permutation" of a paired design would shuffle maps across subjects '
                "(not exchangeable); use a parametric method, or a one-sample design on "
                "the subjects' difference contrast (e.g. face-house) with permutation",
            )
        if self.method == "fixed":
            raise check.FieldError(
                "inference.method",
                '"permutation" permutes an OLS model; use method "ols" or a parametric '
                'inference method with method "fixed"',
            )
        if self.target_affine is not None:
            raise check.FieldError(
                "target_affine",
                'cannot be used with inference method "permutation" (nilearn permutes maps '
                "on one grid); resample the maps first or use a parametric method",
            )
        f_tests = [c.name for c in self.contrasts if c.stat_type == "F"]
        if f_tests:
            raise check.FieldError(
                "inference.method",
                f'"permutation" tests t contrasts, but contrast {check.show(f_tests[0])} is an '
                "F test; use a parametric method or make it a t contrast",
            )

    def _check_grid(self) -> None:
        affine, shape = self.target_affine, self.target_shape
        if affine is not None:
            rule = "9 (3x3) or 16 (4x4) numbers in row order, or null"
            if isinstance(affine, str) or not isinstance(affine, Sequence):
                raise check.bad("target_affine", rule, affine)
            if len(affine) not in (9, 16):
                raise check.bad("target_affine", rule, list(affine))
            check.assign(
                self, "target_affine", tuple(check.number(v, "target_affine") for v in affine)
            )
        if shape is not None:
            if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) != 3:
                raise check.bad("target_shape", "three integers >= 1, or null", shape)
            check.assign(
                self, "target_shape", tuple(check.integer(v, "target_shape", low=1) for v in shape)
            )
            if affine is None:
                raise check.FieldError("target_shape", "needs target_affine; give both or neither")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, what: str | None = None) -> GroupSpec:
        """Build from JSON: ``contrasts`` as contrast objects, ``inference`` as an object."""
        check.keys(data, [f.name for f in fields(cls)], what or "'GroupSpec'")
        kwargs = dict(data)
        if "inference" in kwargs:
            try:
                kwargs["inference"] = InferenceSpec.from_dict(
                    kwargs["inference"], what="'group.inference'"
                )
            except check.FieldError as err:
                raise check.FieldError(f"inference.{err.name}", err.message) from None
        contrasts = kwargs.get("contrasts", [])
        if not isinstance(contrasts, list):
            raise check.bad("contrasts", "a list of contrasts", contrasts)
        items = []
        for i, item in enumerate(contrasts):
            try:
                items.append(ContrastSpec.from_dict(item, what=f"group contrasts[{i}]"))
            except check.FieldError as err:
                raise check.FieldError(f"contrasts[{i}].{err.name}", err.message) from None
        kwargs["contrasts"] = tuple(items)
        return cls(**kwargs)

    __hash__ = check.Spec.__hash__
