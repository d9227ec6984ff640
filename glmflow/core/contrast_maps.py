"""All contrasts of one run's fit as NIfTI maps, remembered per contrast."""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from glmflow.core.bold import save_nifti, unmask
from glmflow.core.contrasts import MAP_KEYS, compute_contrast
from glmflow.core.glm import load_fit
from glmflow.core.memo import file_identity, memo_key, recall, remember
from glmflow.errors import ContrastError


def compute_contrast_maps(
    fit_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    contrasts: Sequence[Mapping[str, Any]],
    *,
    out_dir: str | os.PathLike,
    missing: str = "error",
    memo_dir: str | os.PathLike | None = None,
    run_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute every contrast and write its effect, variance, stat, p and z maps.

    Parameters
    ----------
    fit_file, mask_file
        ``FitFirstLevel``'s fit and the mask its data were read with.
    contrasts
        Contrast objects ``{name, expressions | weights, stat_type}``, in output order.
    out_dir, missing
        Where the maps and ``contrasts.json`` go; ``"error"`` or ``"drop"``
        (:func:`glmflow.core.contrasts.compute_contrast`).
    memo_dir, run_record
        Where each contrast's maps are remembered (:mod:`glmflow.core.memo`; None: no
        memo); facts about the run for every sidecar (``MaskedBold.record()``).

    Returns
    -------
    dict
        ``contrast_names``, ``stat_types``, ``effect_files`` ... ``z_files`` (aligned),
        ``dof``, ``contrasts_json`` (name -> paths, weights, dof, or ``skipped`` and why).
    """
    out_dir = Path(out_dir)
    ids = (file_identity(fit_file), file_identity(mask_file))
    load = functools.cache(lambda: load_fit(fit_file))  # only when a contrast is computed
    lists: dict[str, list[str]] = {key: [] for key in MAP_KEYS}
    names, stat_types, index = [], [], {}
    dof = None
    for i, spec in enumerate(contrasts):
        name, record = _recall_or_compute(
            i, spec, load, ids, missing, mask_file, out_dir, memo_dir
        )
        files = record.pop("files")
        record.update(run_record or {})
        dof, index[name] = record.get("dof", dof), record
        if record.get("skipped"):
            continue
        record.update(files)
        for key in MAP_KEYS:
            lists[key].append(files[key])
        names.append(name)
        stat_types.append(record["stat_type"])
    dof = float(load().df_residuals) if dof is None else dof
    (json_path := out_dir / "contrasts.json").write_text(json.dumps(index, indent=2))
    return {
        "contrast_names": names,
        "stat_types": stat_types,
        **{f"{key}_files": files for key, files in lists.items()},
        "dof": float(dof),
        "contrasts_json": str(json_path),
    }


def _recall_or_compute(
    i: int, spec: Any, load, ids: tuple, missing: str, mask_file, out_dir: Path, memo_dir
) -> tuple[str, dict[str, Any]]:
    """One contrast's record (with its ``files``), from the memo or computed and remembered."""
    if not isinstance(spec, Mapping):
        raise ContrastError(
            f"contrasts item {i} must be an object with name, expressions or weights, "
            f"stat_type; got {spec!r}"
        )
    name = str(spec.get("name", f"contrast{i}"))
    key = memo_key("contrast", *ids, dict(spec), missing)
    record = recall(memo_dir, key, out_dir, prefix=f"con{i:03d}")
    if record is None:
        record, files = _compute(load(), spec, missing, mask_file, out_dir, i)
        remember(memo_dir, key, record, files)
        record = {**record, "files": {k: str(v) for k, v in files.items()}}
    return name, record


def _compute(fit, spec, missing, mask_file, out_dir: Path, i: int):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compute_contrast(fit, spec, missing=missing)
    for warning in caught:  # said again so they reach the log as well as the index
        warnings.warn(str(warning.message), warning.category, stacklevel=3)
    if result is None:
        reason = "; ".join(str(w.message) for w in caught)
        return {"skipped": True, "reason": reason, "dof": float(fit.df_residuals)}, {}
    files = {}
    for key in MAP_KEYS:
        path = out_dir / f"con{i:03d}_{key}.nii.gz"
        save_nifti(unmask(result[key].astype("float32"), mask_file), path)
        files[key] = path
    return {**result.info(), "skipped": False}, files
