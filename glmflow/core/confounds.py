"""Select nuisance regressors from an fMRIPrep confounds file.

Two ways to choose, combinable: nilearn's denoising strategies
(:func:`nilearn.interfaces.fmriprep.load_confounds`, used as is) and explicit column names
or ``fnmatch`` wildcards (glm-express's ``confound_regressors``). The result is one row per
volume with no n/a left, plus a sample mask (indices of the volumes to keep, as nilearn
returns it) when a strategy censors volumes (non-steady-state volumes, ``scrub``).

Files written between workflow nodes (:func:`write_confounds` / :func:`read_confounds`):

- ``confounds.tsv``: the selected regressors, one column each, one row per volume, no
  index column (an empty file when nothing is selected);
- ``sample_mask.json``: ``{"sample_mask": [kept volume indices] or null, "n_volumes": N}``.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from glmflow.core.model import CompcorType, ConfoundModel, ConfoundStrategy
from glmflow.errors import ConfoundsError

#: nilearn load_confounds strategies glmflow supports (ica_aroma and tedana need other
#: inputs than a confounds file).
STRATEGIES: tuple[str, ...] = get_args(ConfoundStrategy)
#: Expansion levels of the motion, wm_csf and global_signal strategies.
LEVELS: tuple[str, ...] = get_args(ConfoundModel)
#: Variants of the compcor strategy.
COMPCOR: tuple[str, ...] = get_args(CompcorType)
#: fMRIPrep writes spike columns only when there are outliers, so wildcards for them may
#: match nothing in a clean run.
OPTIONAL_PREFIXES = ("motion_outlier", "non_steady_state_outlier")


def select_confounds(
    confounds_file: str | PathLike[str],
    *,
    columns: Iterable[str] = (),
    optional_columns: Iterable[str] = (),
    strategy: Iterable[str] = (),
    motion: ConfoundModel = "full",
    wm_csf: ConfoundModel = "basic",
    global_signal: ConfoundModel = "basic",
    compcor: CompcorType = "anat_combined",
    n_compcor: int | Literal["all"] = "all",
    fd_threshold: float = 0.5,
    std_dvars_threshold: float = 1.5,
    scrub: int = 5,
    demean: bool = True,
    bold_file: str | PathLike[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Select confounds for one run.

    Parameters
    ----------
    confounds_file : str or PathLike
        fMRIPrep ``*_desc-confounds_timeseries.tsv`` (or the older ``_regressors.tsv``);
        its JSON sidecar next to it is used by the compcor strategy. Never written to.
    columns : iterable of str, default=()
        Column names or ``fnmatch`` wildcards (``"trans_*"``, ``"a_comp_cor_0[0-4]"``). A
        name or wildcard that matches nothing is an error, except wildcards for fMRIPrep's
        spike columns (``motion_outlier*``, ``non_steady_state_outlier*``), which exist only
        when there are outliers. These columns stay regressors (no censoring); one that
        varies only in volumes a strategy censors is an error (it would be constant).
    optional_columns : iterable of str, default=()
        Wildcards added like ``columns`` but allowed to match nothing (a warning says
        so): glm-express's implicit compcor and outlier columns.
    strategy : iterable of str, default=()
        nilearn ``load_confounds`` strategies, from :data:`STRATEGIES`. Any strategy also
        censors non-steady-state volumes, as nilearn always does; ``"scrub"`` censors
        high-motion volumes. Censoring is returned as the sample mask.
    motion, wm_csf, global_signal : {"basic", "power2", "derivatives", "full"}
        Expansion of the corresponding strategy (nilearn's parameters).
    compcor : str, default="anat_combined"
        compcor variant, from :data:`COMPCOR`.
    n_compcor : int or "all", default="all"
        Number of compcor components.
    fd_threshold, std_dvars_threshold : float
        Scrubbing thresholds (mm, standardised DVARS).
    scrub : int, default=5
        Minimum length of a segment kept between scrubbed volumes.
    demean : bool, default=True
        Subtract each column's mean over the kept volumes, as nilearn does.
    bold_file : str or PathLike or None, default=None
        The run's BOLD image (NIfTI, CIFTI or GIFTI); when given its number of volumes must
        match the file's rows.
        Not needed to find the confounds file: it is handed to nilearn under the fMRIPrep
        name ``load_confounds`` looks for (in a temporary directory).

    Returns
    -------
    confounds : pandas.DataFrame
        One row per volume (index 0..n-1): the strategy columns (nilearn's order), then the
        explicit columns not already among them. n/a in the first row (derivative columns)
        is filled with the second row's value, as nilearn does.
    sample_mask : numpy.ndarray or None
        Indices of the volumes to keep, or None when no volume is censored.

    Raises
    ------
    ConfoundsError
        Invalid options, unknown columns, unusable file; the message names the file.
    """
    path = Path(confounds_file)
    columns = _strings(columns, "columns", path)
    strategy = _strings(strategy, "strategy", path)
    # load_confounds' own keyword arguments, passed through unchanged.
    options = {
        "motion": motion,
        "wm_csf": wm_csf,
        "global_signal": global_signal,
        "compcor": compcor,
        "n_compcor": n_compcor,
        "fd_threshold": fd_threshold,
        "std_dvars_threshold": std_dvars_threshold,
        "scrub": scrub,
        "demean": demean,
    }
    _check_options(path, strategy=strategy, **options)
    raw = _read_raw(path)
    if bold_file is not None:
        _check_volumes(path, len(raw), Path(bold_file))
    explicit = resolve_columns(columns, list(raw.columns), path)
    for pattern in _strings(optional_columns, "optional_columns", path):
        matches = [c for c in raw.columns if fnmatch.fnmatchcase(c, pattern)]
        if not matches and not pattern.startswith(OPTIONAL_PREFIXES):
            warnings.warn(
                f"{path}: optional confound pattern '{pattern}' matches no column; "
                "modelled without it",
                stacklevel=2,
            )
        explicit += [c for c in matches if c not in explicit]

    selected = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    sample_mask = None
    if strategy:
        selected, sample_mask = _load_strategies(path, strategy, len(raw), **options)
        if sample_mask is not None and sample_mask.size == 0:
            raise ConfoundsError(
                f"Scrubbing censors every volume of {path} (fd_threshold={fd_threshold}, "
                f"std_dvars_threshold={std_dvars_threshold}); raise the thresholds or drop "
                "'scrub' from the strategy"
            )
    extra = [c for c in explicit if c not in selected.columns]
    if extra:
        chosen = _drop_repeated_spikes(_fill_first_row(raw.loc[:, extra], path), path)
        if sample_mask is not None:
            _check_not_censored_away(chosen, sample_mask, strategy, path)
        if demean:
            kept = chosen if sample_mask is None else chosen.iloc[sample_mask]
            chosen = chosen - kept.mean(axis=0)
        selected = pd.concat([selected.reset_index(drop=True), chosen], axis=1)
    return selected.astype("float64"), sample_mask


