"""The model: :class:`ModelSpec`, one task's complete specification, and its JSON form."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, get_args

from glmflow.core.model import validation as check
from glmflow.core.model.contrast_specs import (
    AutoContrast,
    ContrastSpec,
    _check_unique_names,
    condition_contrasts,
    default_contrasts,
)
from glmflow.core.model.group_specs import GroupSpec
from glmflow.core.model.jsonfile import parse_json
from glmflow.core.model.stages import ConfoundsSpec, DesignSpec, EventsSpec, GlmSpec, SubjectSpec
from glmflow.core.model.validation import _jsonable, locate
from glmflow.errors import ModelSpecError

SCHEMA_VERSION = 1

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
        check.label(self.name, "name")
        check.label(self.task, "task")
        if not isinstance(self.source, str):
            raise check.bad("source", "a string", self.source)
        check.assign(self, "tr", check.number(self.tr, "tr", low=0, strict=True, optional=True))
        excludes = check.texts(self.excludes, "excludes")
        excludes = tuple(e[4:] if e.startswith("sub-") else e for e in excludes)
        for label in excludes:
            check.label(label, "excludes")
        check.assign(self, "excludes", check.texts(excludes, "excludes"))
        for key, cls in _SECTIONS.items():
            if not isinstance(getattr(self, key), cls):
                raise check.bad(key, f"a {cls.__name__}", str(getattr(self, key)))
        contrasts = self.contrasts
        if isinstance(contrasts, ContrastSpec) or not isinstance(contrasts, Sequence):
            raise check.bad("contrasts", "a list of contrasts", str(contrasts))
        check.assign(self, "contrasts", tuple(contrasts))
        _check_unique_names(self.contrasts)
        auto = check.texts(self.auto_contrasts, "auto_contrasts")
        for item in auto:
            check.choice(item, "auto_contrasts", AutoContrast)
        order = get_args(AutoContrast)  # canonical order: equal specs give equal JSON
        check.assign(self, "auto_contrasts", tuple(sorted(auto, key=order.index)))

    __hash__ = check.Spec.__hash__

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
            check.keys(data, allowed, "the model")
            if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
                raise check.bad("schema_version", str(SCHEMA_VERSION), data["schema_version"])
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
            f"'contrasts' must be a list of contrasts; got {check.show(value)} ({where})"
        )
    contrasts = []
    for i, item in enumerate(value):
        try:
            contrasts.append(ContrastSpec.from_dict(item, what=f"contrasts[{i}]"))
        except ModelSpecError as err:
            raise locate(err, where, prefix=f"contrasts[{i}].") from None
    return tuple(contrasts)


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
            first, second = check.show(other.to_dict()), check.show(contrast.to_dict())
            raise ModelSpecError(
                f"Contrast {check.show(contrast.name)} is defined twice ({first} "
                f"and {second}) in {spec.source}; rename the explicit contrast"
            )
    return tuple(result.values())
