"""The entry of a level run: every path made absolute once, the execution options, checks.

Both levels start here, from the CLI and from Python alike, so that nodes running in their
own folders never see a relative path, and the folder rules are checked once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmflow.core.outputs import check_output_dir
from glmflow.execution import ExecutionOptions, absolute_path, validate_work_dir

PathLike = str | os.PathLike


@dataclass(frozen=True)
class LevelEntry:
    """A level run's folders (absolute) and execution options (work folder always set)."""

    bids_dir: Path
    output_dir: Path
    derivatives: Path | None
    options: ExecutionOptions

    @property
    def out(self) -> Path:
        """The output dataset, ``OUTPUT_DIR/glmflow``."""
        return self.output_dir / "glmflow"

    @property
    def work_dir(self) -> Path:
        return self.options.work_dir


def absolute_paths(values: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """``values`` with the path-valued ``keys`` that are set made absolute."""
    return {
        key: absolute_path(value) if key in keys and value is not None else value
        for key, value in values.items()
    }


def enter_level(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    derivatives: PathLike | None,
    execution: ExecutionOptions | None,
    keywords: Mapping[str, Any],
) -> tuple[LevelEntry, dict[str, Any]]:
    """(the run's entry, the keywords that are not execution settings).

    Raises the folder errors (output inside the inputs, cache inside the inputs or the
    output dataset) and the options' own, before anything is read or written.
    """
    options, rest = ExecutionOptions.split(dict(keywords), execution)
    paths = absolute_paths(
        {"bids_dir": bids_dir, "output_dir": output_dir, "derivatives": derivatives},
        ("bids_dir", "output_dir", "derivatives"),
    )
    entry = LevelEntry(**paths, options=options.with_default_work_dir())
    check_output_dir(entry.out, entry.bids_dir, entry.derivatives)
    validate_work_dir(entry.work_dir, entry.bids_dir, entry.derivatives, entry.out)
    return entry, rest
