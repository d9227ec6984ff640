"""Name and write glmflow's BIDS-derivatives outputs.

File names (``[...]`` optional, entities in BIDS order, pybids entity names as input)::

    sub-<s>/[ses-<x>/]func/sub-<s>[_ses-<x>]_task-<t>[_acq-...][_run-<r>][_space-<sp>]
        _contrast-<label>_stat-<effect|variance|t|F|p|z>_statmap.nii.gz   (+ .json sidecar)
    sub-<s>/[ses-<x>/]func/sub-<s>[_ses-<x>]_task-<t>[_run-<r>]_desc-design_matrix.tsv|.json|.svg

The level decides which entities are kept: ``run`` keeps all; ``session`` drops ``run``
(runs of a session combined); ``subject`` drops ``run`` and ``session``; ``dataset`` also
drops ``subject`` and writes at the top of the output folder. Design matrices do not depend
on the voxel grid, so their names carry no ``space``/``res``/``den``.

Names are built here rather than with pybids' ``build_path`` because importing pybids costs
about half a second in every sink node. Writes are atomic: a temporary file in the target
folder, then ``os.replace``; a crash never leaves a half-written output under its final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from glmflow.errors import ContrastError, DatasetError

STATS = ("effect", "variance", "t", "F", "p", "z")
LEVELS = ("run", "session", "subject", "dataset")
BIDS_VERSION = "1.9.0"

# pybids entity name -> file-name key, in the order of the BIDS entity table.
ENTITY_KEYS = {
    "subject": "sub",
    "session": "ses",
    "sample": "sample",
    "task": "task",
    "tracksys": "tracksys",
    "acquisition": "acq",
    "nucleus": "nuc",
    "volume": "voi",
    "ceagent": "ce",
    "tracer": "trc",
    "staining": "stain",
    "reconstruction": "rec",
    "direction": "dir",
    "run": "run",
    "modality": "mod",
    "echo": "echo",
    "flip": "flip",
    "inv": "inv",
    "mt": "mt",
    "part": "part",
    "proc": "proc",
    "hemi": "hemi",
    "space": "space",
    "recording": "recording",
    "chunk": "chunk",
    "segmentation": "seg",
    "res": "res",
    "den": "den",
}
_DROPPED_AT = {
    "run": (),
    "session": ("run",),
    "subject": ("run", "session"),
    "dataset": ("run", "session", "subject"),
}
_GRID = ("space", "res", "den")
_LABEL = re.compile(r"[A-Za-z0-9]+")
# Operators spelled out so that "a-b" and "a+b" get different labels.
_OPERATORS = {
    "-": "Minus",
    "+": "Plus",
    ">": "Gt",
    "<": "Lt",
    "*": "Times",
    "/": "Over",
    "=": "Eq",
}
_DECIMAL = re.compile(r"\d+\.\d+")
_TOKEN = re.compile(rf"{_DECIMAL.pattern}|[A-Za-z0-9]+|.", re.DOTALL)


def contrast_label(name: str) -> str:
    """Turn a contrast name into a BIDS label (ASCII letters and digits).

    Rule: accents are stripped; ``- + > < * / =`` become ``Minus Plus Gt Lt Times Over Eq``;
    a decimal point between digits becomes ``p``; every other character separates words;
    words are joined in camelCase (the first word keeps its case, later words get an upper
    case first letter). So ``"face - house"`` -> ``"faceMinusHouse"``, ``"face>house"`` ->
    ``"faceGtHouse"``, ``"face_x_rt"`` -> ``"faceXRt"``, ``"0.5*face"`` -> ``"0p5TimesFace"``.
    The rule is not injective (``"face house"`` and ``"face_house"`` agree):
    :func:`contrast_labels` rejects such collisions within one model.
    """
    if not isinstance(name, str):
        raise ContrastError(f"Contrast name must be a string. Got {name!r} instead")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = []
    for token in _TOKEN.findall(ascii_name):
        if token in _OPERATORS:
            words.append(_OPERATORS[token])
        elif _LABEL.fullmatch(token) or _DECIMAL.fullmatch(token):
            words.append(token.replace(".", "p"))
    if not words:
        raise ContrastError(
            f"Contrast name {name!r} has no letters or digits, so it cannot name a file; "
            "rename the contrast"
        )
    return words[0] + "".join(w[0].upper() + w[1:] for w in words[1:])


def contrast_labels(names: Sequence[str], *, source: str | os.PathLike | None = None) -> dict:
    """Map each contrast name to its label; two names with one label is an error.

    ``source`` (the model file) is named in the error message.
    """
    labels: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        label = contrast_label(name)
        if label in seen and seen[label] != name:
            where = f" in {source}" if source else ""
            raise ContrastError(
                f"Contrasts {seen[label]!r} and {name!r} both give the file label "
                f"'{label}'{where}; rename one of them"
            )
        seen[label] = name
        labels[name] = label
    return labels


def derivative_path(
    output_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    *,
    contrast: str,
    stat: str,
    level: str,
    extension: str = ".nii.gz",
) -> Path:
    """Return the path of a statistical map (see the module docstring for the pattern).

    ``contrast`` is a contrast *name*; it is turned into a label with :func:`contrast_label`.
    """
    if extension not in (".nii.gz", ".nii"):
        raise ValueError(f"'extension' must be '.nii.gz' or '.nii'. Got {extension!r} instead")
    if stat not in STATS:
        raise ValueError(f"'stat' must be one of {', '.join(STATS)}. Got {stat!r} instead")
    fields = _fields(entities, level)
    fields += [("contrast", contrast_label(contrast)), ("stat", stat)]
    return _place(output_dir, entities, level, fields, f"statmap{extension}")


def design_path(
    output_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    *,
    level: str,
    extension: str = ".tsv",
) -> Path:
    """Return the path of a design matrix (``.tsv``), its sidecar (``.json``) or its plot."""
    if extension not in (".tsv", ".json", ".svg"):
        raise ValueError(
            f"'extension' must be '.tsv', '.json' or '.svg'. Got {extension!r} instead"
        )
    fields = [f for f in _fields(entities, level) if f[0] not in (ENTITY_KEYS[g] for g in _GRID)]
    fields.append(("desc", "design"))
    return _place(output_dir, entities, level, fields, f"matrix{extension}")


# FitFirstLevel's optional model maps (minimize_memory off) -> name tail
RUN_MODEL_MAPS = {
    "r_square": "stat-rSquare_statmap.nii.gz",
    "residuals": "desc-residuals_bold.nii.gz",
    "predicted": "desc-predicted_bold.nii.gz",
}


def model_map_path(output_dir: str | os.PathLike, entities: Mapping[str, Any], kind: str) -> Path:
    """Path of a run's r-square, residuals or predicted image (see :data:`RUN_MODEL_MAPS`)."""
    if kind not in RUN_MODEL_MAPS:
        raise ValueError(
            f"'kind' must be one of {', '.join(RUN_MODEL_MAPS)}. Got {kind!r} instead"
        )
    return _place(output_dir, entities, "run", _fields(entities, "run"), RUN_MODEL_MAPS[kind])


