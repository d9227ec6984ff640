"""The pybids index of a dataset and its fMRIPrep derivatives, stored and reused safely.

With a ``database_dir`` the index lives in ``<database_dir>/layout-<key>/``, ``<key>`` made
(:func:`glmflow.core.memo.memo_key`) of the two folders and the pybids version: pybids takes
the root from a stored index, so one folder never serves two datasets. Beside it,
``glmflow_fingerprint.txt`` holds :func:`dataset_fingerprint`, the key of every indexed
file's identity (path, inode, size, mtime): a stat walk costs milliseconds where pybids
re-indexing costs seconds to minutes. An index is built in a private folder, its fingerprint
written last, and only then moved into place (a rename), so a run started at the same time
never reads a half-built index: it finds the complete one, or none and builds its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from glmflow.core.memo import files_identity, memo_key, walk_files
from glmflow.errors import DatasetError

LOGGER = logging.getLogger("glmflow.core.bids")

NIFTI = [".nii.gz", ".nii"]
# Top-level folders pybids does not index in a raw dataset (plus dot files).
_RAW_IGNORED = {"derivatives", "code", "models", "sourcedata", "stimuli"}
_STAMP = "glmflow_fingerprint.txt"


class Found(NamedTuple):
    """A file of the index: its path and the entities of its name."""

    path: str
    entities: dict[str, Any]


def get_files(layout, **filters) -> list[Found]:
    """``layout.get`` as (path, entities) records.

    Entities are parsed from the file names with pybids' own rules: reading them from the
    pybids objects costs a database query per file, about 4x slower.
    """
    from bids.layout import parse_file_entities
    from bids.layout.models import Config

    configs = [Config.load("bids"), Config.load("derivatives")]
    return [
        Found(path, parse_file_entities(path, config=configs))
        for path in layout.get(return_type="filename", **filters)
    ]


def by_subject(files: list[Found]) -> dict[str | None, list[Found]]:
    """Group by subject so each run scans only its subject's files (plus dataset-level ones)."""
    groups: dict[str | None, list[Found]] = {}
    for f in files:
        groups.setdefault(f.entities.get("subject"), []).append(f)
    return groups


def index_dir(bids_dir: Path, deriv_dir: Path, database_dir: str | os.PathLike) -> Path:
    """The folder of the stored index of these two folders (made with this pybids)."""
    version = metadata.version("pybids")  # pybids' __version__, without importing it (~1 s)
    key = memo_key("bids-index", str(bids_dir), str(deriv_dir), version)[:12]
    return Path(database_dir).resolve() / f"layout-{key}"


def load_layout(bids_dir: Path, deriv_dir: Path, database_dir):
    """Build or reuse the pybids layout (the rules: the module docstring)."""
    if database_dir is None:
        return _layout(bids_dir, deriv_dir, None, reset=True)
    db_path = index_dir(bids_dir, deriv_dir, database_dir)
    root = db_path.parent
    fingerprint = dataset_fingerprint(bids_dir, deriv_dir)
    if index_stamp(db_path) == fingerprint:
        LOGGER.info("Reusing the BIDS index in %s (dataset unchanged)", db_path)
        return _layout(bids_dir, deriv_dir, db_path, reset=False)
    LOGGER.info("Indexing %s and %s into %s", bids_dir, deriv_dir, db_path)
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{db_path.name}.building-", dir=root))
    try:
        _layout(bids_dir, deriv_dir, building, reset=True)
        (building / _STAMP).write_text(fingerprint)  # last: marks the index complete
        _publish(building, db_path)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return _layout(bids_dir, deriv_dir, db_path, reset=False)


def index_stamp(db_path: Path) -> str | None:
    """The fingerprint a complete index in ``db_path`` was built from (None: no index)."""
    try:
        return (db_path / _STAMP).read_text()
    except OSError:
        return None


def _publish(building: Path, db_path: Path) -> None:
    """Move a complete index into place; an older one is moved aside first, then removed.

    Between the two renames a reader finds no index and builds its own: it never finds a
    partial one. If another run published first, its (equally complete) index stays.
    """
    old = db_path.with_name(f".{db_path.name}.old-{uuid.uuid4().hex}")
    try:
        os.rename(db_path, old)
    except FileNotFoundError:
        pass
    try:
        os.rename(building, db_path)
    except OSError:  # another run's index took the place: keep it
        pass
    shutil.rmtree(old, ignore_errors=True)


def _layout(bids_dir: Path, deriv_dir: Path, db_path: Path | None, *, reset: bool):
    from bids import BIDSLayout  # deferred: pybids import costs ~1 s

    try:
        return BIDSLayout(
            bids_dir,
            validate=False,
            derivatives=str(deriv_dir),
            database_path=db_path,
            reset_database=reset,
        )
    except OSError as err:  # pybids' words for a sidecar that is not valid JSON
        bad = _invalid_json(bids_dir, deriv_dir)
        if bad is None:
            raise DatasetError(f"pybids cannot index {bids_dir}: {err}") from None
        raise bad from None


def _invalid_json(bids_dir: Path, deriv_dir: Path) -> DatasetError | None:
    """The first sidecar that is not valid JSON, as one line naming it and where it breaks."""
    for root, skip_top in ((deriv_dir, set()), (bids_dir, _RAW_IGNORED)):
        for relative, _ in walk_files(root, skip_top):
            if not relative.endswith(".json"):
                continue
            path = root / relative
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                return DatasetError(
                    f"Sidecar {path} is not valid JSON ({err}); fix the file (pybids cannot "
                    "index the dataset)"
                )
    return None


def dataset_fingerprint(bids_dir: str | os.PathLike, deriv_dir: str | os.PathLike) -> str:
    """Key of the identity (path, inode, size, mtime) of every file pybids indexes.

    Used to decide whether a stored pybids index is still valid.
    """
    files = []
    for root, skip_top in ((Path(bids_dir), _RAW_IGNORED), (Path(deriv_dir), set())):
        files.append([str(root), files_identity(root, skip_top)])
    return memo_key("bids-files", files)
