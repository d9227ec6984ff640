"""A level that nothing touched is not run again: the stamp of its last success.

Nipype's cache reruns no node when nothing changed, but finding that out costs the whole
planning (pybids index, pre-flight), the graph's construction and one hash check per node:
3-70 s on 200 runs, most of a no-change rerun. After a level succeeds, its runner writes a
*stamp* in the work folder: the key of everything the level read (every input file's
identity, the model file's bytes, the selection options, glmflow's code and the versions of
what it computes with) and the identity of every file it wrote. A rerun whose key and
outputs both match returns the stamp's result without planning or building anything.
Anything else runs the level as before, and Nipype reruns only what the change touched:

- an input file rewritten, added or removed (its path, inode, size or mtime);
- the model file edited (any byte), another option, another glmflow or dependency version,
  an edited glmflow source file;
- an output deleted or edited in place (its inode, size or mtime): the run publishes it
  again (:func:`glmflow.core.publish.publish`).

Execution settings (plugin, processes, memory) change nothing computed, so they are not part
of the key. A stamp is written only if the inputs' key is the same before and after the run
(an input edited while the level ran leaves no stamp).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmflow.core.memo import (
    category_name,
    code_identity,
    files_identity,
    memo_key,
    stat_identity,
    warning_category,
)
from glmflow.core.publish import atomic_write_json

STAMP_DIR = "level_stamps"


def tree_identity(folder: str | os.PathLike, skip: Iterable[str] = ()) -> list:
    """The identity of every file under ``folder``, minus the top-level names in ``skip``
    (:func:`glmflow.core.memo.files_identity`, the pybids index fingerprint's walk)."""
    return [str(folder), files_identity(folder, skip)]


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a (small) file's bytes (the model file, a design TSV); None when it cannot
    be read (the level's own checks then say so in one line)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def level_key(level: str, *parts: Any) -> str:
    """The key of a level's inputs: ``parts`` (JSON-able) and the code's identity."""
    return memo_key("level", level, code_identity(), *parts)


def dataset_level_key(
    level: str, *, bids_dir: Path, fmriprep: Path, output_dir: Path, model: Path, options: Any
) -> str:
    """The key of a level that reads a dataset and a model file (:func:`level_key`).

    The raw dataset but its ``derivatives`` (work and output folders may live there), the
    fMRIPrep folder, the model file's bytes, ``options`` (JSON-able) and the output folder.
    """
    return level_key(
        level,
        [str(bids_dir), str(fmriprep), str(output_dir), str(model)],
        file_digest(model),
        options,
        tree_identity(bids_dir, skip=("derivatives",)),
        tree_identity(fmriprep),
    )


def _identity(path: Path) -> list[int] | None:
    try:
        return stat_identity(path.stat())
    except OSError:
        return None


def file_identities(paths: Iterable[str | os.PathLike]) -> list:
    """[path, its identity or None] of each of ``paths`` (files a level reads beside the
    dataset, such as a model's mask image)."""
    return [[str(p), _identity(Path(p))] for p in paths]


def _stamp_path(work_dir: Path, level: str, output_dir: Path) -> Path:
    # one stamp per level and output folder: two outputs from one work folder keep theirs
    return work_dir / STAMP_DIR / f"{level}-{memo_key(str(output_dir))[:12]}.json"


@dataclass(frozen=True)
class Recalled:
    """What the last identical run returned: its files, summary, warnings and payload."""

    files: tuple[Path, ...]
    summary: str
    warnings: tuple[tuple[str, str], ...]
    payload_file: Path
    extra: tuple[Path, ...] = ()  # the other files it wrote (remember's extra_outputs)

    def lazy(self) -> RecalledSequence:
        """The payload (a tuple) as a sequence unpickled on first use."""
        return RecalledSequence(self.payload_file)

    def say_warnings(self) -> None:
        """The warnings the run said, said again (the checks that raised them still hold)."""
        for category, message in self.warnings:
            warnings.warn(message, warning_category(category), stacklevel=3)


class RecalledSequence(Sequence):
    """A tuple stored with a stamp, unpickled (with what it imports) when first read."""

    def __init__(self, payload_file: Path) -> None:
        self._file = payload_file
        self._items: tuple | None = None

    def _loaded(self) -> tuple:
        if self._items is None:
            with open(self._file, "rb") as f:
                self._items = tuple(pickle.load(f))
        return self._items

    def __getitem__(self, index):
        return self._loaded()[index]

    def __len__(self) -> int:
        return len(self._loaded())

    def __eq__(self, other) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._loaded())


def recall(work_dir: Path, level: str, output_dir: Path, key: str) -> Recalled | None:
    """The stamp's result if its key is ``key`` and every file it lists is as it left it."""
    path = _stamp_path(work_dir, level, output_dir)
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("key") != key:
        return None
    for name, identity in stamp["outputs"].items():
        if _identity(Path(name)) != identity:
            return None
    payload = path.with_suffix(".pkl")
    if not payload.is_file():
        return None
    return Recalled(
        files=tuple(Path(name) for name in stamp["files"]),
        summary=stamp["summary"],
        warnings=tuple(tuple(pair) for pair in stamp["warnings"]),
        payload_file=payload,
        extra=tuple(Path(name) for name in stamp.get("extra", ())),
    )


def remember(
    work_dir: Path,
    level: str,
    output_dir: Path,
    keys: tuple[str, str],
    *,
    files: Sequence[Path],
    summary: str,
    said: Sequence[tuple[str, str]],
    payload: Any,
    extra_outputs: Sequence[Path] = (),
) -> Path | None:
    """Write the stamp of a level that succeeded (``keys``: its inputs' key before, after).

    ``files`` are the outputs it returns, ``extra_outputs`` other files it wrote (the
    dataset description); the identity of each is recorded.
    """
    path = _stamp_path(work_dir, level, output_dir)
    if keys[0] != keys[1]:  # an input changed while the level ran
        path.unlink(missing_ok=True)
        return None
    outputs = {str(p): _identity(Path(p)) for p in [*files, *extra_outputs]}
    if any(identity is None for identity in outputs.values()):
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    payload_file = path.with_suffix(".pkl")
    tmp = payload_file.with_name(f".{payload_file.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, payload_file)
    stamp = {
        "key": keys[0],
        "outputs": outputs,
        "files": [str(p) for p in files],
        "extra": [str(p) for p in extra_outputs],
        "summary": summary,
        "warnings": [list(pair) for pair in said],
    }
    return atomic_write_json(path, stamp)


# both levels rewrite the report index: it is no level's own output to check
SHARED_PAGE = "index.html"


def own_pages(pages: Sequence[Path]) -> list[Path]:
    """A level's report pages but the index both levels rewrite."""
    return [Path(p) for p in pages if Path(p).name != SHARED_PAGE]


def pages(recalled: Recalled, output_dir: Path) -> tuple[Path, ...]:
    """A recalled level's pages: its own (after the dataset description) and the index."""
    index = Path(output_dir) / SHARED_PAGE
    return (*recalled.extra[1:], *([index] if index.is_file() else []))


def forget(work_dir: Path, level: str, output_dir: Path) -> None:
    """Remove a level's stamp (a run that failed or changed what it wrote)."""
    _stamp_path(work_dir, level, output_dir).unlink(missing_ok=True)


class WarningLog:
    """Record the warnings shown while it is active, showing them as before."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def __enter__(self) -> WarningLog:
        self._show = warnings.showwarning

        def show(message, category, *args, **kwargs):
            self.said.append((category_name(category), str(message)))
            return self._show(message, category, *args, **kwargs)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc) -> None:
        warnings.showwarning = self._show


__all__ = [
    "Recalled",
    "RecalledSequence",
    "WarningLog",
    "category_name",
    "code_identity",
    "dataset_level_key",
    "file_identities",
    "file_digest",
    "forget",
    "level_key",
    "recall",
    "remember",
    "tree_identity",
]
