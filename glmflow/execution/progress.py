"""Live progress of a level: node counts, elapsed time, an ETA, the running nodes' names.

Plain Python (no Nipype import), so that the ETA and the wording are tested on their own.
:class:`Tracker` counts what the plugins report; :class:`Ticker` hands a :class:`Status` to
a sink every ``sink.every`` seconds from a thread and once at the end. Sinks:
:class:`ConsoleProgress` (one line rewritten in place on a terminal, periodic lines
otherwise; the CLI's) and :class:`LogProgress` (the Python API's default: ``logging``, logger
``glmflow.progress``, INFO). Any callable taking a :class:`Status` is a sink too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

LOGGER = logging.getLogger("glmflow.progress")
# a sink without an ``every`` attribute is called this often (seconds)
DEFAULT_EVERY = 10.0
# running node names shown at most
SHOWN_NAMES = 3


@dataclass(frozen=True)
class Status:
    """What a level is doing now; ``final`` on the last one, after the run."""

    level: str
    total: int
    done: int
    running: int
    queued: int
    failed: int
    cached: int
    elapsed: float
    eta: float | None
    running_names: tuple[str, ...] = ()
    jobs: tuple[int, int] | None = None  # (queued, running) batch jobs on SLURM / SGE
    final: bool = False


def estimate_eta(durations: Iterable[float], remaining: int, running: int) -> float | None:
    """Seconds left: the mean time of the nodes that ran, times the nodes left, shared
    among the nodes running at once (at least one); None before any node has run.

    Cached nodes are left out of ``durations`` (they take no time and would say "done soon").
    """
    times = list(durations)
    if not times:
        return None
    if remaining <= 0:
        return 0.0
    return sum(times) / len(times) * remaining / max(running, 1)


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"2 h 07 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_status(status: Status, width: int | None = None) -> str:
    """One line: ``participant_wf: 12/40 done, 2 running, 26 queued, 25 s, ETA 1 min 10 s
    (running: a, b)``; cut to ``width`` characters when given."""
    counts = f"{status.done}/{status.total} done"
    if status.cached:
        counts += f" ({status.cached} cached)"
    parts = [counts, f"{status.running} running", f"{status.queued} queued"]
    if status.failed:
        parts.append(f"{status.failed} failed")
    if status.jobs is not None:
        parts.append(f"jobs {status.jobs[0]} queued / {status.jobs[1]} running")
    parts.append(format_duration(status.elapsed))
    if status.final:
        complete = status.done == status.total and not status.failed
        ended = "finished in" if complete else "stopped after"
        parts[-1] = f"{ended} {parts[-1]}"
    elif status.eta is not None:
        parts.append(f"ETA {format_duration(status.eta)}")
    line = f"{status.level}: {', '.join(parts)}"
    if status.running_names and not status.final:
        names = ", ".join(status.running_names[:SHOWN_NAMES])
        more = len(status.running_names) - SHOWN_NAMES
        line += f" (running: {names}{f', +{more}' if more > 0 else ''})"
    if width is not None and len(line) > width:
        line = line[: max(width - 1, 0)] + "…"
    return line


def summarize_outputs(files: Iterable[Path], output_dir: Path, shown: int = 6) -> str:
    """``"outputs in OUT: sub-01/ (34 files), sub-02/ (34 files), 12 files at its top"``: the
    files per first-level folder (the first ``shown`` folders, then how many more)."""
    folders: dict[str, int] = {}
    top = 0
    for path in files:
        parts = Path(path).relative_to(output_dir).parts
        if len(parts) > 1:
            folders[parts[0]] = folders.get(parts[0], 0) + 1
        else:
            top += 1
    listed = [f"{name}/ ({n} file{'s' if n != 1 else ''})" for name, n in folders.items()]
    if len(listed) > shown:
        listed[shown:] = [f"{len(listed) - shown} more folder(s)"]
    if top:
        listed.append(f"{top} file{'s' if top != 1 else ''} at its top")
    return f"outputs in {output_dir}: {', '.join(listed) or 'none'}"


@dataclass
class Tracker:
    """Counts of one level's nodes, fed by the plugins (thread-safe)."""

    level: str
    total: int = 0
    clock: Callable[[], float] = time.monotonic
    started: dict[str, float] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    cached: int = 0
    jobs: tuple[int, int] | None = None
    _cached_next: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def begin(self, total: int) -> None:
        with self._lock:
            self.total = total

    def node_started(self, name: str) -> None:
        with self._lock:
            self.started[name] = self.clock()

    def node_cached(self, name: str) -> None:
        """The next end of ``name`` is a cache hit (its time says nothing about the rest)."""
        with self._lock:
            self._cached_next.add(name)

    def node_ended(self, name: str, ok: bool = True) -> None:
        with self._lock:
            since = self.started.pop(name, None)
            if not ok:
                self.failed += 1
                return
            self.done += 1
            if name in self._cached_next:
                self._cached_next.discard(name)
                self.cached += 1
            elif since is not None:
                self.durations.append(self.clock() - since)

    def set_done(self, done: int) -> None:
        """The Graph plugins: the count of nodes with a result, read from their folders."""
        with self._lock:
            self.done = done

    def set_jobs(self, scheduler: str, states: Iterable[str]) -> None:
        """This run's batch jobs by their SLURM reason ("None" when running) or SGE state
        ("r", "t", "Rr"; "qw", "hqw" wait): (queued, running)."""
        states = list(states)
        if scheduler == "SLURM":
            running = sum(state == "None" for state in states)
        else:
            running = sum("q" not in state and bool(set(state) & set("rt")) for state in states)
        with self._lock:
            self.jobs = (len(states) - running, running)

    def status(self, final: bool = False) -> Status:
        with self._lock:
            running = len(self.started)
            queued = max(self.total - self.done - self.failed - running, 0)
            return Status(
                level=self.level, total=self.total, done=self.done, running=running,
                queued=queued, failed=self.failed, cached=self.cached,
                elapsed=self.clock() - self.start,
                eta=estimate_eta(self.durations, queued + running, running),
                running_names=tuple(sorted(self.started, key=self.started.get)),
                jobs=self.jobs, final=final,
            )  # fmt: skip


