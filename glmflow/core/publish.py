"""Atomic writes, and publishing a level's outputs once the level has succeeded.

Outputs never share storage with the cache: a user edits a written map in place (an
ordinary ``nib.save`` over it), and a hard link would carry the edit into Nipype's cache and
the contrast memo, which hand it on to the next run. So every output is a private copy: a
reflink where the file system offers one (copy-on-write: no bytes copied, and an edit still
changes only the output), else a byte copy.

A level does not write into the output folder while it computes: its sinks list what goes
where (a *manifest*: source file in the work folder -> destination) and :func:`publish`
copies the files once the whole graph has succeeded. A failed level leaves the output
folder as it was. Publishing copies only what changed: a destination whose size and
modification time equal its source's (the copy takes the source's time) is left alone, so
a rerun rewrites an output the user edited and nothing else.

Writes are atomic: a temporary file in the target folder, then ``os.replace``; a crash never
leaves a half-written output under its final name.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_copy",
    "atomic_write_json",
    "atomic_write_text",
    "publish",
    "write_dataset_description",
    "write_manifest",
]

BIDS_VERSION = "1.9.0"

_FICLONE = 0x40049409  # linux/fs.h: reflink the whole file (btrfs, XFS, bcachefs...)


def _temp_name(path: Path) -> Path:
    # Dot-prefixed so that BIDS tools and pybids ignore a leftover from a killed process;
    # the name is cut so that a long final name (up to 255 bytes) still gets a temp file.
    return path.with_name(f".{path.name[:200]}.{uuid.uuid4().hex[:12]}.tmp")


def atomic_write_text(path: str | os.PathLike, text: str, *, make_parent: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    ``make_parent=False``: the folder must exist (``FileNotFoundError`` otherwise), for a
    folder another process may move away, which a folder made here would replace.
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        # os.open with 0o666 honours the umask, unlike tempfile's private 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted, strict JSON, atomically.

    A non-finite number (a threshold no voxel reaches is +inf) becomes ``null``: JSON has no
    Infinity or NaN, and readers other than Python's refuse them.
    """
    text = json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def atomic_copy(
    src: str | os.PathLike, dst: str | os.PathLike, *, make_parent: bool = True
) -> Path:
    """Place a private copy of ``src`` at ``dst`` atomically (reflink if possible, else copy).

    Never a hard link: ``dst`` shares no storage with ``src``, so editing one leaves the
    other intact. ``dst`` gets ``src``'s modification time (see :func:`publish`).
    ``make_parent`` False: the caller made ``dst``'s folder.

    One open of each file and an in-kernel copy between them (``os.copy_file_range``, else
    ``os.sendfile``): a level publishes thousands of files, and each system call on the
    file system's metadata costs (shutil's copy opens and stats both files again).
    """
    src, dst = Path(src), Path(dst)
    if make_parent:
        dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dst)
    try:
        # O_EXCL; 0o666 minus the umask, as an ordinary new file
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            stat = os.fstat(fin.fileno())
            _copy_contents(fin.fileno(), fout.fileno(), stat.st_size)
            os.utime(fout.fileno(), ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def _copy_contents(fin: int, fout: int, size: int) -> None:
    """Copy ``size`` bytes between two open files: a reflink where the file system has them
    (btrfs, XFS), else in the kernel."""
    try:
        fcntl.ioctl(fout, _FICLONE, fin)
        return
    except OSError:  # no reflink here (ext4, tmpfs, NFS, another device)
        pass
    copy = getattr(os, "copy_file_range", None)
    done = 0
    while done < size:
        try:
            n = copy(fin, fout, size - done) if copy else os.sendfile(fout, fin, done, size - done)
        except OSError:  # copy_file_range across file systems on older kernels
            if copy is None:
                raise
            copy = None
            os.lseek(fin, done, os.SEEK_SET)
            os.lseek(fout, done, os.SEEK_SET)
            continue
        if n == 0:  # the source shrank while it was copied
            break
        done += n


def write_manifest(path: str | os.PathLike, pairs: Iterable[tuple[Path, Path]]) -> Path:
    """Record ``(source, destination)`` pairs for :func:`publish` (a JSON list of pairs)."""
    return atomic_write_json(path, [[str(src), str(dst)] for src, dst in pairs])


def publish(manifest_files: Sequence[str | os.PathLike]) -> list[Path]:
    """Copy every listed source to its destination unless the destination is up to date.

    Up to date: same size and modification time as the source (:func:`atomic_copy` gives
    the copy the source's time, and an edit in place changes it). Returns the
    destinations that were (re)written, in the manifests' order.

    The copies run in :data:`COPY_THREADS` threads (the copy and its system calls release
    the GIL): a level of 100 subjects writes ~19,000 files, ~5 s one after another.
    """
    sources = {  # a destination listed twice gets its last source, as one after another
        Path(dst): Path(src)
        for manifest in manifest_files
        for src, dst in json.loads(Path(manifest).read_text())
    }
    pairs = [(src, dst) for dst, src in sources.items()]
    for folder in {dst.parent for _, dst in pairs}:  # each folder made once, not per file
        folder.mkdir(parents=True, exist_ok=True)
    if len(pairs) < 2 * COPY_THREADS:
        copied = map(_refreshed, pairs)
    else:
        with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="glmflow-publish") as pool:
            copied = list(pool.map(_refreshed, pairs))
    return [dst for dst in copied if dst is not None]


def _refreshed(pair: tuple[Path, Path]) -> Path | None:
    """The destination, copied from the source, or None when it was up to date."""
    src, dst = pair
    return None if _up_to_date(src, dst) else atomic_copy(src, dst, make_parent=False)


#: threads copying a level's outputs (:func:`publish`)
COPY_THREADS = 4


def _up_to_date(src: Path, dst: Path) -> bool:
    try:
        theirs, ours = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    return theirs.st_size == ours.st_size and theirs.st_mtime_ns == ours.st_mtime_ns


def write_dataset_description(
    output_dir: str | os.PathLike,
    *,
    source_datasets: Sequence[str | os.PathLike | Mapping[str, Any]],
    name: str = "glmflow GLM outputs",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``dataset_description.json`` for the derivatives (only if it changed).

    ``source_datasets`` are folders (recorded as ``file://`` URLs) or BIDS
    ``SourceDatasets`` objects (``{"URL": ..., "DOI": ..., "Version": ...}``).
    """
    from glmflow import __version__

    description = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "glmflow",
                "Version": __version__,
                "CodeURL": "https://pypi.org/project/glmflow/",
            }
        ],
        "SourceDatasets": [
            dict(s) if isinstance(s, Mapping) else {"URL": Path(s).resolve().as_uri()}
            for s in source_datasets
        ],
        **(extra or {}),
    }
    path = Path(output_dir) / "dataset_description.json"
    text = json.dumps(description, indent=2) + "\n"
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path
