"""Reading model files (format detection) and reconciling the repetition time with the data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glmflow.core.model import validation as check
from glmflow.core.model.glm_express import task_information_to_spec
from glmflow.core.model.jsonfile import read_json
from glmflow.core.model.spec import ModelSpec
from glmflow.core.model.validation import locate
from glmflow.errors import DatasetError, ModelSpecError

TR_TOLERANCE = 1e-3  # seconds; sidecars are often rounded to the millisecond


def load_task_information(path: str | Path, task: str) -> ModelSpec:
    """Read ``task`` from a glm-express ``task_information.json`` (see the module docstring).

    Everything is validated before any compute; errors are one line naming the file, the
    task, the key, the value and the fix.
    """
    return task_information_to_spec(read_json(path), path, task)


def load_model(path: str | Path, task: str | None = None) -> ModelSpec:
    """Load a model file, detecting its format.

    glmflow's native JSON (``ModelSpec.to_json``, has "schema_version") or a glm-express
    ``task_information.json`` (see :mod:`glmflow.core.model.glm_express`; ``task`` may be
    omitted when the file holds one task). BIDS Stats Models are recognised and refused for now.
    """
    data = read_json(path)
    if isinstance(data, Mapping) and ("Nodes" in data or "BIDSModelVersion" in data):
        raise ModelSpecError(
            f"{path} is a BIDS Stats Model, which is not a ModelSpec: run it with "
            "run_participant_level / the CLI (glmflow.runners.bsm.run_bids_stats_model)"
        )
    if isinstance(data, Mapping) and "schema_version" in data:
        spec = ModelSpec.from_dict(data, source=str(path))
        if task is not None and task != spec.task:
            raise ModelSpecError(
                f"Model {path} is for task '{spec.task}', not '{task}'; pick the matching task"
            )
        return spec
    return task_information_to_spec(data, path, task)


def check_repetition_time(
    *,
    spec_tr: float | None,
    sidecar_tr: float | None,
    header_tr: float | None,
    bold_file: str | Path,
    model_file: str | Path,
) -> float:
    """Return the repetition time (s) of ``bold_file``, refusing any disagreement.

    ``sidecar_tr`` is the BOLD sidecar's RepetitionTime, ``header_tr`` the NIfTI pixdim[4]
    in seconds (None or 0 = unknown), ``spec_tr`` the model's "tr" (None = from the data).
    Values closer than ``TR_TOLERANCE`` agree. A header/sidecar conflict is a DatasetError, a
    model/data conflict a ModelSpecError; both name the values, files and the fix.
    """
    sidecar = _data_tr(sidecar_tr, "the sidecar's RepetitionTime", bold_file, zero_ok=False)
    header = _data_tr(header_tr, "the NIfTI header's pixdim[4]", bold_file, zero_ok=True)
    if sidecar and header and abs(sidecar - header) > TR_TOLERANCE:
        raise DatasetError(
            f"{bold_file}: the sidecar says RepetitionTime {sidecar:g} s but the NIfTI "
            f"header (pixdim[4]) says {header:g} s; BIDS takes the sidecar as authoritative: "
            "fix the header (or the sidecar, whichever is wrong)"
        )
    data_tr, origin = (
        (sidecar, "sidecar RepetitionTime") if sidecar else (header, "NIfTI header pixdim[4]")
    )
    if spec_tr is None:
        if data_tr is None:
            raise DatasetError(
                f"{bold_file} has no repetition time (no sidecar RepetitionTime, header "
                f'pixdim[4] is 0); add RepetitionTime to its sidecar or set "tr" in {model_file}'
            )
        return float(data_tr)
    try:
        spec_tr = check.number(spec_tr, "tr", low=0, strict=True)
    except ModelSpecError as err:
        raise locate(err, f"in {model_file}") from None
    if data_tr is not None and abs(spec_tr - data_tr) > TR_TOLERANCE:
        hint = " (glm-express's builder writes tr 1.0 whatever the data)" if spec_tr == 1 else ""
        raise ModelSpecError(
            f'"tr" is {spec_tr:g} s in {model_file} but {bold_file} has {data_tr:g} s '
            f'({origin}); set "tr" to {data_tr:g} in {model_file} or remove it to use the '
            f"data's value{hint}"
        )
    return float(data_tr if data_tr is not None else spec_tr)


def _data_tr(value: Any, what: str, bold_file: str | Path, *, zero_ok: bool) -> float | None:
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise DatasetError(
            f"{what} of {bold_file} must be a positive number of seconds; got {check.show(value)}"
        )
    return float(value) or None  # a zero pixdim[4] is how NIfTI says "unknown"
