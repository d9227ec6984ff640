"""Surface nodes: read one part (a GIFTI hemisphere or a CIFTI file), its contrasts, runs
combined. The fit itself is :class:`glmflow.interfaces.glm.FitFirstLevel`, as for volumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    TraitedSpec,
    traits,
)

from glmflow.core.formula import MissingTerms
from glmflow.core.images import write_masked
from glmflow.core.model import RunCombination
from glmflow.core.surface.io import write_geometry
from glmflow.core.surface.maps import combine_surface_runs, compute_surface_contrast_maps
from glmflow.core.surface.smooth import read_smoothed_bold
from glmflow.errors import ContrastError
from glmflow.interfaces.base import CoreInterface, given
from glmflow.interfaces.maps import MapListsOutputSpec


class _ReadSurfaceBoldInputSpec(BaseInterfaceInputSpec):
    bold_file = File(
        exists=True, mandatory=True, desc="one hemisphere's .func.gii or a .dtseries.nii"
    )
    smoothing_fwhm = traits.Float(
        desc="FWHM (mm) of the smoothing on the part's mesh (glmflow.core.surface.smooth)"
    )


class _ReadSurfaceBoldOutputSpec(TraitedSpec):
    data_file = File(exists=True, desc="bold_masked.npy: (n_volumes, n_kept_vertices)")
    geometry_file = File(exists=True, desc="geometry.json: the part and its left-out vertices")
    record_file = File(exists=True, desc="bold_record.json: vertices and those left out")


class ReadSurfaceBold(CoreInterface):
    """Read (and smooth) one part with glmflow.core.surface.smooth.read_smoothed_bold into
    runtime.cwd."""

    input_spec = _ReadSurfaceBoldInputSpec
    output_spec = _ReadSurfaceBoldOutputSpec

    def _run_core(self, inputs, out_dir):
        bold = read_smoothed_bold(inputs.bold_file, smoothing_fwhm=given(inputs.smoothing_fwhm))
        record = Path(out_dir) / "bold_record.json"
        record.write_text(json.dumps(bold.record(), sort_keys=True))
        return {
            "data_file": str(write_masked(bold.data, out_dir)),
            "geometry_file": str(write_geometry(bold, out_dir)),
            "record_file": str(record),
        }


class _ComputeSurfaceContrastsInputSpec(BaseInterfaceInputSpec):
    fit_file = File(exists=True, mandatory=True, desc="fit.npz from FitFirstLevel")
    geometry_file = File(exists=True, mandatory=True, desc="ReadSurfaceBold's geometry.json")
    contrasts = traits.Str(
        mandatory=True,
        desc="JSON array of contrast objects {name, expressions | weights, "
        "stat_type}, hashed by value",
    )
    missing_conditions = traits.Enum(
        *get_args(MissingTerms),
        usedefault=True,
        desc="'error' or 'drop' for a contrast naming a column absent from this design",
    )
    run_record_file = File(exists=True, desc="JSON added to every contrast's record")


class _ComputeSurfaceContrastsOutputSpec(MapListsOutputSpec):
    dof = traits.Float(desc="residual degrees of freedom of the fit")
    contrasts_json = File(exists=True, desc="contrasts.json, as ComputeContrasts writes it")


class ComputeSurfaceContrasts(CoreInterface):
    """Every contrast's maps with glmflow.core.surface.maps.compute_surface_contrast_maps."""

    input_spec = _ComputeSurfaceContrastsInputSpec
    output_spec = _ComputeSurfaceContrastsOutputSpec

    def _run_core(self, inputs, out_dir):
        contrasts = json.loads(inputs.contrasts)
        if not isinstance(contrasts, list):
            raise ContrastError("contrasts input must be a JSON array of contrast objects")
        record = None
        if given(inputs.run_record_file):
            record = json.loads(Path(inputs.run_record_file).read_text())
        return compute_surface_contrast_maps(
            inputs.fit_file,
            inputs.geometry_file,
            contrasts,
            out_dir=out_dir,
            missing=inputs.missing_conditions,
            run_record=record,
        )


class _CombineSurfaceRunsInputSpec(BaseInterfaceInputSpec):
    index_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="contrasts.json of each run's part"
    )
    geometry_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="each run's geometry.json, aligned"
    )
    names = traits.List(traits.Str, mandatory=True, desc="t contrasts to combine, in order")
    run_labels = traits.List(traits.Str, desc="labels of the runs for the index")
    run_combination = traits.Enum(
        *get_args(RunCombination), usedefault=True, desc="'equal' or 'precision' weights"
    )


class _CombineSurfaceRunsOutputSpec(MapListsOutputSpec):
    contrasts_json = File(exists=True, desc="subject-level index: runs used, dof, dropped")
    geometry_file = File(exists=True, desc="vertices every run kept")


class CombineSurfaceRuns(CoreInterface):
    """Fixed effects across runs with glmflow.core.surface.maps.combine_surface_runs."""

    input_spec = _CombineSurfaceRunsInputSpec
    output_spec = _CombineSurfaceRunsOutputSpec

    def _run_core(self, inputs, out_dir):
        return combine_surface_runs(
            inputs.index_files,
            names=inputs.names,
            geometry_files=inputs.geometry_files,
            out_dir=out_dir,
            run_labels=given(inputs.run_labels),
            run_combination=inputs.run_combination,
        )
