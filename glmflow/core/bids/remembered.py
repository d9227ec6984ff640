"""The runs found in a stored pybids index, remembered beside it until the dataset changes.

A model edit (a contrast, a confound) reruns the participant level, and finding its runs
again gives the same answer for 0.7-0.8 s of the realistic study's ~2.8 s start-up: the
pybids import and the stored index's load (:func:`~glmflow.core.bids.layout.load_layout`).
The runs found with one selection are kept in the index's own folder
(``layout-<key>/runs-<key>.json``), so they are valid exactly as long as the index is: its
fingerprint (every indexed file's path, inode, size and mtime) is checked first, and a
rebuilt index starts with none. The key adds the selection and glmflow's code identity.

What the search said is said again when its runs are recalled: its warnings, with their
classes, and its log lines (the subjects excluded); a search that fails is not kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmflow.core.bids.layout import current_index
from glmflow.core.memo import category_name, code_identity, memo_key, warning_category
from glmflow.core.publish import atomic_write_text

if TYPE_CHECKING:
    from glmflow.core.bids.runs import RunInputs

LOGGER = logging.getLogger("glmflow.core.bids")
# the search's own log lines (said again), not the index's (which is not loaded again)
SAID_LOGGER = "glmflow.core.bids.select"


def remembered_runs(
    find: Callable[[], list[RunInputs]],
    load: Callable[[dict], RunInputs],
    bids_dir: Path,
    deriv_dir: Path,
    database_dir,
    selection: Mapping[str, Any],
) -> list[RunInputs]:
    """``find()``'s runs, recalled from the current index's folder (each made by ``load``
    from its ``to_dict()``) or found and kept there."""
    key = memo_key("runs", code_identity(), str(bids_dir), str(deriv_dir), dict(selection))
    index = current_index(bids_dir, deriv_dir, database_dir)
    record = _read(index / f"runs-{key}.json") if index is not None else None
    if record is not None:
        LOGGER.info("Reusing the runs found in the BIDS index in %s (dataset unchanged)", index)
        _say_again(record)
        return [load(run) for run in record["runs"]]
    with _said() as said:
        found = find()
    index = current_index(bids_dir, deriv_dir, database_dir)  # the one find() built or read
    if index is not None:
        record = {"runs": [run.to_dict() for run in found], **said}
        atomic_write_text(index / f"runs-{key}.json", json.dumps(record))
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _say_again(record: Mapping[str, Any]) -> None:
    for message in record["logs"]:
        logging.getLogger(SAID_LOGGER).info("%s", message)
    for category, message in record["warnings"]:
        warnings.warn(message, warning_category(category), stacklevel=4)


class _Recorder(logging.Handler):
    def __init__(self, logs: list[str]) -> None:
        super().__init__(logging.INFO)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append(record.getMessage())


@contextlib.contextmanager
def _said() -> Iterator[dict[str, list]]:
    """Record the warnings and log lines said inside; the warnings are said on leaving.

    Every warning is recorded, whatever the filters and the registry of those already said
    hold now, and said again through them, here as when recalled.
    """
    said: dict[str, list] = {"logs": [], "warnings": []}
    logger = logging.getLogger(SAID_LOGGER)
    handler = _Recorder(said["logs"])
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield said
            finally:
                said["warnings"] = [[category_name(w.category), str(w.message)] for w in caught]
    finally:
        logger.removeHandler(handler)
        for category, message in said["warnings"]:
            warnings.warn(message, warning_category(category), stacklevel=5)


__all__ = ["remembered_runs"]
