"""Name and write glmflow's BIDS-derivatives outputs.

File names (``[...]`` optional, entities in BIDS order, pybids entity names as input)::

    sub-<s>/[ses-<x>/]func/sub-<s>[_ses-<x>]_task-<t>[_acq-...][_run-<r>][_space-<sp>]
        _contrast-<label>_stat-<effect|variance|t|F|p|z>_statmap.nii.gz   (+ .json sidecar)
    sub-<s>/[ses-<x>/]func/sub-<s>[_ses-<x>]_task-<t>[_run-<r>]_design.tsv|.json|.svg

The level decides which entities are kept: ``run`` keeps all; ``session`` drops ``run``
(runs of a session combined); ``subject`` drops ``run`` and ``session``; ``dataset`` also
drops ``subject`` and writes at the top of the output folder. Design matrices do not depend
on the voxel grid, so their names carry no ``space``/``res``/``den``.

Names are built here rather than with pybids' ``build_path`` because importing pybids costs
about half a second in every sink node. Outputs are private copies, written atomically and,
in a graph, only once the level has succeeded (:mod:`glmflow.core.publish`).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from glmflow.core.publish import (  # noqa: F401  (re-exported: where importers look)
    atomic_copy,
    atomic_write_json,
    atomic_write_text,
    write_dataset_description,
    write_manifest,
)
from glmflow.core.sidecars import sidecar_key, sidecar_path
from glmflow.errors import ContrastError, DatasetError

STATS = ("effect", "variance", "t", "F", "p", "z")
#: Map file types: NIfTI, and on surfaces CIFTI scalars and one hemisphere's GIFTI (issue 12).
MAP_EXTENSIONS = (".nii.gz", ".dscalar.nii", ".func.gii", ".nii")
LEVELS = ("run", "session", "subject", "dataset")
#: Longest contrast label: 255-byte file names leave this much beside the entities.
MAX_LABEL = 120

# pybids entity name -> file-name key, in the order of the BIDS entity table.
# fmt: off
ENTITY_KEYS = {
    "subject": "sub", "session": "ses", "sample": "sample", "task": "task",
    "tracksys": "tracksys", "acquisition": "acq", "nucleus": "nuc", "volume": "voi",
    "ceagent": "ce", "tracer": "trc", "staining": "stain", "reconstruction": "rec",
    "direction": "dir", "run": "run", "modality": "mod", "echo": "echo", "flip": "flip",
    "inv": "inv", "mt": "mt", "part": "part", "proc": "proc", "hemi": "hemi",
    "space": "space", "recording": "recording", "chunk": "chunk", "segmentation": "seg",
    "res": "res", "den": "den",
}
# fmt: on
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

    A label longer than :data:`MAX_LABEL` is an error too: file names are limited to 255
    bytes and the entities and ``_stat-variance_statmap.nii.gz`` need the rest. ``source``
    (the model file) is named in the error messages.
    """
    labels: dict[str, str] = {}
    seen: dict[str, str] = {}
    where = f" in {source}" if source else ""
    for name in names:
        label = contrast_label(name)
        if len(label) > MAX_LABEL:
            raise ContrastError(
                f"Contrast {name[:40]!r}... gives a file label of {len(label)} characters"
                f"{where}; output file names are limited to 255 bytes, so a label may have "
                f"at most {MAX_LABEL}: give the contrast a shorter name"
            )
        if label in seen and seen[label] != name:
            raise ContrastError(
                f"Contrasts {seen[label]!r} and {name!r} both give the file label "
                f"'{label}'{where}; rename one of them"
            )
        seen[label] = name
        labels[name] = label
    return labels


