"""Read and write the files of a confound selection: fMRIPrep's table, the nodes' files."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.errors import ConfoundsError


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


def read_raw(path: Path) -> pd.DataFrame:
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


def check_volumes(path: Path, n_rows: int, bold_file: Path) -> None:
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
