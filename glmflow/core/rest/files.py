"""Connectivity files: BIDS names, the matrix and time-series TSVs, staging for publish.

Names follow the BIDS connectivity derivatives (BEP017) conventions::

    sub-<s>/[ses-<x>/]func/<run entities>_seg-<atlas>_desc-<model>_timeseries.tsv   (+ .json)
    sub-<s>/[ses-<x>/]func/<run entities>_seg-<atlas>_meas-<measure>_desc-<model>_relmat.tsv
    sub-<s>/func/<subject entities>_seg-<atlas>_meas-<measure>_desc-<model>_relmat.tsv
    sub-<s>/[ses-<x>/]func/<run entities>_seed-<name>_meas-correlation_desc-<model>_statmap.nii.gz

``desc-`` is the model's name: two models of one task and atlas (``rest`` and ``rest_gsr``
denoising) write side by side. The subject's file (runs combined) keeps the entities its
runs share; a subject of one run without ``run-`` writes its matrices there only (the run
sink stages its time series). A ``relmat.tsv`` is the square matrix without header
(BEP017), its node labels in the sidecar (``NodeLabels``); a ``timeseries.tsv`` has one
column per node, named by its label, and one row per kept volume (``CensoredVolumes`` in
the sidecar lists the others).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.outputs import (
    atomic_write_json,
    atomic_write_text,
    output_fields,
    output_path,
)
from glmflow.core.publish import write_manifest
from glmflow.core.sidecars import sidecar_path


def connectivity_path(
    output_dir: str | os.PathLike,
    entities: Mapping[str, Any],
    *,
    level: str,
    suffix: str,
    seg: str | None = None,
    meas: str | None = None,
    seed: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
    desc: str | None = None,
) -> Path:
    """Path of a time series, a matrix or a seed map (module docstring); ``extra``
    (key, label) pairs go after ``meas`` (the group level's ``contrast`` and ``stat``),
    ``desc`` (the model's name) last."""
    ents = dict(entities)
    if seg is not None:
        ents["segmentation"] = seg
    fields = output_fields(ents, level)
    if seed is not None:
        fields.append(("seed", seed))
    if meas is not None:
        fields.append(("meas", meas))
    fields.extend(extra)
    if desc is not None:
        fields.append(("desc", desc))
    tail = {"timeseries": "timeseries.tsv", "relmat": "relmat.tsv", "statmap": "statmap.nii.gz",
            "edges": "edges.tsv", "design": "design.tsv", "plot": "relmat.svg",
            "connectome": "connectome.svg"}  # fmt: skip
    return output_path(output_dir, ents, level, fields, tail[suffix])


def subject_entities(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The entities a subject's runs (their entity dicts) share: its files' names keep
    these (two runs differing only in ``acq-`` give a subject name without ``acq-``)."""
    return {k: v for k, v in runs[0].items() if all(r.get(k) == v for r in runs)}


def subject_names_are_run_names(runs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the subject's file names are its one run's (no ``run-`` or ``ses-``)."""

    def name(entities, level):
        return connectivity_path(".", entities, level=level, suffix="relmat")

    return len(runs) == 1 and name(runs[0], "run") == name(subject_entities(runs), "subject")


def write_matrix(path: str | os.PathLike, matrix: np.ndarray) -> Path:
    """A square matrix as a header-less TSV (n/a for NaN), full precision."""
    text = np.char.mod("%.17g", np.asarray(matrix, dtype=np.float64))
    text[np.isnan(matrix)] = "n/a"
    return atomic_write_text(path, "\n".join("\t".join(row) for row in text) + "\n")


def read_matrix(path: str | os.PathLike) -> np.ndarray:
    """A ``relmat.tsv`` back as floats (n/a as NaN)."""
    return pd.read_csv(path, sep="\t", header=None, na_values="n/a").to_numpy(np.float64)


def write_timeseries(path: str | os.PathLike, series: np.ndarray, names: Sequence[str]) -> Path:
    """Node time series with one column per node label."""
    text = np.char.mod("%.17g", np.asarray(series, dtype=np.float64))
    rows = ["\t".join(names), *("\t".join(row) for row in text)]
    return atomic_write_text(path, "\n".join(rows) + "\n")


def read_timeseries(path: str | os.PathLike) -> np.ndarray:
    """A ``timeseries.tsv`` back as a (n_volumes, n_nodes) float array."""
    return pd.read_csv(path, sep="\t").to_numpy(np.float64)


def name_entities(name: str) -> dict[str, str]:
    """The ``key-value`` entities of a file name (``sub``, ``task``, ``seg``, ``desc``...)."""
    return dict(p.split("-", 1) for p in name.split("_") if "-" in p)


def stage_files(
    pairs: Sequence[tuple[str, Path, Mapping[str, Any] | None]], stage_dir: str | os.PathLike
) -> tuple[list[Path], Path]:
    """Stage (source, destination, sidecar) triples; return destinations and the manifest."""
    stage = Path(stage_dir)
    manifest, written = [], []
    destinations = [dst for _, dst, _ in pairs]
    for dst in destinations:
        if destinations.count(dst) > 1:
            raise ValueError(f"Two connectivity outputs staged to {dst}; a naming bug")
    for i, (src, dst, sidecar) in enumerate(pairs):
        manifest.append((Path(src), dst))
        written.append(dst)
        if sidecar is not None:
            staged = atomic_write_json(stage / f"{i:04d}_{sidecar_path(dst).name}", sidecar)
            manifest.append((staged, sidecar_path(dst)))
    return written, write_manifest(stage / "manifest.json", manifest)