def sidecar_contrast(name: str, *infos: Mapping[str, Any]) -> dict[str, Any]:
    """A sidecar's ``Contrast`` entry: name, file label, then each info's keys in BIDS
    spelling (a later info wins; e.g. a node's record over the model's definition)."""
    entry: dict[str, Any] = {"Name": name, "Label": contrast_label(name)}
    for info in infos:
        entry.update({sidecar_key(k): v for k, v in info.items()})
    return entry


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
    if extension not in MAP_EXTENSIONS:
        raise ValueError(
            f"'extension' must be one of {', '.join(MAP_EXTENSIONS)}. Got {extension!r} instead"
        )
    if stat not in STATS:
        raise ValueError(f"'stat' must be one of {', '.join(STATS)}. Got {stat!r} instead")
    fields = output_fields(entities, level)
    fields += [("contrast", contrast_label(contrast)), ("stat", stat)]
    return output_path(output_dir, entities, level, fields, f"statmap{extension}")


def subject_is_its_run(run: Mapping[str, Any], subject: Mapping[str, Any]) -> bool:
    """Whether a subject's maps are named as its one run's (a subject's only run without
    ``run-``): its t contrasts then go out once, as the subject's (the same maps)."""
    probe = {"contrast": "c", "stat": "z"}
    names = (derivative_path(".", e, level=lv, **probe) for e, lv in ((run, "run"),
                                                                     (subject, "subject")))
    return len(set(names)) == 1


def design_path(
    output_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    *,
    level: str,
    extension: str = ".tsv",
    keep_grid: bool = False,
) -> Path:
    """Return the path of a design matrix (``.tsv``), its sidecar (``.json``) or its plot.

    Named ``<entities>_design.<ext>`` as BIDS Stats Models tools (FitLins, nilearn's
    ``save_glm_to_bids``) name them; run and group level alike; no ``space``/``res``/``den``
    unless ``keep_grid`` (a surface level's designs, beside the volume level's).
    """
    if extension not in (".tsv", ".json", ".svg"):
        raise ValueError(
            f"'extension' must be '.tsv', '.json' or '.svg'. Got {extension!r} instead"
        )
    grid = [] if keep_grid else [ENTITY_KEYS[g] for g in _GRID]
    fields = [f for f in output_fields(entities, level) if f[0] not in grid]
    return output_path(output_dir, entities, level, fields, f"design{extension}")


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
    fields = output_fields(entities, "run")
    return output_path(output_dir, entities, "run", fields, RUN_MODEL_MAPS[kind])


def output_fields(entities: Mapping[str, Any], level: str) -> list[tuple[str, str]]:
    """The (key, label) pairs of an output name at ``level``, in BIDS order (checked)."""
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


def output_path(output_dir, entities, level, fields, tail) -> Path:
    """``fields`` and ``tail`` joined as a file name in the level's folder (<= 255 bytes)."""
    folder = Path(output_dir)
    if level != "dataset":
        folder = folder / f"sub-{entities['subject']}"
        if level in ("run", "session") and entities.get("session") is not None:
            folder = folder / f"ses-{entities['session']}"
        folder = folder / "func"
    name = "_".join([*(f"{k}-{v}" for k, v in fields), tail])
    if len(name.encode()) > 255:  # long entity labels on top of a long contrast label
        raise DatasetError(
            f"Output file name {name[:60]}... has {len(name.encode())} bytes; file systems "
            "allow 255: shorten the contrast name or the entity labels"
        )
    return folder / name


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
    not_folder = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if not_folder is not None:
        raise DatasetError(
            f"Output folder {out} cannot be made: {not_folder} is a file, not a folder; "
            "choose another OUTPUT_DIR or move the file away"
        )
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


