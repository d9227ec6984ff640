"""Subject level: combine each contrast across the runs of a subject by fixed effects."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmflow.core.bold import read_masked_maps, save_nifti, unmask
from glmflow.core.fixed_effects import compute_fixed_effects
from glmflow.errors import ContrastError

MAP_KEYS = ("effect", "variance", "stat", "p", "z")


def combine_runs(
    index_files: Sequence[str | os.PathLike],
    *,
    names: Sequence[str],
    mask_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    precision_weighted: bool = True,
) -> dict[str, Any]:
    """Fixed-effects maps of each named t contrast across runs.

    Parameters
    ----------
    index_files
        One ``contrasts.json`` per run (``ComputeContrasts`` output): contrast name ->
        record with ``skipped`` and, when computed, the ``effect`` / ``variance`` map paths
        and ``dof``.
    names
        Contrasts to combine, in output order. A run where a contrast was skipped (all its
        terms dropped with ``--missing-conditions drop``) does not enter its combination;
        the record says which runs did.
    mask_file
        The mask the maps were written with.
    out_dir
        Where the maps and ``contrasts.json`` (the subject-level index) are written.
    precision_weighted
        Weight runs by their precision (default) or average them (nilearn's options).

    Returns
    -------
    dict
        ``contrast_names``, ``stat_types`` and ``effect_files`` ... ``z_files`` (aligned
        lists) and ``contrasts_json``.
    """
    indices = [json.loads(Path(f).read_text()) for f in index_files]
    out_dir = Path(out_dir)
    lists: dict[str, list[str]] = {key: [] for key in MAP_KEYS}
    index: dict[str, Any] = {}
    for i, name in enumerate(names):
        used = [i for i, idx in enumerate(indices) if not idx.get(name, {}).get("skipped", True)]
        records = [indices[i][name] for i in used]
        if not records:
            raise ContrastError(
                f"Contrast '{name}' was computed in none of the runs "
                f"({', '.join(map(str, index_files))})"
            )
        if any(r.get("stat_type", "t") != "t" for r in records):
            raise ContrastError(
                f"Contrast '{name}' is not a t contrast; fixed effects combine t contrasts"
            )
        result = compute_fixed_effects(
            [read_masked_maps(r["effect"], mask_file) for r in records],
            [read_masked_maps(r["variance"], mask_file) for r in records],
            dofs=[float(r["dof"]) for r in records],
            precision_weighted=precision_weighted,
        )
        record: dict[str, Any] = {
            "name": name,
            "stat_type": "t",
            "skipped": False,
            "dof": float(result["dof"]),
            "runs": [str(index_files[i]) for i in used],
            "dropped": sorted({d for r in records for d in r.get("dropped", [])}),
        }
        for key in MAP_KEYS:
            path = out_dir / f"subject_con{i:03d}_{key}.nii.gz"
            save_nifti(unmask(result[key].astype("float32"), mask_file), path)
            lists[key].append(str(path))
            record[key] = str(path)
        index[name] = record
    json_path = out_dir / "contrasts.json"
    json_path.write_text(json.dumps(index, indent=2))
    return {
        "contrast_names": list(names),
        "stat_types": ["t"] * len(names),
        **{f"{key}_files": files for key, files in lists.items()},
        "contrasts_json": str(json_path),
    }