def _drop_repeated_spikes(chosen: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Keep one of several spike regressors that flag the same volume, with a warning.

    fMRIPrep writes a ``non_steady_state_outlier`` and a ``motion_outlier`` column for the
    same volume when both criteria hit it; modelling both would make the design singular.
    """
    seen: dict[bytes, str] = {}
    repeated = []
    for column in chosen.columns:
        if column.startswith(OPTIONAL_PREFIXES):
            values = chosen[column].to_numpy()
            key = values.tobytes()
            if key in seen:
                repeated.append(f"{column} (same volume as {seen[key]})")
            else:
                seen[key] = column
    if repeated:
        warnings.warn(
            f"{path}: spike regressor(s) {', '.join(repeated)} left out: one regressor per "
            "censored volume",
            stacklevel=3,
        )
        chosen = chosen.drop(columns=[r.split(" ", 1)[0] for r in repeated])
    return chosen


def resolve_columns(patterns: Sequence[str], available: list[str], source: Path) -> list[str]:
    """Expand names and ``fnmatch`` wildcards into columns of a confounds file.

    Parameters
    ----------
    patterns : sequence of str
        Names or wildcards, in the order wanted.
    available : list of str
        Columns of the file.
    source : Path
        The file, for messages.

    Returns
    -------
    list of str
        Matching columns, first match first, each once.

    Raises
    ------
    ConfoundsError
        A name is not a column (close matches are listed), or a wildcard matches nothing.
    """
    found: list[str] = []
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            matches = [c for c in available if fnmatch.fnmatchcase(c, pattern)]
            if not matches and not pattern.startswith(OPTIONAL_PREFIXES):
                raise ConfoundsError(
                    f"Confound wildcard '{pattern}' matches no column of {source} "
                    f"({_suggest(pattern.split('*')[0] or pattern, available)}); fix the "
                    "pattern in the model file"
                )
        elif pattern in available:
            matches = [pattern]
        else:
            raise ConfoundsError(
                f"Confound column '{pattern}' not found in {source} "
                f"({_suggest(pattern, available)}); fix the name in the model file"
            )
        found += [c for c in matches if c not in found]
    return found


def write_confounds(
    confounds: pd.DataFrame, sample_mask: np.ndarray | None, out_dir: str | PathLike[str]
) -> tuple[Path, Path]:
    """Write ``confounds.tsv`` and ``sample_mask.json`` (format in the module docstring).

    Returns
    -------
    tuple of Path
        The TSV and JSON paths.
    """
    out_dir = Path(out_dir)
    tsv, mask_json = out_dir / "confounds.tsv", out_dir / "sample_mask.json"
    if confounds.shape[1]:
        confounds.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    else:
        tsv.write_text("")
    mask = None if sample_mask is None else [int(i) for i in sample_mask]
    mask_json.write_text(json.dumps({"sample_mask": mask, "n_volumes": len(confounds)}))
    return tsv, mask_json


def read_confounds(
    confounds_tsv: str | PathLike[str], sample_mask_json: str | PathLike[str]
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Read files written by :func:`write_confounds`.

    Raises
    ------
    ConfoundsError
        The two files disagree (row count) or the mask is not increasing volume indices.
    """
    confounds_tsv, sample_mask_json = Path(confounds_tsv), Path(sample_mask_json)
    meta = json.loads(sample_mask_json.read_text())
    n_volumes = int(meta["n_volumes"])
    if confounds_tsv.stat().st_size == 0:
        confounds = pd.DataFrame(index=pd.RangeIndex(n_volumes))
    else:
        confounds = pd.read_csv(confounds_tsv, sep="\t").astype("float64")
    if len(confounds) != n_volumes:
        raise ConfoundsError(
            f"{confounds_tsv} has {len(confounds)} rows but {sample_mask_json} says "
            f"n_volumes={n_volumes}; write both with glmflow.core.confounds.write_confounds"
        )
    if meta["sample_mask"] is None:
        return confounds, None
    mask = np.asarray(meta["sample_mask"], dtype=np.int64)
    if mask.size and (mask.min() < 0 or mask.max() >= n_volumes or np.any(np.diff(mask) <= 0)):
        raise ConfoundsError(
            f"sample_mask in {sample_mask_json} must be increasing volume indices in "
            f"0..{n_volumes - 1}"
        )
    return confounds, mask


# --- helpers -----------------------------------------------------------------------------


def _suggest(name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=4, cutoff=0.6)
    if close:
        return f"close matches: {', '.join(close)}"
    return f"{len(available)} columns, e.g. {', '.join(available[:6])}"


def _strings(values: Iterable[str], option: str, source: Path) -> tuple[str, ...]:
    if isinstance(values, str):
        # A bare string would otherwise be iterated character by character.
        values = (values,)
    names = tuple(values)
    for value in names:
        if not isinstance(value, str) or not value.strip():
            raise ConfoundsError(
                f"Option {option} for {source} must list non-empty strings; got {value!r}"
            )
    return names


def _one_of(option: str, value: object, allowed: Sequence[str], source: Path) -> None:
    if value not in allowed:
        raise ConfoundsError(
            f"Option {option} for {source} must be one of {', '.join(map(repr, allowed))}; "
            f"got {value!r}"
        )


def _check_options(
    source: Path,
    *,
    strategy: tuple[str, ...],
    motion: str,
    wm_csf: str,
    global_signal: str,
    compcor: str,
    n_compcor: object,
    fd_threshold: object,
    std_dvars_threshold: object,
    scrub: object,
    demean: object,
) -> None:
    for name in strategy:
        _one_of("strategy", name, STRATEGIES, source)
    if "compcor" in strategy and "high_pass" not in strategy:
        raise ConfoundsError(
            f"Strategy 'compcor' needs 'high_pass' too for {source} (fMRIPrep computes "
            "CompCor on high-pass filtered data); add 'high_pass' to the strategy"
        )
    for option, value in (
        ("motion", motion),
        ("wm_csf", wm_csf),
        ("global_signal", global_signal),
    ):
        _one_of(option, value, LEVELS, source)
    _one_of("compcor", compcor, COMPCOR, source)
    if n_compcor != "all" and not (_is_int(n_compcor) and n_compcor > 0):
        raise ConfoundsError(
            f"Option n_compcor for {source} must be a positive integer or 'all'; got {n_compcor!r}"
        )
    for option, value in (
        ("fd_threshold", fd_threshold),
        ("std_dvars_threshold", std_dvars_threshold),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfoundsError(
                f"Option {option} for {source} must be a positive number; got {value!r}"
            )
    if not (_is_int(scrub) and scrub >= 0):
        raise ConfoundsError(
            f"Option scrub for {source} must be an integer >= 0 (minimum segment length "
            f"in volumes); got {scrub!r}"
        )
    if not isinstance(demean, (bool, np.bool_)):
        raise ConfoundsError(f"Option demean for {source} must be true or false; got {demean!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ConfoundsError(f"Confounds file {path} does not exist")
    try:
        raw = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ConfoundsError(f"Confounds file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        detail = str(err).strip().splitlines()[-1]
        raise ConfoundsError(
            f"Confounds file {path} is not a tab-separated table ({detail})"
        ) from None
    if raw.empty:
        raise ConfoundsError(f"Confounds file {path} has a header but no volumes")
    for column in raw.columns:
        if not pd.api.types.is_numeric_dtype(raw[column]):
            values = pd.to_numeric(raw[column], errors="coerce")
            bad = values.isna() & raw[column].notna()
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ConfoundsError(
                f"Column '{column}' of {path} has a non-numeric value "
                f"{raw[column][bad].iloc[0]!r} on line {line}; confounds must be numbers "
                "or n/a"
            )
    return raw


def _check_volumes(path: Path, n_rows: int, bold_file: Path) -> None:
    import nibabel as nib  # imported here: only needed when a BOLD file is given

    try:
        image = nib.load(bold_file)
    except FileNotFoundError:
        raise ConfoundsError(f"BOLD file {bold_file} (for {path}) does not exist") from None
    except (nib.filebasedimages.ImageFileError, OSError) as err:
        raise ConfoundsError(f"BOLD file {bold_file} is not a readable image ({err})") from None
    if isinstance(image, nib.GiftiImage):
        n_volumes = len(image.darrays)  # one data array per volume
    elif isinstance(image, nib.Cifti2Image):
        n_volumes = image.shape[0]  # (time, grayordinates)
    else:
        n_volumes = image.shape[3] if len(image.shape) == 4 else 1
    if n_volumes != n_rows:
        raise ConfoundsError(
            f"Confounds file {path} has {n_rows} rows but {bold_file} has {n_volumes} "
            "volumes; they must come from the same fMRIPrep run"
        )


def _check_not_censored_away(
    chosen: pd.DataFrame, sample_mask: np.ndarray, strategy: tuple[str, ...], path: Path
) -> None:
    # e.g. spike columns (motion_outlier*) next to a strategy that censors the same volumes:
    # constant over the kept volumes, they would make the design rank deficient.
    values = chosen.to_numpy()
    varies = np.ptp(values, axis=0) > 0
    flat_kept = np.ptp(values[sample_mask], axis=0) == 0
    flat = list(chosen.columns[varies & flat_kept])
    if flat:
        raise ConfoundsError(
            f"Confound column(s) {', '.join(flat)} of {path} vary only in volumes that "
            f"strategy {list(strategy)} censors, so they are constant over the kept volumes; "
            "remove them from columns"
        )


def _fill_first_row(chosen: pd.DataFrame, path: Path) -> pd.DataFrame:
    chosen = chosen.reset_index(drop=True).astype("float64")
    if len(chosen) > 1:
        # Derivative columns start with n/a; nilearn copies the second volume's value.
        first = chosen.iloc[0].isna().to_numpy()
        chosen.iloc[0, first] = chosen.iloc[1, first]
    missing = chosen.isna()
    if missing.to_numpy().any():
        column = missing.any(axis=0).idxmax()
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(missing[column].to_numpy())[:5])
        raise ConfoundsError(
            f"Confound column '{column}' of {path} has n/a on line(s) {lines}; only the "
            "first volume may be n/a (it is filled like nilearn does); remove the column "
            "or fix the file"
        )
    return chosen


def _stage(path: Path, directory: Path) -> Path:
    """Give the confounds file (and sidecar) the fMRIPrep names load_confounds looks for."""
    staged = directory / "sub-glmflow_desc-confounds_timeseries.tsv"
    pairs = [(path, staged)]
    sidecar = path.with_name(re.sub(r"\.tsv$", "", path.name) + ".json")
    if sidecar.is_file():
        pairs.append((sidecar, staged.with_suffix(".json")))
    for source, target in pairs:
        try:
            os.symlink(source.resolve(), target)
        except OSError:
            shutil.copyfile(source, target)
    # nilearn derives the confounds name from the image name and never opens the image.
    return directory / "sub-glmflow_desc-preproc_bold.nii.gz"


def _load_strategies(
    path: Path, strategy: tuple[str, ...], n_volumes: int, **options: object
) -> tuple[pd.DataFrame, np.ndarray | None]:
    from nilearn.interfaces.fmriprep import load_confounds

    # nilearn always censors non-steady-state volumes and warns when asked to.
    wanted = tuple(s for s in strategy if s != "non_steady_state")
    with tempfile.TemporaryDirectory(prefix="glmflow-confounds-") as tmp:
        image = _stage(path, Path(tmp))
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="strategy is empty")
                warnings.filterwarnings("ignore", message="All volumes were marked")
                confounds, sample_mask = load_confounds(str(image), strategy=wanted, **options)
        except ValueError as err:
            detail = " ".join(str(err).replace(str(Path(tmp)), "").split())
            raise ConfoundsError(
                f"nilearn load_confounds cannot apply strategy {list(strategy)} to {path}: "
                f"{detail}"
            ) from None
    if confounds is None:
        confounds = pd.DataFrame(index=pd.RangeIndex(n_volumes))
    if sample_mask is not None:
        sample_mask = np.asarray(sample_mask, dtype=np.int64)
    return confounds.reset_index(drop=True), sample_mask
