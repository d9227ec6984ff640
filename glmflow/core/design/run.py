"""One run's design from its raw files: events parsed, confounds selected, design built.

The pre-flight (:func:`glmflow.core.preflight.build_run_design`) and the graph's
``build_design`` node (:class:`glmflow.interfaces.run_design.BuildRunDesign`) both build a
run's design here, so the design the pre-flight checked is the design the graph fits. Given
the same ``memo_dir``, the node recalls the design the pre-flight built instead of building
it again (a realistic run: ~0.1 s of a node's 0.12 s, twice per run at 200 runs).
"""

from __future__ import annotations

import warnings
from os import PathLike, path
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from glmflow.core.confounds import select_confounds, write_confounds
from glmflow.core.design.build import build_design_matrix
from glmflow.core.design.files import write_design
from glmflow.core.events import parse_events, read_events
from glmflow.core.memo import code_identity, file_identity, memo_key, memoized_object
from glmflow.core.model import ConfoundsSpec, DesignSpec, EventsSpec

# the designs' folder inside the memo folder given to design_from_files
DESIGNS = "designs"


class RunDesign(NamedTuple):
    """A run's parsed events, selected confounds, design matrix, column roles, sample mask."""

    events: pd.DataFrame
    confounds: pd.DataFrame
    design: pd.DataFrame
    roles: dict[str, str]
    sample_mask: np.ndarray | None


def design_from_files(
    events_file: str | PathLike[str],
    confounds_file: str | PathLike[str],
    *,
    events: EventsSpec,
    confounds: ConfoundsSpec,
    design: DesignSpec,
    n_volumes: int,
    tr: float,
    slice_time_ref: float = 0.0,
    bold_file: str | PathLike[str] | None = None,
    memo_dir: str | PathLike[str] | None = None,
) -> RunDesign:
    """Parse the events, select the confounds and build the design of one run.

    ``bold_file``, when given, has its volume count checked against the confounds.
    ``memo_dir``, when given, remembers the design (and the warnings said building it) in
    its ``designs`` folder under the key of everything it is built from: the identities
    (inode, size, mtime) of the events, confounds (and their JSON sidecar) and BOLD files,
    the model's events, confounds and design sections, the run's timing and glmflow's code
    identity; the same call again recalls it and says the same warnings.
    """
    if memo_dir is None:
        return _design_from_files(
            events_file, confounds_file, events=events, confounds=confounds, design=design,
            n_volumes=n_volumes, tr=tr, slice_time_ref=slice_time_ref, bold_file=bold_file,
        )  # fmt: skip
    files = [events_file, confounds_file, confounds_sidecar(confounds_file), bold_file]
    key = memo_key(
        "run-design", code_identity(), [part.to_dict() for part in (events, confounds, design)],
        [int(n_volumes), float(tr), float(slice_time_ref)],
        [[str(f), *file_identity(f)] if f is not None and path.isfile(f) else None for f in files],
    )  # fmt: skip

    def build() -> tuple[RunDesign, list[Warning]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            built = _design_from_files(
                events_file, confounds_file, events=events, confounds=confounds,
                design=design, n_volumes=n_volumes, tr=tr, slice_time_ref=slice_time_ref,
                bold_file=bold_file,
            )  # fmt: skip
        return built, [w.message for w in caught]

    built, said = memoized_object(Path(memo_dir) / DESIGNS, key, build)
    for message in said:
        warnings.warn(message, stacklevel=2)
    return built


def confounds_sidecar(confounds_file) -> Path:
    """The JSON sidecar of an fMRIPrep confounds TSV (the compcor strategies read it)."""
    return Path(confounds_file).with_suffix(".json")


def _design_from_files(
    events_file, confounds_file, *, events, confounds, design, n_volumes, tr, slice_time_ref,
    bold_file,
) -> RunDesign:  # fmt: skip
    parsed = parse_events(
        read_events(events_file, condition_column=events.condition_column),
        events,
        source=str(events_file),
        scan_end=n_volumes * tr,
    )
    selected, sample_mask = select_confounds(confounds_file, confounds, bold_file=bold_file)
    with warnings.catch_warnings():
        # nilearn's notes on singular designs: check_rank says it in one line
        warnings.simplefilter("ignore")
        matrix, roles = build_design_matrix(
            parsed, selected, design, n_volumes=n_volumes, tr=tr,
            slice_time_ref=slice_time_ref, source=str(events_file),
        )  # fmt: skip
    return RunDesign(parsed, selected, matrix, roles, sample_mask)


def write_run_design(
    events_file: str | PathLike[str],
    confounds_file: str | PathLike[str],
    *,
    out_dir: str | PathLike[str],
    plot: bool = True,
    **options,
) -> dict[str, str | list[str]]:
    """:func:`design_from_files`, written into ``out_dir`` (``BuildRunDesign``'s work).

    ``options`` are :func:`design_from_files`'s keywords. Returns ``design_file``
    (design.tsv), ``sidecar_file`` (design.json), ``plot_file`` (design.svg, only when
    ``plot``), ``sample_mask_file`` (sample_mask.json, beside the selected confounds.tsv)
    and ``design_files``, the design's files in that order.
    """
    run = design_from_files(events_file, confounds_file, **options)
    tsv, sidecar, plot_path = write_design(run.design, run.roles, out_dir, plot=plot)
    _, mask_json = write_confounds(run.confounds, run.sample_mask, Path(out_dir))
    files = [str(tsv), str(sidecar), *([str(plot_path)] if plot_path is not None else [])]
    outputs: dict[str, str | list[str]] = {
        "design_file": files[0], "sidecar_file": files[1], "sample_mask_file": str(mask_json),
        "design_files": files,
    }  # fmt: skip
    if plot_path is not None:
        outputs["plot_file"] = str(plot_path)
    return outputs
