"""The report pages of an output dataset: planned from its files, rendered as a graph.

Both levels call :func:`run_reports` after publishing their outputs (the participant level
its subject pages, the group level its group pages), and ``glmflow ... --reports-only``
calls :func:`rebuild_reports`: every page, from what was written, without running a level.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmflow.core.report import find_pages, write_index
from glmflow.errors import GlmflowError
from glmflow.execution import ExecutionError, ExecutionOptions, execute, hold_folder
from glmflow.runners.entry import enter_level
from glmflow.workflows.report import init_reports_wf

PathLike = str | os.PathLike
KINDS = ("subject", "group")


def run_reports(
    *,
    output_dir: PathLike,
    fmriprep_dir: PathLike | None,
    execution: ExecutionOptions,
    kinds: Sequence[str] = KINDS,
) -> list[Path]:
    """Render the pages of ``kinds`` of ``output_dir`` (``OUTPUT_DIR/glmflow``) and write
    ``index.html`` linking every page there is.

    Cached like every node (``execution.work_dir``): a page is rendered again only when a
    file it shows changed. Returns the pages rendered or reused, and the index. A page that
    cannot be made raises :class:`~glmflow.execution.ExecutionError` (see :func:`_fail`).
    """
    output_dir = Path(output_dir)
    pages = find_pages(output_dir, fmriprep_dir)
    chosen = [page for page in pages if page.kind in kinds]
    if chosen:
        try:
            # one node a page at the top of the graph: nothing to group by subject
            pages_only = ExecutionOptions.from_settings(execution, cluster_jobs="node")
            memo_dir = str(execution.work_dir / "report_memo") if execution.work_dir else None
            workflow = init_reports_wf(pages=chosen, output_dir=str(output_dir), memo_dir=memo_dir)
            execute(workflow, pages_only)
        except ExecutionError as err:
            _fail(output_dir, pages, chosen, err)
    index = write_index(output_dir, pages)
    return [output_dir / page.name for page in chosen] + [index]


def _fail(output_dir: Path, pages: list, chosen: list, err: ExecutionError) -> None:
    """A page that cannot be made fails the level, after its outputs were published (they
    are whole): the pages are outputs too (issue 10). None of this level's pages is
    published then, and an older copy of them would describe other maps: they are removed,
    and ``index.html`` links only the pages that remain."""
    removed = [page for page in chosen if (output_dir / page.name).is_file()]
    for page in removed:
        (output_dir / page.name).unlink()
    write_index(output_dir, [page for page in pages if (output_dir / page.name).is_file()])
    raise ExecutionError(
        f"Report pages not made ({err}); the level's outputs are written and "
        f"{len(removed)} older page(s) removed: fix the cause and rerun with --reports-only"
    ) from err


def rebuild_reports(
    *,
    bids_dir: PathLike,
    output_dir: PathLike,
    derivatives: PathLike | None = None,
    execution: ExecutionOptions | None = None,
    kinds: Sequence[str] = KINDS,
    **settings: Any,
) -> list[Path]:
    """Every report page (of ``kinds``) of ``output_dir/glmflow`` from the outputs already
    written.

    ``derivatives``: the fMRIPrep folder (default ``bids_dir/derivatives/fmriprep``);
    ``execution`` or its settings as for the levels (``work_dir``, ``plugin``, ...).
    """
    entry, rest = enter_level(
        bids_dir=bids_dir, output_dir=output_dir, derivatives=derivatives,
        execution=execution, keywords=settings,
    )  # fmt: skip
    if rest:
        raise TypeError(f"rebuild_reports got unexpected keyword(s) {', '.join(sorted(rest))}")
    if not entry.out.is_dir():
        raise GlmflowError(
            f"--reports-only: there are no glmflow outputs in {entry.out}; run the "
            "participant level first"
        )
    fmriprep = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"
    with hold_folder(entry.work_dir, "work"), hold_folder(entry.out, "output"):
        return run_reports(output_dir=entry.out, fmriprep_dir=fmriprep, execution=entry.options,
                           kinds=kinds)  # fmt: skip


__all__ = ["rebuild_reports", "run_reports"]
