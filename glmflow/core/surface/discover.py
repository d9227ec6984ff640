"""Surface runs: fMRIPrep's GIFTI hemispheres paired by entities, or CIFTI dense series.

``--space fsaverage5`` (fsaverage6, fsaverage, fsnative) picks
``hemi-L|R_space-<space>_bold.func.gii`` and pairs the two hemispheres of each run by
their other entities; ``--space fsLR --den 91k`` picks ``space-fsLR_den-91k_bold
.dtseries.nii`` (fMRIPrep names it without a ``desc-``). Each run's confounds and events are
found as for volume runs; a run missing a hemisphere, a file whose vertex count is not its
mesh's, hemispheres of different volume counts: one line each, naming the files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from glmflow.core.bids.companions import companion, identity
from glmflow.core.bids.layout import by_subject, get_files, load_layout
from glmflow.core.bids.remembered import remembered_runs
from glmflow.core.bids.runs import RunInputs, resolve_slice_time_ref
from glmflow.core.bids.select import (
    apply_excludes,
    check_dataset_dirs,
    search_selection,
    select_bolds,
)
from glmflow.core.model import check_repetition_time
from glmflow.core.surface import CIFTI_SPACES, GIFTI_SPACES, is_surface_space
from glmflow.core.surface.io import CIFTI, GIFTI, brain_model_axis, n_vertices
from glmflow.core.surface.meshes import CIFTI_DENSITIES, FSAVERAGE_VERTICES, HEMIS
from glmflow.errors import DatasetError

_COMPANIONS = {
    "confounds": {
        "scope": "derivatives",
        "desc": "confounds",
        "suffix": ["timeseries", "regressors"],
        "extension": ".tsv",
    },
    "events": {"scope": "raw", "suffix": "events", "extension": ".tsv"},
}


@dataclass(frozen=True)
class SurfaceRun:
    """One run on a surface: its ``RunInputs`` (``bold`` the first part, no mask) and parts.

    ``parts`` maps ``"L"``/``"R"`` (GIFTI hemispheres) or ``"cifti"`` to a file.
    """

    inputs: RunInputs
    parts: dict[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.inputs.subject

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs.to_dict(), "parts": dict(self.parts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SurfaceRun:
        """The inverse of :meth:`to_dict` (after a JSON round trip)."""
        return cls(RunInputs.from_dict(data["inputs"]), dict(data["parts"]))


def discover_surface_runs(
    bids_dir: str | os.PathLike,
    *,
    space: str,
    den: str | None = None,
    derivatives: str | os.PathLike | None = None,
    tasks: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    runs: Sequence[str | int] | None = None,
    participant_label: Sequence[str] | None = None,
    excludes: Iterable[str] = (),
    database_dir: str | os.PathLike | None = None,
    slice_time_ref: float | None = None,
    spec_tr: float | None = None,
    model_file: str | os.PathLike | None = None,
) -> list[SurfaceRun]:
    """The surface runs of ``space`` (and ``den`` for CIFTI), checked; arguments as
    :func:`glmflow.core.bids.discover_runs`."""
    if not is_surface_space(space):
        raise DatasetError(
            f"--space {space} is not a surface space (surfaces: "
            f"{', '.join((*GIFTI_SPACES, *CIFTI_SPACES))})"
        )
    bids_dir = Path(bids_dir).resolve()
    deriv_dir = (
        Path(derivatives).resolve() if derivatives else bids_dir / "derivatives" / "fmriprep"
    )
    check_dataset_dirs(bids_dir, deriv_dir)
    selection = {
        "space": space, "den": den,
        **search_selection(tasks=tasks, sessions=sessions, runs=runs,
                           participant_label=participant_label, excludes=excludes,
                           slice_time_ref=slice_time_ref, spec_tr=spec_tr,
                           model_file=model_file),
    }  # fmt: skip
    find = partial(_find_surface_runs, bids_dir, deriv_dir, database_dir, **selection)
    key = {"kind": "surface", **selection}  # never a volume search's record
    return remembered_runs(find, SurfaceRun.from_dict, bids_dir, deriv_dir, database_dir, key)


def _find_surface_runs(
    bids_dir: Path,
    deriv_dir: Path,
    database_dir: str | os.PathLike | None,
    *,
    space: str,
    den: str | None,
    tasks: list | None,
    sessions: list | None,
    runs: list | None,
    participant_label: list | None,
    excludes: list,
    slice_time_ref: float | None,
    spec_tr: float | None,
    model_file: str | None,
) -> list[SurfaceRun]:
    """:func:`discover_surface_runs` in the pybids index (built or reused)."""
    layout = load_layout(bids_dir, deriv_dir, database_dir)
    cifti = space in CIFTI_SPACES
    found = get_files(
        layout, scope="derivatives", suffix="bold", extension=CIFTI if cifti else GIFTI
    )
    bolds = select_bolds(
        found,
        tasks=tasks,
        subjects=participant_label,
        sessions=sessions,
        runs=runs,
        space=space,
        desc=None,
        res=None,
        deriv_dir=deriv_dir,
    )
    bolds = apply_excludes(bolds, excludes, deriv_dir)
    groups = _cifti_runs(bolds, den, deriv_dir) if cifti else _hemisphere_pairs(bolds, space)
    files = {name: by_subject(get_files(layout, **f)) for name, f in _COMPANIONS.items()}
    model = {"spec_tr": spec_tr, "model_file": model_file, "slice_time_ref": slice_time_ref}
    result = [_surface_run(parts, layout, files, bids_dir, deriv_dir, **model) for parts in groups]
    return sorted(
        result,
        key=lambda r: (
            r.inputs.subject,
            r.inputs.session or "",
            int(r.inputs.run) if r.inputs.run else -1,
        ),
    )


def _cifti_runs(bolds, den: str | None, deriv_dir: Path) -> list[dict[str, Any]]:
    dens = sorted({str(b.entities.get("den")) for b in bolds})
    if den is None and len(dens) > 1:
        raise DatasetError(
            f"CIFTI runs in {deriv_dir} come at several densities (den-{', den-'.join(dens)}); "
            "choose one with --den"
        )
    chosen = [b for b in bolds if den is None or str(b.entities.get("den")) == str(den)]
    if not chosen:
        raise DatasetError(
            f"No CIFTI BOLD with den-{den} in {deriv_dir} (densities: {', '.join(dens)}); "
            "fix --den"
        )
    for bold in chosen:
        brain_model_axis(bold.path)  # a CIFTI without grayordinates: one line
        expected = CIFTI_DENSITIES.get(str(bold.entities.get("den")))
        count = n_vertices(bold.path)[0]
        if expected is not None and count != expected:
            raise DatasetError(
                f"CIFTI {bold.path} has {count} grayordinates; den-{bold.entities['den']} has "
                f"{expected}: the file is not what its name says (check its den- entity)"
            )
    return [{"cifti": b} for b in chosen]


def _hemisphere_pairs(bolds, space: str) -> list[dict[str, Any]]:
    """{"L": Found, "R": Found} per run, checked (partner, vertex and volume counts)."""
    pairs: dict[tuple, dict[str, Any]] = {}
    for bold in bolds:
        key = tuple(
            sorted(identity({k: v for k, v in bold.entities.items() if k != "hemi"}).items())
        )
        pairs.setdefault(key, {})[str(bold.entities.get("hemi"))] = bold
    out = []
    for pair in pairs.values():
        for hemi in HEMIS:
            if hemi not in pair:
                other = next(iter(pair.values())).path
                name = Path(other).name.replace(f"hemi-{_other(hemi)}_", f"hemi-{hemi}_")
                raise DatasetError(
                    f"Surface run {other} has no hemi-{hemi} partner: expected {name} in "
                    f"{Path(other).parent}; both hemispheres are modelled (add it, or leave "
                    "the run out with --run / excludes)"
                )
        counts = {hemi: n_vertices(pair[hemi].path) for hemi in HEMIS}
        expected = FSAVERAGE_VERTICES.get(space)
        for hemi, (n_vert, _) in counts.items():
            if expected is not None and n_vert != expected:
                raise DatasetError(
                    f"GIFTI {pair[hemi].path} has {n_vert} vertices; the {space} mesh has "
                    f"{expected} per hemisphere: the file is not on {space} (check its space-)"
                )
        if counts["L"][1] != counts["R"][1]:
            raise DatasetError(
                f"Hemispheres of one run have different volume counts: {pair['L'].path} has "
                f"{counts['L'][1]}, {pair['R'].path} has {counts['R'][1]}; rerun fMRIPrep's "
                "surface sampling of this run"
            )
        out.append({hemi: pair[hemi] for hemi in HEMIS})
    return out


def _other(hemi: str) -> str:
    return "R" if hemi == "L" else "L"


def _surface_run(
    parts, layout, files, bids_dir, deriv_dir, *, spec_tr, model_file, slice_time_ref
) -> SurfaceRun:
    """One run's inputs: confounds and events by entities, TR, volumes."""
    first = next(iter(parts.values()))
    conf = companion(first, files["confounds"])
    if conf is None:
        raise DatasetError(
            f"No confounds file for {first.path} (desc-confounds_timeseries.tsv with the same "
            f"subject, session, task and run in {Path(first.path).parent}); add it"
        )
    ev = companion(first, files["events"])
    if ev is None:
        raise DatasetError(
            f"No events file for {first.path} in {bids_dir} (the run's *_events.tsv); add it "
            "or leave this run out (--task / --run / excludes)"
        )
    meta = layout.get_metadata(first.path)
    n_volumes = n_vertices(first.path)[1]
    tr = check_repetition_time(
        spec_tr=spec_tr,
        sidecar_tr=meta.get("RepetitionTime"),
        header_tr=_header_tr(first.path),
        bold_file=first.path,
        model_file=model_file or "the model",
    )
    ent = first.entities
    sidecar = first.path.rsplit(".", 2)[0] + ".json"
    inputs = RunInputs(
        subject=str(ent["subject"]),
        session=str(ent["session"]) if "session" in ent else None,
        task=str(ent["task"]),
        run=str(ent["run"]) if "run" in ent else None,
        bold=first.path,
        mask="",
        events=ev.path,
        confounds=conf.path,
        tr=tr,
        slice_time_ref=resolve_slice_time_ref(meta.get("StartTime"), tr, slice_time_ref, sidecar),
        n_volumes=n_volumes,
        entities=identity({k: v for k, v in ent.items() if k != "hemi"}),
    )
    return SurfaceRun(inputs=inputs, parts={k: f.path for k, f in parts.items()})


def _header_tr(path: str) -> float | None:
    """A CIFTI's series step in seconds (GIFTI carries no TR)."""
    if not path.endswith(CIFTI):
        return None
    import nibabel as nib

    series = nib.load(path).header.get_axis(0)
    if getattr(series, "unit", "") != "SECOND" or not series.step > 0:
        return None
    return float(series.step)