def sidecar_path(map_path: str | os.PathLike) -> Path:
    """Return the JSON sidecar path of a ``.nii.gz`` / ``.nii`` map."""
    path = Path(map_path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return path.with_name(stem + ".json")


def _fields(entities: Mapping[str, Any], level: str) -> list[tuple[str, str]]:
    if level not in LEVELS:
        raise ValueError(f"'level' must be one of {', '.join(LEVELS)}. Got {level!r} instead")
    unknown = sorted(set(entities) - set(ENTITY_KEYS))
    if unknown:
        raise DatasetError(
            f"Unsupported entities {', '.join(unknown)} for an output name "
            f"(supported: {', '.join(ENTITY_KEYS)}); remove them from the entities"
        )
    if level != "dataset" and entities.get("subject") is None:
        raise DatasetError(f"A {level}-level output needs a 'subject' entity. Got {entities!r}")
    fields = []
    for name, key in ENTITY_KEYS.items():
        value = entities.get(name)
        if value is None or name in _DROPPED_AT[level]:
            continue
        if not _LABEL.fullmatch(str(value)):
            # Also what keeps every output inside output_dir: no "/" or ".." can get in.
            raise DatasetError(
                f"Entity {name}={value!r} is not a BIDS label (letters and digits only)"
            )
        fields.append((key, str(value)))
    return fields


def _place(output_dir, entities, level, fields, tail) -> Path:
    folder = Path(output_dir)
    if level != "dataset":
        folder = folder / f"sub-{entities['subject']}"
        if level in ("run", "session") and entities.get("session") is not None:
            folder = folder / f"ses-{entities['session']}"
        folder = folder / "func"
    return folder / "_".join([*(f"{k}-{v}" for k, v in fields), tail])


def check_output_dir(
    output_dir: str | os.PathLike,
    bids_dir: str | os.PathLike,
    derivatives: str | os.PathLike | None = None,
) -> Path:
    """Refuse an output folder that would write into the input data; return it resolved.

    Allowed: anywhere outside ``bids_dir``, or a pipeline folder under
    ``<bids_dir>/derivatives/`` other than the fMRIPrep one (``derivatives``).
    """
    out = Path(output_dir).resolve()
    bids = Path(bids_dir).resolve()
    deriv = Path(derivatives).resolve() if derivatives else bids / "derivatives" / "fmriprep"
    if out == deriv or deriv in out.parents:
        raise DatasetError(
            f"Output folder {out} is inside the fMRIPrep derivatives {deriv}, an input; "
            f"use e.g. {bids / 'derivatives' / 'glmflow'}"
        )
    if out == bids or bids in out.parents:
        if (bids / "derivatives") not in out.parents:
            raise DatasetError(
                f"Output folder {out} is inside the raw BIDS dataset {bids}; use "
                f"{bids / 'derivatives' / 'glmflow'} or a folder outside the dataset"
            )
    return out


def write_dataset_description(
    output_dir: str | os.PathLike,
    *,
    source_datasets: Sequence[str | os.PathLike | Mapping[str, Any]],
    name: str = "glmflow GLM outputs",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``dataset_description.json`` for the derivatives (only if it changed).

    ``source_datasets`` are folders (recorded as ``file://`` URLs) or BIDS
    ``SourceDatasets`` objects (``{"URL": ..., "DOI": ..., "Version": ...}``).
    """
    from glmflow import __version__

    description = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "glmflow",
                "Version": __version__,
                "CodeURL": "https://pypi.org/project/glmflow/",
            }
        ],
        "SourceDatasets": [
            dict(s) if isinstance(s, Mapping) else {"URL": Path(s).resolve().as_uri()}
            for s in source_datasets
        ],
        **(extra or {}),
    }
    path = Path(output_dir) / "dataset_description.json"
    text = json.dumps(description, indent=2) + "\n"
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return path


def _temp_name(path: Path) -> Path:
    # Dot-prefixed so that BIDS tools and pybids ignore a leftover from a killed process.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        # os.open with 0o666 honours the umask, unlike tempfile's private 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, *, link: bool = True) -> Path:
    """Place ``src`` at ``dst`` atomically: hard link when possible, else copy.

    A hard link costs nothing and shares the bytes with Nipype's cache; Nipype empties a node
    folder before re-running it, so a later run never changes an existing output in place.
    Linking fails across file systems (or where links are not allowed): then copy.
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dst)
    try:
        try:
            if not link:
                raise OSError("copy requested")
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def write_derivatives(
    output_dir: str | os.PathLike,
    *,
    entities: Mapping[str, Any],
    level: str,
    maps: Sequence[tuple[str | os.PathLike, str, str]],
    metadata: Mapping[str, Any] | None = None,
    design_files: Sequence[str | os.PathLike] = (),
    model_maps: Mapping[str, str | os.PathLike] | None = None,
    link: bool = True,
) -> list[Path]:
    """Copy maps and design files to their BIDS paths and write one sidecar per map.

    Parameters
    ----------
    output_dir : path
        Root of the derivatives dataset; nothing is written outside it.
    entities : mapping
        pybids entity names -> labels of the inputs (e.g. ``RunInputs.entities``).
    level : {"run", "session", "subject", "dataset"}
    maps : sequence of (file, contrast name, stat)
        ``stat`` in ``STATS``.
    metadata : mapping, optional
        Written into every sidecar. A ``"Contrasts"`` key (contrast name -> dict, e.g. with
        ``Expressions``, ``StatType``, ``DroppedConditions``) is not copied whole: each map's
        sidecar gets its own contrast's entry under ``"Contrast"``.
    design_files : sequence of path
        ``.tsv`` design matrix, its ``.json`` sidecar and/or ``.svg`` plot.
    model_maps : mapping, optional
        Run level only: ``{"r_square" | "residuals" | "predicted": file}``.

    Returns
    -------
    list of Path
        The map paths, in the order of ``maps``, then the design files.
    """
    metadata = dict(metadata or {})
    contrasts = metadata.pop("Contrasts", {}) or {}
    labels = contrast_labels(list(dict.fromkeys(name for _, name, _ in maps)))
    root = Path(output_dir).resolve()
    plan: dict[Path, tuple] = {}  # destination -> (source, contrast name or None, stat)
    for src, name, stat in maps:
        ext = ".nii" if str(src).endswith(".nii") else ".nii.gz"
        dst = derivative_path(root, entities, contrast=name, stat=stat, level=level, extension=ext)
        _plan(plan, dst, (src, name, stat))
    for src in design_files:
        dst = design_path(root, entities, level=level, extension=Path(src).suffix)
        _plan(plan, dst, (src, None, None))
    for kind, src in (model_maps or {}).items():
        _plan(plan, model_map_path(root, entities, kind), (src, None, None))
    for dst, (src, name, stat) in plan.items():
        atomic_copy(src, dst, link=link)
        if name is not None:
            sidecar = {
                **metadata,
                "Level": level,
                "Statistic": stat,
                "Contrast": {"Name": name, "Label": labels[name], **contrasts.get(name, {})},
            }
            atomic_write_json(sidecar_path(dst), sidecar)
    return list(plan)


def _plan(plan: dict[Path, tuple], dst: Path, item: tuple) -> None:
    """Refuse two inputs for one output file (the second would silently win)."""
    if dst in plan:
        raise DatasetError(f"{plan[dst][0]} and {item[0]} would both be written to {dst}")
    plan[dst] = item
