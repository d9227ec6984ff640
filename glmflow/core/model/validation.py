"""The validation kit of the spec: field checks whose messages name the field, rule and value.

Each sub-spec validates itself in ``__post_init__`` with these helpers; a bad value raises
``FieldError`` (the field name and the rule), which :func:`locate` turns into one line naming
the field path and the file at the boundary (``ModelSpec.from_dict``, the glm-express
translator).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any, get_args

from glmflow.errors import ModelSpecError

_LABEL = re.compile(r"[A-Za-z0-9]+")


# ---------------------------------------------------------------- validation helpers
class FieldError(ModelSpecError):
    """A bad value for one field; rendered with the field path and file at the boundary."""

    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message
        super().__init__(f"'{name}' {message}")


def show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def bad(name: str, rule: str, value: Any) -> FieldError:
    return FieldError(name, f"must be {rule}; got {show(value)}")


def locate(err: ModelSpecError, where: str, *, prefix: str = "", rename=None) -> ModelSpecError:
    """Return ``err`` as one line naming the field path and ``where`` (e.g. "in model.json")."""
    if isinstance(err, FieldError):
        name = (rename or {}).get(err.name, err.name)
        return ModelSpecError(f"'{prefix}{name}' {err.message} ({where})")
    return ModelSpecError(f"{err} ({where})")


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(name, "a non-empty string", value)
    return value


def label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise bad(name, "a BIDS label (letters and digits only)", value)
    return value


def texts(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise bad(name, "a list of strings", value)
    items = tuple(text(v, name) for v in value)
    for item in items:
        if items.count(item) > 1:
            raise FieldError(name, f"lists {show(item)} twice; remove the duplicate")
    return items


def choice(value: Any, name: str, allowed: Any) -> Any:
    options = get_args(allowed)
    if not isinstance(value, str) or value not in options:
        raise bad(name, "one of " + ", ".join(show(o) for o in options), value)
    return value


def number(
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
        raise bad(name, rule + (" or null" if optional else ""), value)
    return float(value)


def integer(value: Any, name: str, *, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise bad(name, f"an integer >= {low}", value)
    return value


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise bad(name, "true or false", value)
    return value


def keys(data: Any, allowed: Sequence[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ModelSpecError(f"{what} must be a JSON object; got {show(data)}")
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


class Spec:
    """to_dict/from_dict shared by the sub-specs (fields are JSON scalars or lists)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, what: str | None = None) -> Any:
        """Build from a JSON object; unknown keys are refused with a close-match hint."""
        keys(data, [f.name for f in fields(cls)], what or f"'{cls.__name__}'")
        return cls(**data)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Spec):
        return value.to_dict()
    return value


def assign(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalise a frozen dataclass field in __post_init__
