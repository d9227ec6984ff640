"""Strict JSON for model files: line and column on errors, no NaN, no duplicate keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmflow.errors import ModelSpecError


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
