"""BIDS Stats Models: a later node's unit fitted, and a unit's maps staged under FitLins names."""

from __future__ import annotations

import json

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    TraitedSpec,
    traits,
)

from glmflow.core.bsm.higher import fit_unit_files
from glmflow.core.bsm.outputs import stage_unit_maps
from glmflow.interfaces.base import CoreInterface, StagedSink, StagedSinkInputSpec, given


class _FitBsmUnitInputSpec(BaseInterfaceInputSpec):
    index_files = InputMultiObject(
        File(exists=True),
        mandatory=True,
        desc="contrasts.json of the units below (run node: ComputeContrasts; later: FitBsmUnit)",
    )
    rows = traits.Str(
        mandatory=True,
        desc="JSON list, one per design row: {source: position in index_files, contrast, "
        "mask: a run's brain mask or null} (glmflow.core.bsm.higher.rows_json)",
    )
    design_file = File(exists=True, mandatory=True, desc="the unit's X as a TSV (pybids')")
    contrasts = traits.Str(
        mandatory=True, desc='JSON: {name: {"test": t|F|FEMA, "weights": row or rows over X}}'
    )
    method = traits.Enum("ols", "fixed", mandatory=True, desc="'fixed' for meta/FEMA, else 'ols'")
    unit = traits.Str("the unit", usedefault=True, nohash=True, desc="named in errors")
    n_jobs = traits.Int(1, usedefault=True, nohash=True, desc="parallel jobs (nilearn)")


class _FitBsmUnitOutputSpec(TraitedSpec):
    contrasts_json = File(
        exists=True,
        desc="contrasts.json: {name: {effect, variance, stat, p, z, stat_type, test, weights, "
        "columns, dof, mask}}",
    )
    mask_file = File(exists=True, desc="the intersection of the inputs' masks")
    z_files = OutputMultiObject(File(exists=True), desc="z map of each contrast, in order")
    input_effect_files = OutputMultiObject(
        File(exists=True), desc="the effect maps fitted, one per design row (permutation)"
    )


class FitBsmUnit(CoreInterface):
    """Fit one unit of a later node (glmflow.core.bsm.higher.fit_unit_files)."""

    input_spec = _FitBsmUnitInputSpec
    output_spec = _FitBsmUnitOutputSpec

    def _run_core(self, inputs, out_dir):
        return fit_unit_files(
            list(inputs.index_files),
            inputs.rows,
            inputs.design_file,
            inputs.contrasts,
            method=inputs.method,
            out_dir=out_dir,
            unit=inputs.unit,
            n_jobs=inputs.n_jobs,
        )


class _StageBsmMapsInputSpec(StagedSinkInputSpec):
    node = traits.Str(mandatory=True, desc="the BSM node's name (node-<Name>/)")
    index_file = File(exists=True, mandatory=True, desc="the unit's contrasts.json")
    outputs = traits.Str(
        mandatory=True, desc="JSON: contrast name -> the entities naming its maps"
    )
    design_file = File(exists=True, desc="a run's design TSV, published beside its maps")


class StageBsmMaps(StagedSink):
    """Stage a unit's maps and sidecars (glmflow.core.bsm.outputs.stage_unit_maps)."""

    input_spec = _StageBsmMapsInputSpec

    def _run_core(self, inputs, out_dir):
        entities = json.loads(inputs.entities)
        design = given(inputs.design_file)
        written, staged, manifest = stage_unit_maps(
            inputs.output_dir,
            stage_dir=out_dir,
            node=inputs.node,
            index_file=inputs.index_file,
            outputs=json.loads(inputs.outputs),
            metadata=json.loads(inputs.metadata),
            design=None if design is None else (design, entities),
        )
        return self._staged(written, staged, manifest)
