"""Design files: the TSV a user hands to nilearn as it is, its JSON sidecar and its picture.

- ``design.tsv``: tab-separated, header row, one column per regressor in design order and
  nothing else, so ``pandas.read_csv(path, sep="\\t")`` is the DataFrame nilearn's
  ``FirstLevelModel.fit(design_matrices=...)`` expects. Floats are written at shortest
  round-trip precision, so ``read_design(*write_design(x)[:2])`` returns ``x`` exactly.
- ``design.json``: its sidecar, ``{"FrameTimes": [s, ...], "Roles": {column: role}}``, the
  acquisition time of each volume and the role (in ``ROLES``) of each column.
- ``design.svg``: a picture of the matrix (:func:`plot_design`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glmflow.core.design.build import build_design_matrix
from glmflow.core.design.checks import INDEX_NAME
from glmflow.core.model import DesignSpec
from glmflow.errors import DesignError

# pandas >= 3 parses floats exactly by default and deprecates asking for it.
_ROUND_TRIP = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def build_design_files(
    events: str | Path | None,
    confounds: str | Path | None,
    design: DesignSpec,
    *,
    out_dir: str | Path,
    plot: bool = True,
    **run: Any,
) -> dict[str, str]:
    """:func:`build_design_matrix` then :func:`write_design` (``BuildDesignMatrix``'s work).

    ``run`` holds ``n_volumes``, ``tr`` and ``slice_time_ref``. Returns ``design_file``,
    ``sidecar_file`` and, when ``plot`` is True, ``plot_file``.
    """
    matrix, roles = build_design_matrix(events, confounds, design, **run)
    design_tsv, sidecar, plot_path = write_design(matrix, roles, out_dir, plot=plot)
    files = {"design_file": str(design_tsv), "sidecar_file": str(sidecar)}
    if plot_path is not None:
        files["plot_file"] = str(plot_path)
    return files


def write_design(
    design: pd.DataFrame, roles: dict[str, str], out_dir: str | Path, *, plot: bool = True
) -> tuple[Path, Path, Path | None]:
    """Write ``design.tsv``, its sidecar ``design.json`` and ``design.svg`` into ``out_dir``.

    Returns the three paths (the plot path is None when ``plot`` is False).
    """
    if list(roles) != list(design.columns):
        raise DesignError(
            f"roles keys {list(roles)} do not match the design columns {list(design.columns)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    design_tsv = out_dir / "design.tsv"
    # pandas writes float64 at shortest round-trip precision (repr): exact when read back.
    design.to_csv(design_tsv, sep="\t", index=False)
    sidecar = out_dir / "design.json"
    content = {"FrameTimes": [float(t) for t in design.index], "Roles": roles}
    sidecar.write_text(json.dumps(content, indent=2) + "\n")
    plot_path = plot_design(design, out_dir / "design.svg") if plot else None
    return design_tsv, sidecar, plot_path


def read_design(
    design_tsv: str | Path, sidecar: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, str] | None]:
    """Read what :func:`write_design` wrote; the inverse is exact to the last bit.

    Without ``sidecar`` the design has a default index and the roles are None.
    """
    try:
        design = pd.read_csv(design_tsv, sep="\t", **_ROUND_TRIP)
    except FileNotFoundError as err:
        raise DesignError(f"Design file {design_tsv} does not exist; check the path") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DesignError(f"Design file {design_tsv} is not a readable TSV ({err})") from err
    if INDEX_NAME in design.columns:
        raise DesignError(
            f"Design file {design_tsv} has a '{INDEX_NAME}' column, which a fit would take "
            "for a regressor; frame times belong in its sidecar: write it with write_design"
        )
    bad = [c for c in design.columns if not pd.api.types.is_numeric_dtype(design[c])]
    if bad:
        raise DesignError(
            f"Design file {design_tsv} has non-numeric column(s) {', '.join(map(str, bad))}; "
            "every column must be a number per volume"
        )
    if sidecar is None:
        return design, None
    return _with_sidecar(design, design_tsv, sidecar)


def _with_sidecar(design: pd.DataFrame, design_tsv, sidecar) -> tuple[pd.DataFrame, dict]:
    try:
        content = json.loads(Path(sidecar).read_text())
        frame_times, roles = list(content["FrameTimes"]), dict(content["Roles"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DesignError(
            f"Design sidecar {sidecar} must be JSON with 'FrameTimes' (a list) and 'Roles' "
            f"(an object) ({type(err).__name__}: {err}); write it with write_design"
        ) from err
    if list(roles) != list(design.columns):
        raise DesignError(
            f"Columns of {sidecar} ({', '.join(roles)}) do not match those of {design_tsv} "
            f"({', '.join(design.columns)}); keep the two files of one write_design together"
        )
    if len(frame_times) != len(design):
        raise DesignError(
            f"{sidecar} has {len(frame_times)} FrameTimes for the {len(design)} rows of "
            f"{design_tsv}; keep the two files of one write_design together"
        )
    design.index = pd.Index(np.asarray(frame_times, dtype=float), name=INDEX_NAME)
    return design, roles


def plot_design(design: pd.DataFrame, path: str | Path) -> Path:
    """Save a picture of ``design``: an ``.svg`` is drawn as the report pages draw designs
    (:func:`glmflow.core.report.figures.design_svg`: the matrix as pixels, each column
    scaled to its largest magnitude, with the column names); other formats are nilearn's
    ``plot_design_matrix`` picture.

    Why not nilearn's picture for the SVG every run writes: matplotlib's drawing took 0.24 s
    of a 0.37 s design node (60 volumes, 2026-12-02), 48 s of node time for 200 runs, where
    the hand-drawn SVG takes ~12 ms.
    """
    if Path(path).suffix == ".svg":
        from glmflow.core.report.figures import design_svg

        columns = [str(c) for c in design.columns]
        svg = design_svg(design.to_numpy(float), columns, label="design matrix")
        Path(path).write_text(f'<?xml version="1.0" encoding="utf-8"?>\n{svg}\n')
        return Path(path)
    # Lazy import (nilearn.plotting costs ~0.7 s); a bare Figure needs no pyplot state or
    # interactive backend, so nothing leaks between calls.
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from nilearn.plotting import plot_design_matrix

    # Margins computed from the longest column name (labels sit on top, rotated 60 deg,
    # 10 pt ~ 0.083 in per character) instead of a layout engine: the constrained layout
    # doubled the drawing time.
    longest = max(len(str(c)) for c in design.columns)
    width = min(max(2 + 0.25 * design.shape[1] + 0.05 * longest, 4), 30)
    height = 5 + 0.075 * longest
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=0.8 / width,
        right=1 - (0.2 + 0.045 * longest) / width,
        bottom=0.2 / height,
        top=1 - (0.3 + 0.075 * longest) / height,
    )
    # text as text (smaller, searchable SVG); fixed ids and no date: the same design gives
    # the same bytes, so a rerun's file and its checksum do not change
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "glmflow"}):
        plot_design_matrix(design, axes=figure.add_subplot())
        metadata = {"Date": None} if str(path).endswith((".svg", ".pdf")) else None
        figure.savefig(path, metadata=metadata)
    return Path(path)
