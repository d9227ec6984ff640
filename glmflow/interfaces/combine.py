"""CombineRuns: fixed effects of every t contrast across the runs of one subject."""

from __future__ import annotations

from typing import get_args

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    traits,
)

from glmflow.core.combine import combine_runs
from glmflow.core.model import RunCombination
from glmflow.interfaces.base import CoreInterface, given
from glmflow.interfaces.maps import MapListsOutputSpec


class _CombineRunsInputSpec(BaseInterfaceInputSpec):
    index_files = InputMultiObject(
        File(exists=True),
        mandatory=True,
        desc="contrasts.json of each run (ComputeContrasts output)",
    )
    names = traits.List(traits.Str, mandatory=True, desc="t contrasts to combine, in order")
    mask_files = InputMultiObject(
        File(exists=True), mandatory=True, desc="each run's brain mask, aligned with index_files"
    )
    run_labels = traits.List(traits.Str, desc="labels of the runs for the index (e.g. run-1)")
    memo_dir = traits.Str(
        nohash=True, desc="folder remembering each contrast's combination (glmflow.core.memo)"
    )
    run_combination = traits.Enum(
        *get_args(RunCombination),
        usedefault=True,
        desc="'equal' (nilearn's multi-run FirstLevelModel) or 'precision' (inverse-variance "
        "weights): the model's subject.run_combination",
    )


class _CombineRunsOutputSpec(MapListsOutputSpec):
    contrasts_json = File(exists=True, desc="subject-level index: runs used, dof, dropped terms")
    mask_file = File(exists=True, desc="intersection of the runs' masks: where maps have data")


class CombineRuns(CoreInterface):
    """Combine runs with :func:`glmflow.core.combine.combine_runs`."""

    input_spec = _CombineRunsInputSpec
    output_spec = _CombineRunsOutputSpec

    def _run_core(self, inputs, out_dir):
        return combine_runs(
            inputs.index_files,
            names=inputs.names,
            mask_files=inputs.mask_files,
            out_dir=out_dir,
            run_labels=given(inputs.run_labels),
            run_combination=inputs.run_combination,
            memo_dir=given(inputs.memo_dir),
        )
