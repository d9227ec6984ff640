"""glm-express's ``RestingState``: one subject's connectivity, by glmflow's resting-state graph.

Each method is one :func:`glmflow.runners.rest.run_connectivity` call (cached: a second
call with the same atlas and options computes nothing) whose BIDS connectivity files
(``..._timeseries.tsv``, ``..._relmat.tsv``) are read back into the arrays glm-express
returns. The cleaning is glm-express's masker's: the task file's ``confound_regressors``
(plus fMRIPrep's motion outliers and CompCor columns, per the flags), standardised, no
detrending or filtering. Differences: every run is cleaned on its own (glm-express
concatenated the runs first), ``run="ALL"`` is the mean of the runs' matrices, the
maskers use the run's brain mask, and atlases are offline: the default (MSDL) is used
only where glm-express's ``pull_msdl_atlas`` (or nilearn) already saved it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.core.atlases import COORDINATE_ATLASES, PROBABILISTIC_ATLASES, VOLUME_ATLASES
from glmflow.core.bids import RunInputs, discover_runs
from glmflow.core.confounds.select import select_confounds
from glmflow.core.memo import memo_key
from glmflow.core.model.stages import ConfoundsSpec
from glmflow.core.publish import atomic_write_text
from glmflow.core.rest.files import (
    connectivity_path,
    read_matrix,
    read_timeseries,
    subject_entities,
)
from glmflow.core.rest.measures import MEASURE_LABELS
from glmflow.core.sidecars import sidecar_path
from glmflow.errors import DatasetError, ModelSpecError
from glmflow.glm_express import rest_plots
from glmflow.glm_express.options import FLAG_PATTERNS
from glmflow.glm_express.project import Project, run_container, unsupported
from glmflow.runners.rest import ConnectivityResult, run_connectivity

PathLike = str | os.PathLike
METHODS = ("maps", "labels")
#: Where nilearn's ``fetch_atlas_msdl`` puts the MSDL atlas, under its data folder.
MSDL_FILES = ("msdl_atlas/MSDL_rois/msdl_rois.nii", "msdl_atlas/MSDL_rois/msdl_rois_labels.csv")


class RestingState:
    """One subject's resting-state connectivity, with glm-express 2.0.3's arguments.

    ``**glmflow`` as :class:`glmflow.glm_express.Subject`. ``run``: a ``run-`` label,
    ``1`` for a lone run without one, or ``"ALL"``. ``method="maps"`` (glm-express's
    default): nilearn's NiftiMapsMasker on a 4-D probabilistic atlas, ``atlas_to_use`` a
    file, ``harvard_oxford`` or ``juelich`` (offline probability maps), or ``None``: the
    MSDL atlas where glm-express saved it (refused in one line when it is not on this
    machine). ``method="labels"``: a 3-D labels image or an offline atlas name
    (``harvard_oxford``, ``aal``, ``juelich``, or the coordinate atlases ``power_2011``,
    ``dosenbach_2010``, ``seitzman_2018``). ``labels_to_use``: the names of the labels
    1..n (maps: of the volumes), in order.
    """

    def __init__(
        self, sub_id: str | int, task: str = "rest", bids_root: PathLike = "./bids",
        suppress: bool = False, template_space: str = "MNI152NLin2009", **glmflow: Any,
    ) -> None:  # fmt: skip
        self.sub_id = str(sub_id).removeprefix("sub-")
        self.task = task
        self.bids_root = str(bids_root)
        self.template_space = template_space
        self._project = Project.open(bids_root, **glmflow)
        self._project.check_labels(task=task, subject=self.sub_id)
        self._space = self._project.space(template_space, task)
        self.confound_regressor_names = self._project.confound_names(task)
        self._runs = discover_runs(
            self._project.bids_root, derivatives=self._project.derivatives, space=self._space,
            tasks=[task], participant_label=[self.sub_id], need_events=False,
            database_dir=self._project.work_dir / "bids_db",
        )  # fmt: skip
        self.preprocessed_runs = [run.bold for run in self._runs]
        self.bids_container = run_container(self._runs)
        self.first_level_output = self._project.glmflow_dir / f"sub-{self.sub_id}"
        self.result: ConnectivityResult | None = None
        if not suppress:
            print(str(self))

    def __str__(self) -> str:
        return json.dumps({
            "Subject ID": self.sub_id, "Task": self.task,
            "# of Resting State Runs": len(self.preprocessed_runs),
            "Confound Regressors": self.confound_regressor_names,
        }, indent=4)  # fmt: skip

    def pull_msdl_atlas(self) -> tuple[str, list[str]]:
        """The MSDL atlas' maps file and labels, where glm-express (its
        ``derivatives/nilearn_masks``) or nilearn saved them; refused (one line) elsewhere:
        glmflow downloads nothing."""
        from nilearn.datasets import get_data_dirs

        folders = [Path(self.bids_root, "derivatives", "nilearn_masks"),
                   *map(Path, get_data_dirs())]  # fmt: skip
        for folder in folders:
            maps, table = (folder / name for name in MSDL_FILES)
            if maps.is_file() and table.is_file():
                return str(maps), [n.strip() for n in pd.read_csv(table)["name"]]
        raise unsupported(
            "atlas_to_use=None (glm-express's default: the MSDL atlas, a download by "
            f"nilearn's fetch_atlas_msdl; no {MSDL_FILES[0]} in "
            f"{folders[0]} or nilearn's data folders, and glmflow works offline)",
            "pass atlas_to_use= a 4-D probabilistic atlas file (method='maps'), "
            + " or ".join(PROBABILISTIC_ATLASES)
            + " (offline probability maps, method='maps'),"
            " or method='labels' with a 3-D labels image or one of "
            + ", ".join([*VOLUME_ATLASES, *COORDINATE_ATLASES]),
        )

    # ---- the graph
    def _connectivity(self, measure: str, atlas_to_use, labels_to_use, method, standardize,
                      flags: dict[str, bool]) -> ConnectivityResult:  # fmt: skip
        atlas = self._atlas(atlas_to_use, labels_to_use, method)
        model = {"connectivity": {
            "name": self.task, "task": self.task, "atlas": atlas, "measures": [measure],
            "confounds": self._confounds(flags),
            "standardize": "zscore_sample" if standardize else None, "detrend": False,
            "high_pass": None, "low_pass": None, "fisher_z": False,
        }}  # fmt: skip
        self.result = run_connectivity(
            self._project.bids_root, self._project.output_dir, model,
            participant_label=[self.sub_id], derivatives=self._project.derivatives,
            space=self._space, **{"progress": False, **self._project.options},
        )  # fmt: skip
        return self.result

    def _confounds(self, flags: dict[str, bool]) -> dict[str, Any]:
        """The model's confounds: the task file's, plus the flags' optional columns."""
        optional = [p for p, flag in FLAG_PATTERNS.items() if flags.get(flag, True)]
        return {"columns": self.confound_regressor_names, "optional_columns": optional}

    def load_confounds(self, run="ALL") -> pd.DataFrame:
        """The confounds glmflow regresses out of the run (every method's default flags):
        one row per volume; ``"ALL"``: the runs' tables stacked, with a ``run`` column."""
        spec = ConfoundsSpec.from_dict(self._confounds({}), what="'confounds'")
        runs = self._runs if run == "ALL" else [self._run(run)]
        tables = [select_confounds(r.confounds, spec, bold_file=r.bold)[0] for r in runs]
        if run != "ALL":
            return tables[0]
        return pd.concat([t.assign(run=r.run) for t, r in zip(tables, runs, strict=True)],
                         ignore_index=True)  # fmt: skip

    def _atlas(self, atlas_to_use, labels_to_use, method) -> dict[str, Any]:
        if method not in METHODS:
            raise ModelSpecError(f"method must be one of {', '.join(METHODS)}. Got {method!r}")
        if atlas_to_use is None and method == "labels":
            raise unsupported(
                "method='labels' with atlas_to_use=None (glm-express's MSDL atlas is maps)",
                "pass atlas_to_use= a 3-D labels image or one of "
                + ", ".join([*VOLUME_ATLASES, *COORDINATE_ATLASES]),
            )
        if atlas_to_use is None:
            atlas_to_use, labels_to_use = self.pull_msdl_atlas()
        named = isinstance(atlas_to_use, str) and not Path(atlas_to_use).is_file()
        if named and method == "maps" and atlas_to_use in PROBABILISTIC_ATLASES:
            return {"maps": atlas_to_use}
        if named and method == "labels" and atlas_to_use in VOLUME_ATLASES:
            return {"name": atlas_to_use}
        if named and method == "labels" and atlas_to_use in COORDINATE_ATLASES:
            return {"coordinates": atlas_to_use}
        if named and atlas_to_use in [*VOLUME_ATLASES, *COORDINATE_ATLASES]:
            raise unsupported(
                f"method='maps' with atlas_to_use={atlas_to_use!r} (a labels atlas)",
                "pass method='labels', or a probabilistic atlas ("
                + ", ".join(PROBABILISTIC_ATLASES)
                + " or a 4-D file)",
            )
        path = Path(atlas_to_use).absolute()
        if not path.is_file():
            raise DatasetError(
                f"atlas_to_use {atlas_to_use!r} is neither an offline atlas ("
                f"{', '.join([*VOLUME_ATLASES, *COORDINATE_ATLASES])}) nor a file"
            )
        shape = nib.load(path).shape
        if method == "labels" and len(shape) != 3:
            raise unsupported(
                f"method='labels' with atlas_to_use {path.name} (a 4-D probabilistic atlas)",
                "pass method='maps' (nilearn's NiftiMapsMasker), or a 3-D labels image",
            )
        if method == "maps" and len(shape) != 4:
            raise unsupported(
                f"method='maps' with atlas_to_use {path.name} (a {len(shape)}-D image, not "
                "one map per region)",
                "pass method='labels' for a labels image, or a 4-D probabilistic atlas",
            )
        key = "maps_img" if method == "maps" else "labels_img"
        atlas = {key: str(path)}
        if labels_to_use is not None:
            values = range(1, shape[3] + 1) if method == "maps" else _label_values(path)
            noun = "maps" if method == "maps" else "labels"
            atlas["labels_tsv"] = str(self._labels_tsv(path, values, list(labels_to_use), noun))
        return atlas

    def _labels_tsv(self, image: Path, values, labels: list[str], noun: str) -> Path:
        """``labels_to_use`` as the labels TSV glmflow reads (a leading background dropped)."""
        values = list(values)
        if len(labels) == len(values) + 1:
            labels = labels[1:]  # nilearn's label lists start with the background
        if len(labels) != len(values):
            raise DatasetError(
                f"labels_to_use has {len(labels)} names for the {len(values)} {noun} of "
                f"{image}; give one name per label (in the order of their values)"
            )
        text = "index\tname\n" + "".join(
            f"{v}\t{n}\n" for v, n in zip(values, labels, strict=True)
        )
        path = self._project.work_dir / "glm_express" / f"labels_{memo_key(text)[:12]}.tsv"
        if not path.is_file():
            atomic_write_text(path, text)
        return path

    def _file(self, run, measure: str | None, suffix: str) -> Path:
        """The run's (or, for ``"ALL"``, the subject's) file of the last call."""
        spec = self.result.spec
        where = {"suffix": suffix, "seg": spec.atlas.seg, "desc": spec.name}
        if measure:
            where["meas"] = MEASURE_LABELS[measure]
        out = self.result.output_dir
        if run == "ALL":
            ents = subject_entities([r.entities for r in self._runs])
            path = connectivity_path(out, ents, level="subject", **where)
        else:
            path = connectivity_path(out, self._run(run).entities, level="run", **where)
        if path not in self.result.files:
            raise self._no_run(run)
        return path

    def _run(self, run) -> RunInputs:
        """The run glm-express's ``run`` means: its ``run-`` label (1 = a lone run without)."""
        for r in self._runs:
            if r.run is not None and _same_label(r.run, str(run)):
                return r
        if len(self._runs) == 1 and self._runs[0].run is None and str(run) == "1":
            return self._runs[0]
        raise self._no_run(run)

    def _no_run(self, run) -> DatasetError:
        runs = ", ".join(str(r.run or 1) for r in self._runs)
        return DatasetError(f"Run {run!r} not found for sub-{self.sub_id} (runs: {runs}, ALL)")

    # ---- glm-express's methods
    def extract_time_series(
        self, run="ALL", method="maps", atlas_to_use=None, labels_to_use=None,
        standardize=True, verbose=True, regress_motion_outliers=True, a_comp_cor=True,
        t_comp_cor=True,
    ) -> np.ndarray:  # fmt: skip
        """Cleaned parcel time series (kept volumes x parcels); ``"ALL"``: the runs stacked."""
        flags = {"motion_outliers": regress_motion_outliers, "a_comp_cor": a_comp_cor,
                 "t_comp_cor": t_comp_cor}  # fmt: skip
        self._connectivity("correlation", atlas_to_use, labels_to_use, method, standardize, flags)
        runs = [run] if run != "ALL" else [r.run or 1 for r in self._runs]
        return np.vstack([read_timeseries(self._file(r, None, "timeseries")) for r in runs])

    def matrix_from_masker(
        self, run="ALL", method="maps", atlas_to_use=None, labels_to_use=None,
        standardize=True, save_matrix_output=False, save_plots=False, show_plots=True,
        return_array=True, verbose=True, a_comp_cor=True, t_comp_cor=True,
        lower_triangle=False, custom_output_name=False,
    ) -> np.ndarray | None:  # fmt: skip
        """The correlation matrix of the run (``"ALL"``: the mean of the runs')."""
        flags = {"a_comp_cor": a_comp_cor, "t_comp_cor": t_comp_cor}
        self._connectivity("correlation", atlas_to_use, labels_to_use, method, standardize, flags)
        path = self._file(run, "correlation", "relmat")
        matrix = read_matrix(path)
        if save_plots or show_plots:
            title = f"sub-{self.sub_id}_" + ("aggregated-matrix" if run == "ALL" else f"run-{run}")
            self._plots(matrix, path, title, save_plots, show_plots, lower_triangle)
        return matrix if return_array else None

    def connectome_covariance(
        self, run="ALL", method="maps", atlas_to_use=None, labels_to_use=None,
        standardize=True, save_matrix_output=False, save_plots=False, show_plots=True,
        return_array=True, verbose=True, sparse_inverse=True, a_comp_cor=True,
        t_comp_cor=True, lower_triangle=False, custom_output_name=False,
    ) -> np.ndarray | None:  # fmt: skip
        """``-precision`` of the sparse inverse covariance (GraphicalLassoCV), as glm-express;
        ``sparse_inverse=False``: the covariance (nilearn's Ledoit-Wolf estimate)."""
        measure = "sparse inverse covariance" if sparse_inverse else "covariance"
        flags = {"a_comp_cor": a_comp_cor, "t_comp_cor": t_comp_cor}
        self._connectivity(measure, atlas_to_use, labels_to_use, method, standardize, flags)
        path = self._file(run, measure, "relmat")
        matrix = read_matrix(path)
        matrix = -matrix if sparse_inverse else matrix
        if save_plots or show_plots:
            title = f"sub-{self.sub_id}_{'aggregated' if run == 'ALL' else f'run-{run}'}_" + (
                "sparse-inverse-covariance" if sparse_inverse else "covariance")  # fmt: skip
            self._plots(matrix, path, title, save_plots, show_plots, lower_triangle)
        return matrix if return_array else None

    def _plots(self, matrix, path, title, save, show, lower_triangle) -> None:
        meta = json.loads(sidecar_path(path).read_text())
        labels = meta.get("NodeLabels")
        self.plot_correlation_matrix(matrix, labels, custom_title=title, save_local=save,
                                     show_plot=show, lower_triangle=lower_triangle)  # fmt: skip
        coords = rest_plots.node_coordinates(self.result.spec, meta, self._runs[0].bold)
        rest_plots.connectome(matrix, coords, title, self._figures() if save else None, show)

    def _figures(self) -> Path:
        folder = self.first_level_output / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def plot_correlation_matrix(
        self, matrix, labels, run=None, vmin=-1.0, vmax=1.0, save_local=True,
        show_plot=False, override_range=False, custom_title=None, lower_triangle=False,
    ) -> None:  # fmt: skip
        """The matrix as a heat map (diagonal shown as 0, the caller's matrix untouched)."""
        if run is None and custom_title is None:
            raise ModelSpecError("plot_correlation_matrix needs a run number or custom_title")
        title = custom_title or f"sub-{self.sub_id}_" + (
            "aggregated-matrix" if run == "ALL" else f"run-{run}")  # fmt: skip
        limits = (None, None) if override_range else (vmin, vmax)
        target = self._figures() / f"{title}.png" if save_local else None
        rest_plots.matrix(matrix, labels, title, limits, lower_triangle, target, show_plot)

    def plot_connectomes(
        self, matrix, atlas_map, run=None, save_local=False, show_plot=False,
        display_mode="lyrz", custom_title=None, custom_output_name=None,
    ) -> None:  # fmt: skip
        """The matrix as a connectome on a glass brain, nodes at ``atlas_map``'s parcels."""
        if run is None and custom_title is None:
            raise ModelSpecError("plot_connectomes needs a run number or custom_title")
        title = custom_title or f"sub-{self.sub_id}_run-{run}"
        coords = rest_plots.parcel_coordinates(atlas_map)
        folder = self._figures() if save_local else None
        rest_plots.connectome(matrix, coords, custom_output_name or title, folder, show_plot,
                              display_mode=display_mode)  # fmt: skip

    def load_correlation_matrix(self, array_id: str | None = None) -> np.ndarray:
        """A matrix this subject's calls wrote (``array_id``: part of its file name)."""
        found = sorted(self.first_level_output.glob(f"**/*task-{self.task}*_relmat.tsv"))
        if array_id is not None:
            found = [p for p in found if array_id in p.name]
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DatasetError(
                f"array_id {array_id!r} matches {len(found)} matrices of sub-{self.sub_id} "
                f"in {self.first_level_output} ({names}); pass a part of one file name"
            )
        return read_matrix(found[0])


def _label_values(image: Path) -> list[int]:
    return [int(v) for v in np.unique(np.asanyarray(nib.load(image).dataobj)) if v != 0]


def _same_label(label: str, run: str) -> bool:
    return label == run or (label.isdigit() and run.isdigit() and int(label) == int(run))


__all__ = ["RestingState"]
