"""glmflow's MultiProc: Nipype's, with a cheaper garbage collector, cheaper passes of its
loop (:class:`_CountedDependencies`), a driver that waits for its workers instead of polling
them, and dead workers reported.

Nipype's loop collects garbage at every pass; with the graph, pybids and nilearn in the
driver each pass cost 20-500 ms. Freezing the objects alive at the start out of the collector
keeps collecting what the loop itself creates and drops that cost.

A worker process killed while it runs a node (kill -9, the out-of-memory killer) breaks
Nipype's process pool: the node's future raises ``BrokenProcessPool`` inside Nipype's
done-callback, where the exception is lost, and the driver then waits for that result
forever. Here the callback records the lost node as a failed one, so Nipype reports it (a
crash file naming the node), stops submitting to the broken pool, and the run ends with one
line; a rerun resumes from the cache. The same holds for any error raised around a node
rather than inside it (Nipype's ``run_node`` reading back, on a full disk, a result it could
not write): Nipype's callback loses it and the driver waits forever; here it fails that node
with its traceback.

Each worker runs its BLAS (OpenBLAS, MKL) on its share of the cores, not on all of them:
with 2 processes on 2 cores each using 2 BLAS threads, a matrix-product-bound read of a
realistic run took 5-7 s instead of 2.2-2.5 s (4 threads on 2 cores, OpenBLAS's threads
spinning for work); the fit and contrasts are matrix products too.

Nipype's loop polls: a pass (results read, ready nodes found, resources summed), then a
sleep of ``poll_sleep_duration``. glmflow's 2 ms (``LOCAL_POLL_SECONDS``) keeps a chain of
small nodes moving, but while long nodes run every pass finds nothing new: the driver spent
13.2 s of CPU in 60.6 s of a realistic participant level, a fifth of one of the two cores
its workers computed on. Here a pass that submitted nothing and found no result waits until
a worker's node ends (its done-callback wakes the driver), so the loop costs a pass per
event and reacts to one at once.

A driver killed with kill -9 left its idle workers behind, each holding a Python heap,
forever (the pool's pipe stays open among the siblings). On Linux the workers here ask the
kernel to end them with their driver (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import scipy.sparse as ssp
from nipype.pipeline.plugins import MultiProcPlugin
from nipype.pipeline.plugins.multiproc import process_initializer
from threadpoolctl import threadpool_limits

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

WORKER_DIED = (
    "BrokenProcessPool: the worker process running this node died (killed by a signal: "
    "kill -9, or the out-of-memory killer); give the node more memory (--mem-gb) if it was "
    "the latter, and rerun the same command to resume from the cache\n"
)


_LIMITS: list = []  # the worker's BLAS limits, kept for its life
# the longest the driver waits for a worker's node to end before it looks again anyway
WAKE_SECONDS = 1.0


def blas_threads(workers: int) -> int:
    """BLAS threads of each of ``workers`` processes: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _worker_initializer(cwd: str, threads: int) -> None:
    """Nipype's set-up of a worker, which on Linux also ends when its driver does, with its
    BLAS limited to ``threads``.

    SIGKILL, not SIGTERM: a forked worker inherits the driver's SIGTERM handler (glmflow's
    run raises KeyboardInterrupt on it), which a busy worker catches with its node's error,
    and then it waits for work forever."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _LIMITS.append(threadpool_limits(limits=threads, user_api="blas"))
    process_initializer(cwd)


class _CountedDependencies(ssp.lil_matrix):
    """Nipype's dependency matrix (row: a node, columns: the nodes waiting on it) whose
    column sums are counted from its row lists.

    Nipype's loop asks for them twice a pass (``depidx.sum(0)``: the nodes ready to run);
    scipy's ``sum`` converts the LIL matrix to CSR and back each time, ~0.8 ms on a graph of
    250 nodes: the driver spent a core's worth of time on it while the workers ran
    (10 s of CPU in a 43 s contrast-edit rerun of 121 nodes on 2 cores). Counting from the
    lists Nipype edits in place (``getrowview``) gives the same matrix in ~0.1 ms."""

    def sum(self, axis=None, dtype=None, out=None):
        if axis not in (0, -2) or dtype is not None or out is not None:
            return super().sum(axis=axis, dtype=dtype, out=out)
        columns = np.fromiter(itertools.chain.from_iterable(self.rows), dtype=np.intp)
        values = np.fromiter(itertools.chain.from_iterable(self.data), dtype=np.float64)
        sums = np.bincount(columns, weights=values, minlength=self.shape[1])
        kind = self.dtype if self.dtype.kind in "fc" else np.result_type(self.dtype, np.int_)
        with warnings.catch_warnings():  # np.matrix, as scipy's sum returns
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return np.asmatrix(sums.astype(kind))


class FrozenGCMultiProc(MultiProcPlugin):
    """MultiProc with the driver's heap frozen out of gc and dead workers made node failures."""

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        # Nipype's pool has started no worker yet (they start at the first submit)
        self.pool.shutdown(wait=False)
        self.pool = ProcessPoolExecutor(
            max_workers=self.processors,
            initializer=_worker_initializer,
            initargs=(self._cwd, blas_threads(self.processors)),
            mp_context=mp.get_context(self.plugin_args.get("mp_context")),
        )
        self._node_ended = threading.Event()

    def run(self, graph, config, updatehash=False):
        # no collection first: it would traverse the whole heap (0.1-0.15 s a run, four runs
        # a realistic invocation); garbage frozen with the rest is held for the run (shared,
        # not copied, by forked workers) and goes back to the oldest generation when unfrozen
        gc.freeze()
        try:
            return super().run(graph, config, updatehash=updatehash)
        finally:
            gc.unfreeze()

    def _generate_dependency_list(self, graph):
        super()._generate_dependency_list(graph)
        self.depidx = _CountedDependencies(self.depidx)

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        self._node_ended.clear()  # before looking: an end after this wakes the wait below
        before = (len(self.pending_tasks), int(self.proc_done.sum()))
        super()._send_procs_to_workers(updatehash=updatehash, graph=graph)
        idle = (
            self.pending_tasks  # nodes run, and none was submitted or found cached
            and before == (len(self.pending_tasks), int(self.proc_done.sum()))
            and not any(taskid in self._taskresult for taskid, _ in self.pending_tasks)
        )
        if idle:
            self._node_ended.wait(WAKE_SECONDS)

    def _async_callback(self, future):
        try:
            super()._async_callback(future)
        except BrokenProcessPool:
            self._failed(future, [WORKER_DIED])
        except Exception as exc:  # noqa: BLE001 - any error lost here would hang the run
            # Nipype's run_node raised outside its node (reading back a result it could not
            # write on a full disk, a result that does not pickle): the node fails with it
            self._failed(future, traceback.format_exception(exc))
        finally:
            self._node_ended.set()

    def _failed(self, future, lines: list[str]) -> None:
        taskid = next((t for t, f in list(self._task_obj.items()) if f is future), None)
        if taskid is not None:
            self._taskresult[taskid] = {"result": None, "traceback": lines, "taskid": taskid}
