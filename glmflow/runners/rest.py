"""Resting-state connectivity: the participant level (a graph) and the group level.

The Python API (what the CLI and ``glmflow.glm_express.RestingState`` call):
:func:`run_connectivity` and :func:`run_connectivity_group`. The model is the
``"connectivity"`` section of a glmflow model JSON (:mod:`glmflow.core.rest.spec`): a file,
its dict, or a ``ConnectivitySpec``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmflow.core.bids import RunInputs, discover_runs
from glmflow.core.bids.runs import DEFAULT_SPACE
from glmflow.core.outputs import write_dataset_description
from glmflow.core.publish import publish
from glmflow.core.rest.group_files import connectivity_group_files
from glmflow.core.rest.plan import check_rest_runs
from glmflow.core.rest.spec import ConnectivitySpec, connectivity_spec
from glmflow.execution import ExecutionOptions, execute, hold_folder
from glmflow.runners.entry import enter_level
from glmflow.workflows.rest import init_rest_wf

PathLike = str | os.PathLike
Model = PathLike | Mapping[str, Any] | ConnectivitySpec


@dataclass(frozen=True)
class ConnectivityResult:
    """What a connectivity level wrote: ``files`` under ``output_dir`` (the glmflow folder)."""

    output_dir: Path
    spec: ConnectivitySpec
    runs: tuple[RunInputs, ...]
    files: tuple[Path, ...]
    work_dir: Path
    reports: tuple[Path, ...] = ()  # the connectivity pages and index.html (issue 10)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.runs})


def run_connectivity(
    bids_dir: PathLike,
    output_dir: PathLike,
    model: Model,
    *,
    participant_label: Sequence[str] | None = None,
    work_dir: PathLike | None = None,
    execution: ExecutionOptions | None = None,
    derivatives: PathLike | None = None,
    space: str = DEFAULT_SPACE,
    sessions: Sequence[str] | None = None,
    runs: Sequence[str | int] | None = None,
    **settings: Any,
) -> ConnectivityResult:
    """Participant level of a connectivity model: every run, and each subject's runs combined.

    Parameters
    ----------
    bids_dir, output_dir
        The raw BIDS dataset (fMRIPrep in ``derivatives``, default
        ``<bids_dir>/derivatives/fmriprep``) and the output folder (files go to
        ``output_dir/glmflow``, published only once every node has succeeded).
    model
        A model JSON file with a ``"connectivity"`` object, that object (or the whole file)
        as a dict, or a :class:`~glmflow.core.rest.spec.ConnectivitySpec`.
    participant_label, sessions, runs, space
        Which runs (labels with or without ``sub-``); the model's ``task`` is the task.
    work_dir, execution, **settings
        The cache folder (default ``./work``; a rerun recomputes only what changed) and the
        execution options (``plugin``, ``n_procs``, ...) as in ``run_participant_level``.

    Returns a :class:`ConnectivityResult`: per run ``..._desc-<model>_timeseries.tsv``,
    ``..._meas-<m>_desc-<model>_relmat.tsv`` (+ JSON sidecars: labels, denoising, censored
    volumes) and seed maps, per subject its runs' mean matrices (names:
    :mod:`glmflow.core.rest.files`). Raises a one-line ``glmflow.errors.GlmflowError``
    before any compute on a bad model, dataset, atlas, seed or run.
    """
    spec = connectivity_spec(model)
    if work_dir is not None:
        settings["work_dir"] = work_dir
    entry, _ = enter_level(bids_dir=bids_dir, output_dir=output_dir, derivatives=derivatives,
                           execution=execution, keywords=settings)  # fmt: skip
    with hold_folder(entry.work_dir, "work"), warnings.catch_warnings():
        # no design here: the slice-timing reference of the runs is not used
        warnings.filterwarnings("ignore", message="'slice_time_ref' not provided")
        found = discover_runs(
            entry.bids_dir, derivatives=entry.derivatives, space=space, tasks=[spec.task],
            participant_label=participant_label, sessions=sessions, runs=runs,
            database_dir=entry.work_dir / "bids_db", model_file=spec.source,
            task_given=False, need_events=False,
        )  # fmt: skip
        spec = check_rest_runs(found, spec)
        workflow = init_rest_wf(runs=found, spec=spec, output_dir=str(entry.out))
        fmriprep = entry.derivatives or entry.bids_dir / "derivatives" / "fmriprep"
        with hold_folder(entry.out, "output"):
            files = execute(workflow, entry.options)
            write_dataset_description(entry.out, source_datasets=[entry.bids_dir, fmriprep])
            pages = _reports(entry, fmriprep, "subject")
    return ConnectivityResult(entry.out, spec, tuple(found), tuple(files), entry.work_dir,
                              pages)  # fmt: skip


def _reports(entry, fmriprep, kind: str) -> tuple[Path, ...]:
    """The level's report pages and ``index.html`` (:mod:`glmflow.runners.reports`)."""
    from glmflow.runners.reports import run_reports

    return tuple(run_reports(output_dir=entry.out, fmriprep_dir=fmriprep,
                             execution=entry.options, kinds=(kind,)))  # fmt: skip