def plan_derivatives(
    output_dir: str | os.PathLike,
    *,
    entities: Mapping[str, Any],
    level: str,
    maps: Sequence[tuple[str | os.PathLike, str, str]],
    metadata: Mapping[str, Any] | None = None,
    design_files: Sequence[str | os.PathLike] = (),
    model_maps: Mapping[str, str | os.PathLike] | None = None,
    design_grid: bool = False,
) -> dict[Path, tuple[Path, dict | None]]:
    """Where each map and design file goes, and each map's sidecar; nothing is written.

    Parameters
    ----------
    output_dir : path
        Root of the derivatives dataset; nothing is placed outside it.
    entities : mapping
        pybids entity names -> labels of the inputs (e.g. ``RunInputs.entities``).
    level : {"run", "session", "subject", "dataset"}
    maps : sequence of (file, contrast name, stat)
        ``stat`` in ``STATS``.
    metadata : mapping, optional
        Written into every sidecar. A ``"Contrasts"`` key (contrast name -> dict, e.g. with
        ``Expressions``, ``StatType``, ``DroppedConditions``) is not copied whole: each map's
        sidecar gets its own contrast's entry under ``"Contrast"``.
    design_files, design_grid : sequence of path, bool
        ``.tsv`` design matrix, its ``.json`` sidecar and/or ``.svg`` plot;
        :func:`design_path`'s ``keep_grid`` for them.
    model_maps : mapping, optional
        Run level only: ``{"r_square" | "residuals" | "predicted": file}``.

    Returns
    -------
    dict
        Destination -> (source, sidecar of a map or None): the maps in the order of
        ``maps``, then the design files and model maps.
    """
    metadata = dict(metadata or {})
    contrasts = metadata.pop("Contrasts", {}) or {}
    contrast_labels(list(dict.fromkeys(name for _, name, _ in maps)))  # refuses label clashes
    root = Path(output_dir).resolve()
    plan: dict[Path, tuple[Path, dict | None]] = {}
    for src, name, stat in maps:
        ext = next((e for e in MAP_EXTENSIONS[1:] if str(src).endswith(e)), ".nii.gz")
        dst = derivative_path(root, entities, contrast=name, stat=stat, level=level, extension=ext)
        sidecar = {
            **metadata,
            "Level": level,
            "Statistic": stat,
            "Contrast": sidecar_contrast(name, contrasts.get(name, {})),
        }
        _plan(plan, dst, (Path(src), sidecar))
    for src in design_files:
        dst = design_path(root, entities, level=level, extension=Path(src).suffix,
                          keep_grid=design_grid)  # fmt: skip
        _plan(plan, dst, (Path(src), None))
    for kind, src in (model_maps or {}).items():
        _plan(plan, model_map_path(root, entities, kind), (Path(src), None))
    return plan


def write_derivatives(output_dir: str | os.PathLike, **plan: Any) -> list[Path]:
    """Copy maps and design files to their BIDS paths and write one sidecar per map, now.

    Takes :func:`plan_derivatives`' arguments and returns the destinations in its order.
    For graphs, :func:`stage_derivatives` + :func:`glmflow.core.publish.publish` write
    nothing until the level has succeeded.
    """
    planned = plan_derivatives(output_dir, **plan)
    for dst, (src, sidecar) in planned.items():
        atomic_copy(src, dst)
        if sidecar is not None:
            atomic_write_json(sidecar_path(dst), sidecar)
    return list(planned)


def stage_derivatives(
    output_dir: str | os.PathLike, *, stage_dir: str | os.PathLike, **plan: Any
) -> tuple[list[Path], list[Path], Path]:
    """Plan the outputs, write the sidecars into ``stage_dir`` and a manifest for publish.

    Takes :func:`plan_derivatives`' arguments. Returns the destinations (in its order), the
    staged sidecars and the manifest file (``stage_dir/manifest.json``) that
    :func:`glmflow.core.publish.publish` copies from once the level has succeeded.
    """
    planned = plan_derivatives(output_dir, **plan)
    stage = Path(stage_dir)
    pairs, staged = [], []
    for dst, (src, sidecar) in planned.items():
        pairs.append((src, dst))
        if sidecar is not None:
            staged.append(atomic_write_json(stage / sidecar_path(dst).name, sidecar))
            pairs.append((staged[-1], sidecar_path(dst)))
    return list(planned), staged, write_manifest(stage / "manifest.json", pairs)


def _plan(plan: dict[Path, tuple], dst: Path, item: tuple) -> None:
    """Refuse two inputs for one output file (the second would silently win)."""
    if dst in plan:
        raise DatasetError(f"{plan[dst][0]} and {item[0]} would both be written to {dst}")
    plan[dst] = item
