"""The connectivity model: the ``"connectivity"`` section of a glmflow model JSON, validated.

A model file for resting state holds one object::

    {"connectivity": {
        "name": "rest", "task": "rest",
        "atlas": {"name": "harvard_oxford"}                      # an offline parcellation
              | {"labels_img": "atlas.nii.gz", "labels_tsv": "atlas.tsv", "label": "mine"}
              | {"maps_img": "maps.nii.gz", "labels_tsv": "maps.tsv"}   # 4-D probabilistic
              | {"maps": "harvard_oxford"}              # an offline probabilistic atlas
              | {"coordinates": "power_2011", "radius": 5}       # a coordinate atlas
              | {"coordinates": [[0, -52, 26], ...], "names": ["pcc", ...], "label": "dmn"},
        "seeds": [{"name": "pcc", "coordinates": [0, -52, 26], "radius": 8}],
        "measures": ["correlation", "partial correlation", "tangent", "covariance",
                     "precision", "sparse inverse covariance"],
        "confounds": {... glmflow's confounds section: columns, wildcards, strategy ...},
        "detrend": true, "standardize": "zscore_sample", "standardize_confounds": true,
        "high_pass": 0.01, "low_pass": 0.08, "fisher_z": true,
        "group": {... glmflow's group section: design, group_column, covariates,
                  contrasts, inference (fdr, bonferroni, fpr, permutation max_t, none)}}}

Relative paths (``labels_img``, ``maps_img``, ``labels_tsv``) are taken from the model
file's folder.
Every field is checked here, once; errors are one line naming the field and the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from glmflow.core.model import validation as check
from glmflow.core.model.group_specs import GroupSpec
from glmflow.core.model.jsonfile import read_json
from glmflow.core.model.stages import ConfoundsSpec
from glmflow.core.model.validation import locate
from glmflow.core.rest.atlas_spec import AtlasSpec, MapsAtlas, check_coordinate
from glmflow.core.rest.denoise import DenoiseSpec
from glmflow.errors import ModelSpecError

Measure = Literal[
    "correlation",
    "partial correlation",
    "tangent",
    "covariance",
    "precision",
    "sparse inverse covariance",
]
#: The measures whose values are correlations (Fisher z applies to them).
CORRELATIONS = ("correlation", "partial correlation")
Standardize = Literal["zscore_sample", "psc"]
#: Group inference methods an edge-wise model supports (the others are voxel-map methods).
EDGE_INFERENCE = ("none", "fpr", "fdr", "bonferroni", "permutation")


@dataclass(frozen=True)
class SeedSpec(check.Spec):
    """A seed for a seed-to-voxel correlation map: a sphere of ``radius`` mm."""

    name: str
    coordinates: tuple[float, float, float]
    radius: float = 6.0

    def __post_init__(self) -> None:
        check.label(self.name, "name")
        check.assign(self, "coordinates", check_coordinate(self.coordinates, "coordinates"))
        check.number(self.radius, "radius", low=0)


@dataclass(frozen=True)
class CleanSpec(check.Spec):
    """nilearn ``signal.clean`` options (``high_pass`` / ``low_pass`` in Hz, the run's TR)."""

    detrend: bool = True
    standardize: Standardize | None = "zscore_sample"
    standardize_confounds: bool = True
    high_pass: float | None = 0.01
    low_pass: float | None = 0.08

    def __post_init__(self) -> None:
        check.flag(self.detrend, "detrend")
        if self.standardize is False:  # nilearn's old spelling of "no standardisation"
            check.assign(self, "standardize", None)
        if self.standardize is not None:
            check.choice(self.standardize, "standardize", Standardize)
        check.flag(self.standardize_confounds, "standardize_confounds")
        high = check.number(self.high_pass, "high_pass", low=0, strict=True, optional=True)
        low = check.number(self.low_pass, "low_pass", low=0, strict=True, optional=True)
        if high is not None and low is not None and high >= low:
            raise check.FieldError(
                "high_pass", f"({high:g} Hz) must be below low_pass ({low:g} Hz)"
            )
        check.assign(self, "high_pass", high)
        check.assign(self, "low_pass", low)

    def nilearn(self, t_r: float) -> dict[str, Any]:
        """Keyword arguments of ``nilearn.signal.clean`` and nilearn's maskers."""
        return {**self.to_dict(), "t_r": t_r}


_CLEAN_KEYS = tuple(f.name for f in fields(CleanSpec))


@dataclass(frozen=True)
class ConnectivitySpec:
    """One resting-state analysis: atlas, seeds, denoising, measures and group model."""

    name: str
    task: str
    atlas: AtlasSpec | None = None
    seeds: tuple[SeedSpec, ...] = ()
    measures: tuple[Measure, ...] = ("correlation",)
    confounds: ConfoundsSpec = field(default_factory=ConfoundsSpec)
    denoise: DenoiseSpec | None = None  # a load_confounds_strategy preset, instead
    clean: CleanSpec = field(default_factory=CleanSpec)
    fisher_z: bool = True
    plots: bool = True
    group: GroupSpec = field(default_factory=GroupSpec)
    source: str = "<model>"
    base_dir: str = "."

    def __post_init__(self) -> None:
        check.label(self.name, "name")
        check.label(self.task, "task")
        measures = check.texts(self.measures, "measures")
        for item in measures:
            check.choice(item, "measures", Measure)
        check.assign(self, "measures", measures)
        if self.atlas is None and not self.seeds:
            raise ModelSpecError('The connectivity model needs an "atlas" or "seeds"; add one')
        if self.atlas is not None and not measures:
            raise check.FieldError("measures", "must name at least one measure with an atlas")
        names = [s.name for s in self.seeds]
        for item in names:
            if names.count(item) > 1:
                raise check.FieldError("seeds", f"names {check.show(item)} twice")
        radii = sorted({s.radius for s in self.seeds})
        if len(radii) > 1:
            raise check.FieldError(
                "seeds.radius",
                f"has values {', '.join(f'{r:g}' for r in radii)}; give every seed the same "
                "radius (one sphere size per model: run a model per radius)",
            )
        check.flag(self.fisher_z, "fisher_z")
        check.flag(self.plots, "plots")
        method = self.group.inference.method
        if method not in EDGE_INFERENCE:
            raise check.bad(
                "group.inference.method", "one of " + ", ".join(EDGE_INFERENCE), method
            )
        if method == "permutation" and self.group.inference.permutation_stat != "max_t":
            raise check.FieldError(
                "group.inference.permutation_stat", 'must be "max_t" over edges (no clusters)'
            )
        if self.group.design == "paired":
            raise check.FieldError("group.design", 'must not be "paired" for connectivity')
        _check_edge_group(self.group)

    def resolve(self, path: str) -> str:
        """A path of the model, relative to the model file's folder."""
        return str(Path(self.base_dir, os.path.expanduser(path)))

    def portable(self) -> dict[str, Any]:
        """:meth:`to_dict` with the atlas files as absolute paths (what graph nodes take)."""
        data = self.to_dict()
        for key in ("labels_img", "maps_img", "labels_tsv"):
            if data.get("atlas", {}).get(key):
                data["atlas"][key] = str(Path(self.resolve(data["atlas"][key])).resolve())
        return data

    def to_dict(self) -> dict[str, Any]:
        """The JSON section (relative paths as written)."""
        data = {
            "name": self.name,
            "task": self.task,
            "seeds": [s.to_dict() for s in self.seeds],
            "measures": list(self.measures),
            "confounds": (self.denoise or self.confounds).to_dict(),
            **self.clean.to_dict(),
            "fisher_z": self.fisher_z,
            "plots": self.plots,
            "group": self.group.to_dict(),
        }
        if self.atlas is not None:
            data["atlas"] = self.atlas.to_dict()
        return data


# group keys that only mean something for voxel maps, with why (their defaults are allowed)
_VOXEL_ONLY = {
    "conditions": "names first-level contrasts of a paired design (refused for edges)",
    "first_level_contrasts": "chooses first-level contrast maps; edges come from the measures",
    "method": 'is for maps ("fixed" needs variance maps); edges are fitted by OLS',
    "smoothing_fwhm": "smooths maps; a matrix of edges has no space to smooth",
    "target_affine": "resamples maps; edges have no grid",
    "target_shape": "resamples maps; edges have no grid",
    "minimize_memory": "writes residual maps; edges write t, z and p matrices only",
    "output_types": "chooses the maps written; edges write t, z and p matrices",
}  # fmt: skip
_VOXEL_ONLY_INFERENCE = {
    "z_threshold": 'is for the "threshold" method of maps; edges use alpha',
    "cluster_threshold": "sizes clusters of voxels; edges form no clusters",
    "cluster_forming_p": "forms clusters of voxels; edges form no clusters",
    "min_distance": "separates peaks in cluster tables; edges have no peaks",
}


def _check_edge_group(group: GroupSpec) -> None:
    """Refuse the group options that would do nothing for edges (one line, the key, why)."""
    default = GroupSpec()
    checks = [
        ("group.", group, default, _VOXEL_ONLY),
        ("group.inference.", group.inference, default.inference, _VOXEL_ONLY_INFERENCE),
    ]
    for prefix, given, default, why in checks:
        for key, reason in why.items():
            if getattr(given, key) != getattr(default, key):
                raise check.FieldError(
                    f"{prefix}{key}",
                    f"does nothing in a connectivity model: it {reason}; remove it",
                )


_SECTION_KEYS = (
    "name", "task", "atlas", "seeds", "measures", "confounds", "fisher_z", "plots", "group",
)  # fmt: skip


def connectivity_spec(
    model: str | os.PathLike | Mapping[str, Any] | ConnectivitySpec, *, source: str | None = None
) -> ConnectivitySpec:
    """The connectivity model from a JSON file, its dict (whole or the section) or a spec.

    Raises ModelSpecError, one line naming the field and the file.
    """
    if isinstance(model, ConnectivitySpec):
        return model
    base = "."
    if isinstance(model, str | os.PathLike):
        source, base = str(model), str(Path(model).resolve().parent)
        model = read_json(model)
    where = f"in {source or 'the connectivity model'}"
    if isinstance(model, Mapping) and "connectivity" in model:
        if set(model) - {"connectivity", "schema_version"}:
            extra = sorted(set(model) - {"connectivity", "schema_version"})
            raise ModelSpecError(f"Unknown key '{extra[0]}' next to 'connectivity' ({where})")
        model = model["connectivity"]
    try:
        check.keys(model, [*_SECTION_KEYS, *_CLEAN_KEYS], "'connectivity'")
        for key in ("name", "task"):
            if key not in model:
                raise ModelSpecError(f"The connectivity model has no '{key}'; add it")
    except ModelSpecError as err:
        raise locate(err, where) from None
    kwargs = {k: v for k, v in model.items() if k in _SECTION_KEYS}
    if isinstance(kwargs.get("confounds"), Mapping) and "denoise_strategy" in kwargs["confounds"]:
        try:
            kwargs["denoise"] = DenoiseSpec.from_dict(kwargs.pop("confounds"))
        except ModelSpecError as err:
            raise locate(err, where, prefix="confounds.") from None
    parts = {
        "atlas": lambda v: AtlasSpec.from_dict(v, what="'atlas'"),
        "seeds": lambda v: tuple(SeedSpec.from_dict(s, what="'seeds'") for s in _list(v)),
        "confounds": lambda v: ConfoundsSpec.from_dict(v, what="'confounds'"),
        "group": lambda v: GroupSpec.from_dict(v, what="'group'"),
    }
    for key in [k for k in parts if k in kwargs]:
        try:
            kwargs[key] = parts[key](kwargs[key])
        except ModelSpecError as err:
            raise locate(err, where, prefix=f"{key}.") from None
    try:
        clean = CleanSpec(**{k: v for k, v in model.items() if k in _CLEAN_KEYS})
        spec = ConnectivitySpec(**kwargs, clean=clean, source=source or "<model>", base_dir=base)
    except ModelSpecError as err:
        raise locate(err, where) from None
    return spec


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise check.bad("seeds", "a list of seed objects", value)
    return value


__all__ = [
    "CORRELATIONS",
    "AtlasSpec",
    "CleanSpec",
    "ConnectivitySpec",
    "MapsAtlas",
    "Measure",
    "SeedSpec",
    "connectivity_spec",
]