def run_connectivity_group(
    bids_dir: PathLike,
    output_dir: PathLike,
    model: Model,
    *,
    participant_label: Sequence[str] | None = None,
    work_dir: PathLike | None = None,
    execution: ExecutionOptions | None = None,
    participants: PathLike | None = None,
    space: str = DEFAULT_SPACE,
    **settings: Any,
) -> ConnectivityResult:
    """Group level of a connectivity model: an edge-wise GLM per measure and contrast.

    Reads the subject-level matrices :func:`run_connectivity` wrote in the same
    ``output_dir`` for this model (``desc-<name>``) and ``space`` (``tangent``: the
    subjects' time series, fitted here); every subject's node labels must match; the design comes
    from ``participants`` (default ``<bids_dir>/participants.tsv``) and the model's
    ``group`` section (``design`` one-sample / two-sample / covariates, ``group_column``,
    ``covariates``, ``contrasts`` (default: the design's), ``inference``: fdr, bonferroni,
    fpr, permutation (max-t over edges) or none). Writes, at the top of
    ``output_dir/glmflow``,
    ``task-<t>_space-<s>_seg-<a>_meas-<m>_contrast-<c>_stat-<t|z|p>_desc-<name>_relmat.tsv``,
    ``..._contrast-<c>_desc-<name>_edges.tsv`` (significant edges with region labels) and the
    design.
    ``participant_label`` keeps only these subjects; ``work_dir`` / ``execution`` as above
    (the group outputs are staged there and published once all are computed).
    """
    spec = connectivity_spec(model)
    if spec.atlas is None:
        from glmflow.errors import ModelSpecError

        raise ModelSpecError(
            f"The connectivity model {spec.source} has no atlas: no edges to test"
        )
    if work_dir is not None:
        settings["work_dir"] = work_dir
    entry, _ = enter_level(bids_dir=bids_dir, output_dir=output_dir, derivatives=None,
                           execution=execution, keywords=settings)  # fmt: skip
    subjects = [s.removeprefix("sub-") for s in participant_label] if participant_label else None
    table = Path(participants) if participants else entry.bids_dir / "participants.tsv"
    seg = spec.atlas.seg
    with hold_folder(entry.work_dir, "work"), hold_folder(entry.out, "output"):
        stage = entry.work_dir / "connectivity_group" / f"{spec.name}_space-{space}_seg-{seg}"
        written, manifest = connectivity_group_files(
            output_dir=entry.out, spec=spec, participants_file=table, space=space,
            subjects=subjects, stage_dir=stage,
        )  # fmt: skip
        publish([manifest])
        write_dataset_description(entry.out, source_datasets=[entry.bids_dir])
        pages = _reports(entry, None, "group")
    files = [p for p in written if p.is_file()]
    return ConnectivityResult(entry.out, spec, (), tuple(files), entry.work_dir, pages)


__all__ = ["ConnectivityResult", "run_connectivity", "run_connectivity_group"]
