"""DerivativesSink: place one node's maps and design under their BIDS-derivatives names."""

from __future__ import annotations

import json

from nipype.interfaces.base import File, InputMultiObject, OutputMultiObject, traits

from glmflow.core.outputs import LEVELS, sidecar_path, stage_derivatives
from glmflow.interfaces.base import (
    StagedSink,
    StagedSinkInputSpec,
    StagedSinkOutputSpec,
    given,
    set_inputs,
)

# ComputeContrasts / FixedEffects output name -> BIDS stat label ("stat" is t or F).
_MAP_INPUTS = {
    "effect_files": "effect",
    "variance_files": "variance",
    "stat_files": None,
    "p_files": "p",
    "z_files": "z",
}
# Keys of a contrasts.json record that are node-local paths, not metadata.
_PATH_KEYS = {"effect", "variance", "stat", "p", "z", "skipped"}


class _DerivativesSinkInputSpec(StagedSinkInputSpec):
    level = traits.Enum(*LEVELS, mandatory=True, desc="analysis level; decides the entities kept")
    contrast_names = traits.List(
        traits.Str, mandatory=True, desc="contrast names, aligned with the *_files lists"
    )
    stat_types = traits.List(
        traits.Enum("t", "F"), desc="'t' or 'F' per contrast; names the stat_files maps"
    )
    effect_files = InputMultiObject(File(exists=True), desc="effect maps, one per contrast")
    variance_files = InputMultiObject(File(exists=True), desc="variance maps, one per contrast")
    stat_files = InputMultiObject(File(exists=True), desc="t or F maps, one per contrast")
    p_files = InputMultiObject(File(exists=True), desc="p-value maps, one per contrast")
    z_files = InputMultiObject(File(exists=True), desc="z maps, one per contrast")
    contrasts_json = File(
        exists=True,
        desc="ComputeContrasts' contrasts.json; each record (weights, dropped, dof) goes into "
        "the sidecars of its contrast",
    )
    design_files = InputMultiObject(
        File(exists=True), desc="design matrix .tsv and/or its .svg plot"
    )
    leave_out = traits.List(
        traits.Str, desc="contrasts whose maps another sink writes under the same names (a "
        "subject's only run without run-: the subject's sink)"
    )
    design_grid = traits.Bool(
        False, usedefault=True, desc="keep space/den in the design names (surface levels)"
    )
    r_square_file = File(exists=True, desc="run-level r-square map (FitFirstLevel)")
    residuals_file = File(exists=True, desc="run-level residuals (FitFirstLevel)")
    predicted_file = File(exists=True, desc="run-level predicted time series (FitFirstLevel)")


class _DerivativesSinkOutputSpec(StagedSinkOutputSpec):
    sidecar_files = OutputMultiObject(File(), desc="where the JSON sidecar of each map goes")


class DerivativesSink(StagedSink):
    """Write maps, sidecars and design files with glmflow.core.outputs.write_derivatives.

    Connect ComputeContrasts' ``contrast_names``, ``stat_types``, ``*_files`` and
    ``contrasts_json`` straight in. The node writes nothing into the output folder: it writes
    the sidecars and a manifest into its own folder, and the runner publishes every sink's
    manifest once the level has succeeded (a failed level leaves the output folder as it was).
    """

    input_spec = _DerivativesSinkInputSpec
    output_spec = _DerivativesSinkOutputSpec

    def _run_core(self, inputs, out_dir):
        names = list(inputs.contrast_names)
        metadata = json.loads(inputs.metadata)
        contrasts = {name: dict(info) for name, info in metadata.get("Contrasts", {}).items()}
        if given(inputs.contrasts_json):
            with open(inputs.contrasts_json) as f:
                for name, record in json.load(f).items():
                    info = {k: v for k, v in record.items() if k not in _PATH_KEYS}
                    contrasts[name] = {**contrasts.get(name, {}), **info}
        metadata["Contrasts"] = contrasts
        maps = []
        for trait, stat in _MAP_INPUTS.items():
            files = given(getattr(inputs, trait))
            if files is None:
                continue
            if stat is None:
                stats = list(given(inputs.stat_types, []))
            else:
                stats = [stat] * len(names)
            if not len(files) == len(stats) == len(names):
                raise ValueError(
                    f"DerivativesSink: {trait} has {len(files)} files, contrast_names "
                    f"{len(names)} names and stat_types {len(stats)} entries; connect lists "
                    "of one node (ComputeContrasts) so they stay aligned"
                )
            maps += [m for m in zip(files, names, stats, strict=True)
                     if m[1] not in given(inputs.leave_out, ())]  # fmt: skip
        written, staged, manifest = stage_derivatives(
            inputs.output_dir,
            stage_dir=out_dir,
            entities=json.loads(inputs.entities),
            level=inputs.level,
            maps=maps,
            metadata=metadata,
            design_files=given(inputs.design_files, ()),
            design_grid=inputs.design_grid,
            model_maps={
                name.removesuffix("_file"): path
                for name, path in set_inputs(
                    inputs, (f"{kind}_file" for kind in ("r_square", "residuals", "predicted"))
                ).items()
            },
        )
        sidecars = [str(sidecar_path(p)) for p in written[: len(maps)]]
        return {**self._staged(written, staged, manifest), "sidecar_files": sidecars}
