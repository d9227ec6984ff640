"""nilearn's Butterworth filter: what a run can carry, and a low-pass of data and designs.

One rule for every filtered run (a resting run's band-pass, a BIDS Stats Model's
``LowPassFilterCutoffHz``): :func:`check_butterworth` refuses a cutoff at or above the
Nyquist frequency of the run's TR and a run too short for nilearn's filter (order
:data:`BUTTERWORTH_ORDER`, applied forwards and backwards by ``scipy.signal.sosfiltfilt``,
which needs more samples than its padding). The filter itself is nilearn's public
``nilearn.signal.butterworth`` with its defaults; :func:`low_pass_masked_file` applies it to a
masked run in voxel chunks, so memory stays bounded whatever the run's size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from glmflow.errors import DatasetError

#: nilearn's Butterworth filter order (``nilearn.signal.butterworth``'s default).
BUTTERWORTH_ORDER = 5
# voxels filtered at once: (n_volumes, 4096) float64 is 5 MB at 160 volumes
_CHUNK_VOXELS = 4096


def butterworth_padlen(tr: float, high_pass: float | None, low_pass: float | None) -> int:
    """The padding ``scipy.signal.sosfiltfilt`` adds by default for nilearn's filter; a run
    needs more volumes than this."""
    from scipy.signal import butter

    band = [f for f in (high_pass, low_pass) if f is not None]
    btype = "band" if len(band) == 2 else ("high" if high_pass else "low")
    sos = butter(
        BUTTERWORTH_ORDER, band if len(band) == 2 else band[0], btype, output="sos", fs=1 / tr
    )
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * len(sos) + 1 - zeros)


def check_butterworth(
    n_volumes: int,
    tr: float,
    where: str,
    *,
    high_pass: float | None = None,
    low_pass: float | None = None,
    fields: Sequence[str] = ("high_pass", "low_pass"),
    prefix: str = "",
    kind: str = "band-pass",
    length_fix: str = "remove high_pass / low_pass for this run or leave it out",
) -> None:
    """Refuse a cutoff the run's TR cannot carry, or a run too short to filter.

    ``where`` names the run, ``fields`` the (high, low) cutoffs as the user wrote them,
    ``prefix`` starts the line (a model file and node), ``kind`` names the filter and
    ``length_fix`` says what to do about a short run; the defaults are the resting-state
    model's wording.
    """
    nyquist = 0.5 / tr
    for name, value in zip(fields, (high_pass, low_pass), strict=True):
        if value is not None and value >= nyquist:
            raise DatasetError(
                f"{prefix}{name} {value:g} Hz is at or above the Nyquist frequency {nyquist:g} "
                f"Hz of {where} (TR {tr:g} s); lower it or remove it"
            )
    if high_pass is None and low_pass is None:
        return
    padlen = butterworth_padlen(tr, high_pass, low_pass)
    if n_volumes <= padlen:
        raise DatasetError(
            f"{prefix}{where} has {n_volumes} volumes, but nilearn's {kind} filter (order "
            f"{BUTTERWORTH_ORDER} Butterworth, filtered both ways) needs more than {padlen}; "
            f"{length_fix}"
        )


def apply_low_pass(signals: np.ndarray, cutoff_hz: float, tr: float) -> np.ndarray:
    """``nilearn.signal.butterworth`` low-pass of ``signals`` (time along axis 0), a new
    float64 array; the input is left as it is."""
    from nilearn.signal import butterworth

    values = np.asarray(signals, dtype=np.float64)
    return butterworth(values, sampling_rate=1.0 / tr, low_pass=cutoff_hz, copy=True)


def low_pass_design(design: pd.DataFrame, cutoff_hz: float, tr: float) -> pd.DataFrame:
    """Every column of a design low-passed as the data are (a constant stays constant)."""
    values = apply_low_pass(design.to_numpy(dtype=np.float64), cutoff_hz, tr)
    return pd.DataFrame(values, columns=design.columns, index=design.index)


def low_pass_masked_file(
    data_file: str | os.PathLike, out_dir: str | os.PathLike, *, cutoff_hz: float, tr: float
) -> Path:
    """Low-pass a masked run (``.npy``, (n_volumes, n_voxels)) into
    ``<out_dir>/bold_lowpass.npy`` of the same dtype, a chunk of voxels at a time; the input
    file is only read."""
    data = np.load(data_file, mmap_mode="r")
    if data.ndim != 2:
        raise DatasetError(f"{data_file}: expected (n_volumes, n_voxels); got {data.shape}")
    path = Path(out_dir) / "bold_lowpass.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=data.dtype, shape=data.shape)
    for start in range(0, data.shape[1], _CHUNK_VOXELS):
        chunk = slice(start, start + _CHUNK_VOXELS)
        out[:, chunk] = apply_low_pass(data[:, chunk], cutoff_hz, tr)
    out.flush()
    del out
    return path