class ConsoleProgress:
    """A sink writing to ``stream``: on a terminal one line rewritten in place every second;
    otherwise a line every ``every`` seconds (30 by default)."""

    def __init__(self, stream: TextIO, every: float | None = None):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every if every is not None else (1.0 if self.tty else 30.0)

    def __call__(self, status: Status) -> None:
        if self.tty:
            width = _terminal_width(self.stream)
            end = "\n" if status.final else ""
            self.stream.write(f"\r\x1b[K{format_status(status, width - 1)}{end}")
        else:
            self.stream.write(f"glmflow: {format_status(status)}\n")
        self.stream.flush()


class LogProgress:
    """A sink logging the status at INFO on ``glmflow.progress`` every ``every`` seconds."""

    def __init__(self, every: float = 30.0):
        self.every = every

    def __call__(self, status: Status) -> None:
        LOGGER.info("%s", format_status(status))


def progress_sink(progress) -> Callable[[Status], None] | None:
    """The sink of ``ExecutionOptions.progress``: None logs (:class:`LogProgress`), False is
    silent, True writes to stderr (:class:`ConsoleProgress`), a callable is called."""
    if progress is None:
        return LogProgress()
    if progress is False:
        return None
    if progress is True:
        import sys

        return ConsoleProgress(sys.stderr)
    return progress


def _terminal_width(stream: TextIO) -> int:
    """The terminal's columns; a terminal that says 0 (a new pseudo-terminal) gets $COLUMNS
    or 80."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns or int(os.environ.get("COLUMNS", "0") or 0) or 80


class Ticker:
    """Calls ``sink(tracker.status())`` every ``sink.every`` seconds from a thread, after
    ``poll()`` (which may refresh the tracker), and once more with ``final`` at :meth:`stop`."""

    def __init__(self, tracker: Tracker, sink: Callable[[Status], None], poll=None):
        self.tracker, self.sink, self.poll = tracker, sink, poll
        self.every = float(getattr(sink, "every", DEFAULT_EVERY))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="glmflow-progress", daemon=True)

    def _tick(self, final: bool = False) -> None:
        if self.poll is not None:
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - progress never ends a run
                LOGGER.debug("progress poll failed: %s", exc)
        self.sink(self.tracker.status(final=final))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._tick()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._stop.set()
        self._thread.join()
        # also after a failure: the terminal's line is ended before the error is said
        self._tick(final=True)
