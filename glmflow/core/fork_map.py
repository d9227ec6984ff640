"""A map over forked processes, for the planning's per-run work (issue 13, item 5).

The pre-flight checks every run (events parsed, confounds selected, design built, headers
read): ~40-90 ms a run, one run after another, while the level's other cores wait for the
graph. Forked workers start in milliseconds with every module the driver has imported (a
spawned one would import glmflow, pandas and nilearn again, seconds each), so on 2 cores
the pre-flight of 100 runs takes about half as long.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: fewer items than this run here: a pool's start (~50 ms) would cost more than it saves
MIN_ITEMS = 8


def fork_map(
    function: Callable[[T], R], items: Iterable[T], *, min_items: int = MIN_ITEMS
) -> list[R]:
    """``[function(item) for item in items]``, in forked worker processes when worth it.

    In order; an exception raised by ``function`` propagates as it would here (callers that
    must see every item's outcome return their errors instead of raising them). Runs here,
    one item after another, with fewer than ``min_items`` items, one core, no ``fork``
    start method (macOS, Windows) or inside a daemon process, which cannot have children.
    ``function`` and the items are pickled (a module-level function or a ``partial``).
    """
    items = list(items)
    workers = min(len(items), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count() or 1)  # fmt: skip
    if (
        workers < 2
        or len(items) < min_items
        or "fork" not in mp.get_all_start_methods()
        or mp.current_process().daemon
    ):
        return [function(item) for item in items]
    chunk = max(1, math.ceil(len(items) / (workers * 4)))
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(function, items, chunksize=chunk))


__all__ = ["MIN_ITEMS", "fork_map"]
