"""Find the runs to model in a BIDS dataset preprocessed with fMRIPrep.

:func:`discover_runs` indexes the raw dataset and its fMRIPrep derivatives with pybids and
returns one :class:`RunInputs` per preprocessed BOLD run, with its events, brain mask,
confounds, repetition time, slice-timing reference and number of volumes, or raises a
:class:`~glmflow.errors.DatasetError` naming the missing or inconsistent file.

Decisions
---------
- ``validate=False``: the pybids validator silently drops files with non-BIDS names and
  requires a valid raw ``dataset_description.json``; glmflow prefers to index everything and
  report problems itself. The raw BOLD images are never read (they may be placeholders).
- Index reuse: with ``database_dir`` the pybids index is stored in
  ``<database_dir>/layout-<key>/`` where ``<key>`` hashes the dataset and derivatives paths
  and the pybids version (pybids takes the root from a stored index, so one folder must never
  serve two datasets).
  Beside it glmflow stores a fingerprint of every indexed file (path, size, mtime): a stat walk
  costs milliseconds where pybids re-indexing costs seconds to minutes. When the fingerprint
  changed (a file added, removed or edited), the index is rebuilt with ``reset_database``.
- Slice timing follows nilearn 0.14.1 ``first_level_from_bids``: ``StartTime / RepetitionTime``
  from the derivative BOLD sidecar, 0.0 with a warning when ``StartTime`` is absent.
  ``SliceTimingCorrected`` is not consulted (nilearn does not either). Unlike nilearn, which
  reads the first sidecar of the whole dataset, the value is read per run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import nibabel as nib

from glmflow.core.model import check_repetition_time
from glmflow.core.outputs import ENTITY_KEYS
from glmflow.errors import DatasetError, ModelSpecError

LOGGER = logging.getLogger(__name__)

DEFAULT_SPACE = "MNI152NLin2009cAsym"

# Entities that identify an acquisition; a companion file (events, mask, confounds) must not
# contradict the BOLD on any of them (BIDS inheritance: a missing entity applies to all).
RAW_ENTITIES = (
    "subject",
    "session",
    "task",
    "acquisition",
    "ceagent",
    "reconstruction",
    "direction",
    "run",
    "echo",
    "part",
    "chunk",
)
# Entities that describe the voxel grid: a mask must match the BOLD on these exactly.
GRID_ENTITIES = ("space", "res", "den")
# Entities that are not part of a run's identity in glmflow's outputs.
_NOT_IDENTITY = ("suffix", "extension", "datatype", "desc")
_NIFTI = [".nii.gz", ".nii"]
_ORDER = {name: i for i, name in enumerate(ENTITY_KEYS)}
# Top-level folders pybids does not index in a raw dataset (plus dot files).
_RAW_IGNORED = {"derivatives", "code", "models", "sourcedata", "stimuli"}


@dataclass(frozen=True)
class RunInputs:
    """Everything glmflow needs to model one preprocessed BOLD run.

    Paths are absolute strings. ``run`` and the values of ``entities`` are the labels exactly
    as in the file names (``"01"`` stays ``"01"``). ``entities`` uses pybids' entity names
    (``subject``, ``session``, ``task``, ``run``, ``acquisition``, ``space``, ...).
    """

    subject: str
    session: str | None
    task: str
    run: str | None
    bold: str
    mask: str
    events: str
    confounds: str
    tr: float
    slice_time_ref: float
    n_volumes: int
    entities: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInputs:
        """Build from :meth:`to_dict` output (e.g. after a JSON round trip)."""
        return cls(**{**data, "entities": dict(data["entities"])})


def discover_runs(
    bids_dir: str | os.PathLike,
    *,
    derivatives: str | os.PathLike | None = None,
    space: str = DEFAULT_SPACE,
    desc: str = "preproc",
    res: str | None = None,
    tasks: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    runs: Sequence[str | int] | None = None,
    participant_label: Sequence[str] | None = None,
    excludes: Iterable[str] = (),
    database_dir: str | os.PathLike | None = None,
    slice_time_ref: float | None = None,
    spec_tr: float | None = None,
    model_file: str | os.PathLike | None = None,
) -> list[RunInputs]:
    """List the preprocessed BOLD runs to model, with their companion files.

    Parameters
    ----------
    bids_dir : path
        Root of the raw BIDS dataset (events files live there).
    derivatives : path, optional
        fMRIPrep output folder; default ``<bids_dir>/derivatives/fmriprep``.
    space, desc : str
        Entities of the preprocessed BOLD to use.
    res : str, optional
        The ``res-`` entity to use when fMRIPrep wrote the space at several resolutions
        (several and none chosen is an error naming them).
    tasks, sessions, runs, participant_label : sequences, optional
        Keep only these (``None`` keeps all). Subject labels may carry the ``sub-`` prefix.
    excludes : iterable of str
        Subjects to leave out (the model's ``excludes``); each exclusion is logged.
    database_dir : path, optional
        Where to keep the pybids index between calls; ``None`` indexes in memory.
    slice_time_ref : float, optional
        Override of the slice-timing reference (fraction of the TR, 0..1).
    spec_tr, model_file : optional
        The model's ``"tr"`` and its file, checked against every run's data with
        :func:`glmflow.core.model.check_repetition_time`.

    Returns
    -------
    list of RunInputs
        Sorted by subject, session, task, run.
    """
    if slice_time_ref is not None:
        _check_slice_time_ref(slice_time_ref)
    bids_dir = Path(bids_dir).resolve()
    deriv_dir = (
        Path(derivatives).resolve() if derivatives else bids_dir / "derivatives" / "fmriprep"
    )
    _check_dataset_dirs(bids_dir, deriv_dir)
    layout = _load_layout(bids_dir, deriv_dir, database_dir)

    all_bolds = _get(layout, scope="derivatives", suffix="bold", extension=_NIFTI)
    bolds = _select_bolds(
        all_bolds,
        tasks=_as_list(tasks),
        subjects=_as_list(participant_label),
        sessions=_as_list(sessions),
        runs=_as_list(runs),
        space=space,
        desc=desc,
        res=res,
        deriv_dir=deriv_dir,
    )
    bolds = _apply_excludes(bolds, _as_list(excludes) or [], deriv_dir)

    masks, confounds, events, raw_bolds = (
        _by_subject(_get(layout, **filters))
        for filters in (
            {"scope": "derivatives", "suffix": "mask", "desc": "brain", "extension": _NIFTI},
            {
                "scope": "derivatives",
                "desc": "confounds",
                "suffix": ["timeseries", "regressors"],
                "extension": ".tsv",
            },
            {"scope": "raw", "suffix": "events", "extension": ".tsv"},
            {"scope": "raw", "suffix": "bold", "extension": _NIFTI},
        )
    )
    out = []
    no_start_time = []
    for bold in bolds:
        mask, conf, ev = _companions(bold, masks, confounds, events, bids_dir, deriv_dir)
        meta = layout.get_metadata(bold.path)
        sidecar_tr = meta.get("RepetitionTime")
        raw = _companion(bold, raw_bolds) if sidecar_tr is None else None
        if raw is not None:
            sidecar_tr = layout.get_metadata(raw.path).get("RepetitionTime")
        header_tr, n_volumes = _header_tr(bold.path)
        # One TR rule for the whole project (sidecar vs header vs the model's "tr").
        tr = check_repetition_time(
            spec_tr=spec_tr,
            sidecar_tr=sidecar_tr,
            header_tr=header_tr,
            bold_file=bold.path,
            model_file=model_file or "the model",
        )
        if slice_time_ref is None and "StartTime" not in meta:
            no_start_time.append(bold.path)
        ent = bold.entities
        out.append(
            RunInputs(
                subject=str(ent["subject"]),
                session=str(ent["session"]) if "session" in ent else None,
                task=str(ent["task"]),
                run=str(ent["run"]) if "run" in ent else None,
                bold=bold.path,
                mask=mask.path,
                events=ev.path,
                confounds=conf.path,
                tr=tr,
                slice_time_ref=_slice_time_ref(
                    meta.get("StartTime"), tr, slice_time_ref, _sidecar_name(bold.path)
                ),
                n_volumes=n_volumes,
                entities=_identity(ent),
            )
        )
    if no_start_time:
        # nilearn's first_level_from_bids warns the same way before assuming 0.0.
        warnings.warn(
            f"'slice_time_ref' not provided and StartTime missing from the sidecar of "
            f"{len(no_start_time)} BOLD run(s) (e.g. {no_start_time[0]}); assuming 0.0 "
            "(the start of each TR) as nilearn does. Set slice_time_ref in the model if "
            "the data were slice-time corrected to another reference.",
            UserWarning,
            stacklevel=2,
        )
    return sorted(
        out,
        key=lambda r: (
            r.subject,
            r.session or "",
            r.task,
            int(r.run) if r.run else -1,
            sorted(r.entities.items()),
        ),
    )


def _select_bolds(all_bolds, *, tasks, subjects, sessions, runs, space, desc, res, deriv_dir):
    """Apply the filters, checking each asked-for label exists (listing those that do)."""
    tasks = _check_labels("Task", "--task", tasks, _values(all_bolds, "task"), deriv_dir)
    subjects = _check_labels(
        "Participant label",
        "--participant-label",
        [_strip(s, "sub-") for s in subjects] if subjects else None,
        _values(all_bolds, "subject"),
        deriv_dir,
    )
    sessions = _check_labels(
        "Session", "--session", sessions, _values(all_bolds, "session"), deriv_dir
    )
    selected = [
        f
        for f in all_bolds
        if _keep(f, "task", tasks)
        and _keep(f, "subject", subjects)
        and _keep(f, "session", sessions)
    ]
    if runs is not None:
        # Compare run labels as numbers, as pybids does ("01" is run 1).
        available = _values(selected, "run")
        for r in runs:
            if not str(r).isdigit() or int(r) not in {int(a) for a in available}:
                raise DatasetError(
                    f"Run '{r}' not found in {deriv_dir} (available: {_join(available)}); "
                    "fix --run"
                )
        wanted = {int(r) for r in runs}
        selected = [f for f in selected if f.entities.get("run") in wanted]
    bolds = [
        f for f in selected if f.entities.get("space") == space and f.entities.get("desc") == desc
    ]
    if not bolds:
        raise DatasetError(
            f"No BOLD with space '{space}' and desc '{desc}'"
            f"{' for task ' + ', '.join(tasks) if tasks else ''} in {deriv_dir} (spaces "
            f"available: {_join(_values(selected, 'space'))}; desc available: "
            f"{_join(_values(selected, 'desc'))}); pass one of them with --space / --desc"
        )
    resolutions = _values(bolds, "res")
    if res is not None:
        res = _strip(str(res), "res-")
        if res not in resolutions:
            raise DatasetError(
                f"No BOLD with space '{space}' at res-{res} in {deriv_dir} (resolutions: "
                f"{_join(resolutions) or 'none given in the file names'}); fix --res"
            )
        bolds = [f for f in bolds if str(f.entities.get("res")) == res]
    elif len(resolutions) > 1:
        raise DatasetError(
            f"fMRIPrep wrote space '{space}' at several resolutions in {deriv_dir} "
            f"(res-{', res-'.join(resolutions)}); choose one with --res"
        )
    return bolds


class _Found(NamedTuple):
    path: str
    entities: dict[str, Any]


def _get(layout, **filters) -> list[_Found]:
    """``layout.get`` as (path, entities) records.

    Entities are parsed from the file names with pybids' own rules: reading them from the
    pybids objects costs a database query per file, about 4x slower.
    """
    from bids.layout import parse_file_entities
    from bids.layout.models import Config

    configs = [Config.load("bids"), Config.load("derivatives")]
    return [
        _Found(path, parse_file_entities(path, config=configs))
        for path in layout.get(return_type="filename", **filters)
    ]


def _by_subject(files: list[_Found]) -> dict[str | None, list[_Found]]:
    """Group by subject so each run scans only its subject's files (plus dataset-level ones)."""
    groups: dict[str | None, list[_Found]] = {}
    for f in files:
        groups.setdefault(f.entities.get("subject"), []).append(f)
    return groups


def _companions(bold, masks, confounds, events, bids_dir: Path, deriv_dir: Path):
    """Return the (mask, confounds, events) files of ``bold`` or raise naming the missing one."""
    folder = Path(bold.path).parent
    mask = _companion(bold, masks, grid=True)
    if mask is None:
        raise DatasetError(
            f"No brain mask for {bold.path}: expected "
            f"{_expected(bold, 'desc-brain_mask.nii.gz')} in {folder}; rerun fMRIPrep or add "
            "the mask"
        )
    conf = _companion(bold, confounds)
    if conf is None:
        raise DatasetError(
            f"No confounds file for {bold.path}: expected "
            f"{_expected(bold, 'desc-confounds_timeseries.tsv', grid=False)} in {folder}; "
            "rerun fMRIPrep or add the confounds file"
        )
    ev = _companion(bold, events)
    if ev is None:
        raw_folder = bids_dir / folder.relative_to(deriv_dir)
        raise DatasetError(
            f"No events file for {bold.path}: expected "
            f"{_expected(bold, 'events.tsv', grid=False)} in {raw_folder}; add it or leave "
            "this run out (--task / --run / excludes)"
        )
    return mask, conf, ev


def _identity(entities: dict[str, Any]) -> dict[str, str]:
    """The run's entities as file-name labels, in BIDS order, without desc/suffix/extension."""
    keys = sorted(
        (k for k in entities if k not in _NOT_IDENTITY),
        key=lambda k: (_ORDER.get(k, len(_ORDER)), k),
    )
    return {k: str(entities[k]) for k in keys}


def _slice_time_ref(start_time, tr: float, override: float | None, sidecar: str) -> float:
    """StartTime / TR as nilearn's first_level_from_bids, unless overridden; 0.0 if absent."""
    if start_time is None:
        return 0.0 if override is None else float(override)
    number = isinstance(start_time, (int, float)) and not isinstance(start_time, bool)
    if not number or not 0 <= start_time < tr:
        raise DatasetError(
            f"StartTime {start_time!r} in {sidecar} is not a number within "
            f"[0, RepetitionTime={tr:g}); fix the sidecar or set slice_time_ref in the model"
        )
    if override is None:
        return start_time / tr
    if not math.isclose(override, start_time / tr):
        warnings.warn(
            f"slice_time_ref {override:g} overrides StartTime/RepetitionTime = "
            f"{start_time / tr:g} from {sidecar}",
            UserWarning,
            stacklevel=3,
        )
    return float(override)


def _companion(bold, candidates, *, grid: bool = False):
    """Return the most specific candidate compatible with ``bold`` (or None).

    Compatible: no identity entity contradicts the BOLD's and, when ``grid``, the voxel-grid
    entities are equal. Two equally specific candidates are an error, never a guess.
    """
    ent = bold.entities
    best, best_score, ties = None, -1, []
    for cand in candidates.get(ent["subject"], []) + candidates.get(None, []):
        cent = cand.entities
        if any(k in cent and (k not in ent or cent[k] != ent[k]) for k in RAW_ENTITIES):
            continue
        if grid and any(cent.get(k) != ent.get(k) for k in GRID_ENTITIES):
            continue
        # Prefer the exact match, then func/ over anat/ for masks.
        score = 2 * sum(k in cent for k in RAW_ENTITIES) + (cent.get("datatype") == "func")
        if score > best_score:
            best, best_score, ties = cand, score, []
        elif score == best_score:
            ties.append(cand)
    if ties:
        first, second = sorted([best.path, ties[0].path])
        raise DatasetError(
            f"Several files match {bold.path} equally: {first} and {second}; "
            "remove or rename one of them"
        )
    return best


def _expected(bold, tail: str, *, grid: bool = True) -> str:
    """The file name fMRIPrep / BIDS would use for a companion of ``bold``."""
    keys = [k for k in RAW_ENTITIES if k in bold.entities]
    if grid:
        keys += [k for k in GRID_ENTITIES if k in bold.entities]
    parts = [f"{_SHORT[k]}-{bold.entities[k]}" for k in keys]
    return "_".join([*parts, tail])


_SHORT = {
    "subject": "sub",
    "session": "ses",
    "task": "task",
    "acquisition": "acq",
    "ceagent": "ce",
    "reconstruction": "rec",
    "direction": "dir",
    "run": "run",
    "echo": "echo",
    "part": "part",
    "chunk": "chunk",
    "space": "space",
    "res": "res",
    "den": "den",
}


def _sidecar_name(path: str) -> str:
    base = path[: -len(".nii.gz")] if path.endswith(".nii.gz") else os.path.splitext(path)[0]
    return base + ".json"


def _header_tr(bold_path: str) -> tuple[float | None, int]:
    """Return (TR in seconds or None when unknown, number of volumes) from the header."""
    img = nib.load(bold_path)  # reads the header only
    if len(img.shape) != 4:
        raise DatasetError(
            f"BOLD {bold_path} has shape {img.shape}, expected 4D (x, y, z, time); "
            "point glmflow at the preprocessed 4D series"
        )
    hdr = img.header
    tr = float(hdr.get_zooms()[3])
    unit = hdr.get_xyzt_units()[1] if hasattr(hdr, "get_xyzt_units") else "sec"
    tr *= {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)
    return (tr if math.isfinite(tr) and tr > 0 else None), int(img.shape[3])


def _check_slice_time_ref(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ModelSpecError(
            f"'slice_time_ref' must be a number between 0 and 1 (a fraction of the TR). "
            f"Got {value!r} instead"
        )


def _check_dataset_dirs(bids_dir: Path, deriv_dir: Path) -> None:
    if not bids_dir.is_dir():
        raise DatasetError(f"BIDS dataset folder {bids_dir} does not exist; check the path")
    if not deriv_dir.is_dir():
        raise DatasetError(
            f"fMRIPrep derivatives folder {deriv_dir} does not exist; pass --derivatives"
        )
    if not (deriv_dir / "dataset_description.json").is_file():
        raise DatasetError(
            f"{deriv_dir} has no dataset_description.json, so it is not a BIDS derivatives "
            "dataset; pass the fMRIPrep output folder itself with --derivatives"
        )


def _values(files, key: str) -> list[str]:
    return sorted({str(f.entities[key]) for f in files if key in f.entities})


def _as_list(values) -> list | None:
    """A lone label (``"faces"``, ``2``) counts as a list of one, not as its characters."""
    if values is None:
        return None
    return [values] if isinstance(values, (str, int)) else list(values)


def _strip(label: str, prefix: str) -> str:
    return label[len(prefix) :] if label.startswith(prefix) else label


def _join(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _check_labels(what, option, wanted, available, where) -> list[str] | None:
    """Return ``wanted`` as strings after checking each is available."""
    if wanted is None:
        return None
    wanted = [str(w) for w in wanted]
    for w in wanted:
        if w not in available:
            raise DatasetError(
                f"{what} '{w}' not found in {where} (available: {_join(available)}); fix {option}"
            )
    return wanted


def _keep(bids_file, key: str, wanted: list[str] | None) -> bool:
    return wanted is None or str(bids_file.entities.get(key)) in wanted


def _apply_excludes(bolds, excludes: Iterable[str], deriv_dir: Path):
    """Drop excluded subjects, logging each; warn for labels with no data."""
    excluded = {_strip(str(s), "sub-") for s in excludes}
    present = set(_values(bolds, "subject"))
    for label in sorted(excluded):
        if label in present:
            LOGGER.info("Excluding sub-%s (listed in the model's excludes)", label)
        else:
            warnings.warn(
                f"excludes lists sub-{label}, which has no selected BOLD in {deriv_dir}",
                UserWarning,
                stacklevel=3,
            )
    kept = [b for b in bolds if str(b.entities["subject"]) not in excluded]
    if not kept:
        raise DatasetError(
            f"All subjects with selected BOLD in {deriv_dir} are excluded "
            f"({_join(sorted(present))}); check the model's excludes"
        )
    return kept


def _load_layout(bids_dir: Path, deriv_dir: Path, database_dir):
    """Build or reuse the pybids layout (see the module docstring for the reuse rule)."""
    import bids  # deferred: pybids import costs ~1 s
    from bids import BIDSLayout

    if database_dir is None:
        return BIDSLayout(bids_dir, validate=False, derivatives=str(deriv_dir))
    # The pybids version is in the key: an index written by another version is not reused.
    key = hashlib.sha256(f"{bids_dir}\n{deriv_dir}\n{bids.__version__}".encode()).hexdigest()[:12]
    db_path = Path(database_dir).resolve() / f"layout-{key}"
    stamp = db_path / "glmflow_fingerprint.txt"
    fingerprint = dataset_fingerprint(bids_dir, deriv_dir)
    reuse = stamp.is_file() and stamp.read_text() == fingerprint
    if reuse:
        LOGGER.info("Reusing the BIDS index in %s (dataset unchanged)", db_path)
    else:
        LOGGER.info("Indexing %s and %s into %s", bids_dir, deriv_dir, db_path)
        db_path.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)  # an interrupted indexing must not look valid
    layout = BIDSLayout(
        bids_dir,
        validate=False,
        derivatives=str(deriv_dir),
        database_path=db_path,
        reset_database=not reuse,
    )
    if not reuse:
        stamp.write_text(fingerprint)
    return layout


def dataset_fingerprint(bids_dir: str | os.PathLike, deriv_dir: str | os.PathLike) -> str:
    """Hash of (path, size, mtime) of every file pybids indexes in the two folders.

    Used to decide whether a stored pybids index is still valid.
    """
    digest = hashlib.sha256()
    for root, skip_top in ((Path(bids_dir), _RAW_IGNORED), (Path(deriv_dir), set())):
        digest.update(f"{root}\n".encode())
        for path, stat in _walk(root, root, skip_top):
            digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _walk(folder: Path, root: Path, skip_top: set[str]):
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or (folder == root and entry.name in skip_top):
            continue
        if entry.is_dir():
            yield from _walk(Path(entry.path), root, skip_top)
        else:
            yield os.path.relpath(entry.path, root), entry.stat()
