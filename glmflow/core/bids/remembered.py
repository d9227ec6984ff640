"""The runs found in a stored pybids index, remembered beside it until the dataset changes.

A model edit (a contrast, a confound) reruns the participant level, and finding its runs
again gives the same answer for 0.4 s of a realistic study's start-up: the pybids import
and the stored index's load (:func:`~glmflow.core.bids.layout.load_layout`). The runs found
with one selection are kept in the index's own folder (``layout-<key>/runs-<key>.json``),
so they are valid exactly as long as the index is: they are recalled only while the index's
stamp is the dataset's fingerprint (every indexed file's path, inode, size and mtime), and
written only if the stamp and the dataset both still have the fingerprint the search began
with (an index rebuilt or a file edited meanwhile keeps nothing). A rebuilt index starts
with none. The key adds the selection and glmflow's code identity.

What the search said is said again when its runs are recalled: glmflow's own warnings, with
their classes, and its log lines (the subjects excluded), whatever the log level was when
they were recorded. A search that fails keeps nothing; a record that cannot be written
(another run moving the index into place) is not kept either, and the search's answer
stands.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmflow.core.bids.layout import dataset_fingerprint, index_dir, index_stamp
from glmflow.core.memo import category_name, code_identity, memo_key, warning_category
from glmflow.core.publish import atomic_write_text

if TYPE_CHECKING:
    from glmflow.core.bids.runs import RunInputs

LOGGER = logging.getLogger("glmflow.core.bids")
# the search's own log lines (said again), not the index's (which is not loaded again)
SAID_LOGGER = "glmflow.core.bids.select"
# glmflow's folder (with its separator: not a sibling named glmflow-*): its own warnings
_PACKAGE = os.path.join(str(Path(__file__).resolve().parents[2]), "")


def remembered_runs(
    find: Callable[[], list[RunInputs]],
    load: Callable[[dict], RunInputs],
    bids_dir: Path,
    deriv_dir: Path,
    database_dir: str | os.PathLike | None,
    selection: Mapping[str, Any],
) -> list[RunInputs]:
    """``find()``'s runs, recalled from the current index's folder (each made by ``load``
    from its ``to_dict()``) or found and kept there; without a ``database_dir`` (an index
    in memory) always found."""
    if database_dir is None:
        return find()
    key = memo_key("runs", code_identity(), str(bids_dir), str(deriv_dir), dict(selection))
    index = index_dir(bids_dir, deriv_dir, database_dir)
    path = index / f"runs-{key}.json"
    fingerprint = dataset_fingerprint(bids_dir, deriv_dir)
    record = _read(path) if index_stamp(index) == fingerprint else None
    if record is not None:
        LOGGER.info("Reusing the runs found in the BIDS index in %s (dataset unchanged)", index)
        # said from discover_runs' caller: _say, remembered_runs, discover_runs, the caller
        _say(record["logs"], record["warnings"], stacklevel=4)
        return [load(run) for run in record["runs"]]
    with _said() as said:
        found = find()
    unchanged = index_stamp(index) == fingerprint == dataset_fingerprint(bids_dir, deriv_dir)
    if unchanged:
        _keep(path, {"runs": [run.to_dict() for run in found], **said})
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _keep(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` whole into the index's folder, if that folder is still there.

    No folder is made: one made here would take the place of an index another run is
    moving into it (:func:`~glmflow.core.bids.layout.load_layout`'s renames).
    """
    with contextlib.suppress(OSError):  # the folder was moved aside meanwhile: nothing kept
        atomic_write_text(path, json.dumps(record), make_parent=False)


def _say(logs, warned, stacklevel: int) -> None:
    """Log the lines and warn the warnings (from the frame ``stacklevel`` counts to)."""
    logger = logging.getLogger(SAID_LOGGER)
    for level, message in logs:
        logger.log(level, "%s", message)
    for category, message in warned:
        warnings.warn(message, warning_category(category), stacklevel=stacklevel)


class _Recorder(logging.Handler):
    def __init__(self, logs: list) -> None:
        super().__init__(logging.NOTSET)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append([record.levelno, record.getMessage()])


@contextlib.contextmanager
def _said() -> Iterator[dict[str, list]]:
    """Record glmflow's warnings and the search's log lines said inside, and say them on
    leaving, as a recall says them.

    The search's logger records at INFO whatever its level (and hands nothing on while it
    records); its lines then go through the logger as set. glmflow's warnings are all
    recorded, whatever the filters and the registry of those already said hold now, and
    said again through them; other packages' (pybids' deprecations) go through the filters
    as they come and are not kept.
    """
    said: dict[str, list] = {"logs": [], "warnings": []}
    logger = logging.getLogger(SAID_LOGGER)
    handler, level, propagate = _Recorder(said["logs"]), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("always", module="glmflow")
            show = warnings.showwarning

            def record(message, category, filename, lineno, *args, **kwargs):
                if not os.path.abspath(filename).startswith(_PACKAGE):
                    return show(message, category, filename, lineno, *args, **kwargs)
                said["warnings"].append([category_name(category), str(message)])
                return None

            warnings.showwarning = record
            yield said
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        # said from discover_runs' caller: _say, _said, contextlib's __exit__,
        # remembered_runs, discover_runs, the caller
        _say(said["logs"], said["warnings"], stacklevel=6)


__all__ = ["remembered_runs"]
