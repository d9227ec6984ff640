"""The folders a run writes: where the cache may go, and one run at a time in each.

A run holds a lock file in its work folder from the start (the pybids index and the cache
are written there) and one in its output folder while it writes there. A second run on the
same folder is refused at once with one line naming the holder: a run that waited would
redo the same work behind the first, silently and for as long as the first takes, while a
rerun once the first is done reuses its cache in seconds. A lock left by a run that died
(kill -9, a node's out-of-memory kill of the driver) names a process that no longer exists
on this host: it is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from glmflow.errors import DatasetError
from glmflow.execution.plugins import ExecutionError

LOGGER = logging.getLogger("glmflow")
LOCK_NAME = ".glmflow.lock"
_FIXES = {
    "work": "wait for it to finish or pass another -w (work_dir=)",
    "output": "wait for it to finish or choose another output folder",
}


class FolderInUseError(ExecutionError):
    """Another glmflow run holds the work or output folder."""


def validate_work_dir(
    work_dir: Path,
    bids_dir: str | os.PathLike,
    derivatives: str | os.PathLike | None,
    output_dir: str | os.PathLike | None = None,
) -> None:
    """The cache goes neither inside the inputs nor inside the output dataset.

    ``output_dir`` is the output dataset itself (``OUTPUT_DIR/glmflow``): a cache there
    would be published with the maps, and an output written in place would edit the cache.
    """
    work = Path(work_dir).resolve()
    bids = Path(bids_dir).resolve()
    fmriprep = Path(derivatives).resolve() if derivatives else bids / "derivatives" / "fmriprep"
    inside = [folder for folder in (fmriprep, bids) if work == folder or folder in work.parents]
    if inside and not (inside[0] == bids and bids / "derivatives" in work.parents):
        raise DatasetError(
            f"Work directory {work_dir} is inside the input dataset {inside[0]}; pass -w "
            "(work_dir=) outside it (the default ./work is relative to the current folder)"
        )
    out = Path(output_dir).resolve() if output_dir is not None else None
    if out is not None and (work == out or out in work.parents):
        raise DatasetError(
            f"Work directory {work_dir} is inside the output dataset {out}; pass -w "
            f"(work_dir=) outside it, e.g. {out.parent.parent / 'work'}"
        )


def this_command() -> str:
    """The command line of this process, as the user would type it again."""
    path = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if path.name == "glmflow" or (path.name == "main.py" and path.parent.name == "cli"):
        program = "glmflow"  # the console script, or `python -m glmflow.cli.main`
    elif path.name == "__main__.py":
        program = f"python -m {path.parent.name}"
    elif sys.argv[0] == "-c":
        program = "python -c"
    else:
        program = str(path)
    return " ".join([program, shlex.join(sys.argv[1:])]).rstrip()


@dataclass(frozen=True)
class _Holder:
    """Who holds a lock: process, host, start of the process (to tell a reused pid)."""

    pid: int
    host: str
    since: str
    started: str | None
    command: str

    @classmethod
    def me(cls) -> _Holder:
        command = this_command()
        command = command if len(command) <= 160 else f"{command[:157]}..."
        return cls(
            os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            _started(os.getpid()), command,
        )  # fmt: skip

    def alive(self) -> bool | None:
        """False: dead on this host; True: running; None: on another host (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        started = _started(self.pid)
        return not (self.started and started and started != self.started)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.command})"


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name, which may hold spaces: state is 3rd, starttime 22nd
    return stat.rpartition(")")[2].split()[19]


def _read(fd: int) -> _Holder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode(errors="replace")
    try:
        return _Holder(**json.loads(text))
    except (ValueError, TypeError):
        return None  # empty (free) or not ours


@contextlib.contextmanager
def _flocked(path: Path, *, create: bool = True) -> Iterator[int]:
    """The lock file's descriptor under an exclusive flock (short: check, then write)."""
    while True:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # released and removed while we waited: take the new file
    try:
        yield fd
    finally:
        os.close(fd)


def _acquire(path: Path, kind: str, folder: Path) -> _Holder:
    me = _Holder.me()
    with _flocked(path) as fd:
        holder = _read(fd)
        if holder is not None:
            alive = holder.alive()
            if alive is not False:
                raise FolderInUseError(
                    f"{kind.capitalize()} folder {folder} is in use by another glmflow run: "
                    f"{holder}; {_FIXES[kind]}"
                    + ("" if alive else f" (if that run is gone, delete {path})")
                )
            warnings.warn(
                f"{kind.capitalize()} folder {folder}: taking over the lock of a glmflow run "
                f"that ended without releasing it ({holder})",
                stacklevel=4,
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(asdict(me)).encode())
        os.fsync(fd)
    return me


def _release(path: Path, me: _Holder) -> None:
    with contextlib.suppress(FileNotFoundError), _flocked(path, create=False) as fd:
        if _read(fd) == me:
            path.unlink()


@contextlib.contextmanager
def hold_folder(folder: str | os.PathLike, kind: str, *, create: bool = True) -> Iterator[Path]:
    """Hold ``folder`` for this run; ``kind`` is "work" or "output".

    The folder is made if needed (and removed again if the run left it empty); with
    ``create=False`` a missing folder is not made and not held (a run that only reads it
    fails on its own, with its own message).

    Raises
    ------
    FolderInUseError
        Another live run holds it: one line naming its pid, host, start and command.
    """
    folder = Path(folder)
    if not create and not folder.is_dir():
        yield folder
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = _acquire(path, kind, folder)
    try:
        yield folder
    finally:
        _release(path, me)
        # a run that wrote nothing leaves no folder behind either
        for parent in made:
            with contextlib.suppress(OSError):
                parent.rmdir()
