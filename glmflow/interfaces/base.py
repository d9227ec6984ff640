"""What every glmflow interface shares: one core call per run, unset inputs as None.

The house rule for an interface (``docs/architecture.md``): ``_run_interface`` hands the
inputs to one :mod:`glmflow.core` function that writes into the node's folder and returns
the output traits. :class:`CoreInterface` is that rule, written once; a subclass says only
which core call it makes (:meth:`CoreInterface._run_core`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)


def given(value: Any, default: Any = None) -> Any:
    """A Nipype input as core functions take it: its value, or ``default`` when unset."""
    return value if isdefined(value) else default


def set_inputs(inputs: Any, names: Iterable[str]) -> dict[str, Any]:
    """The inputs among ``names`` that are set (the core spec's defaults apply to the rest)."""
    values = {name: getattr(inputs, name) for name in names}
    return {name: value for name, value in values.items() if isdefined(value)}


class StagedSinkInputSpec(BaseInterfaceInputSpec):
    """What every sink takes: the output folder, the entities naming its files, metadata."""

    output_dir = traits.Str(mandatory=True, desc="root of the derivatives dataset to write")
    entities = traits.Str(
        mandatory=True,
        desc="JSON object of pybids entity names -> labels shared by the inputs "
        "(RunInputs.entities at run level)",
    )
    metadata = traits.Str(
        "{}",
        usedefault=True,
        desc="JSON object written into every sidecar (model name, source file, spec, inputs); "
        "a 'Contrasts' object (name -> info) is split per contrast",
    )


class StagedSinkOutputSpec(TraitedSpec):
    """What a sink stages: its destinations, staged sidecars and manifest."""

    out_files = OutputMultiObject(
        File(), desc="files written once the level has succeeded (sidecars excluded)"
    )
    staged_sidecars = OutputMultiObject(
        File(exists=True), desc="sidecars staged in the node folder until published"
    )
    manifest_file = File(
        exists=True,
        desc="manifest.json: [source, destination] pairs that glmflow.core.publish.publish "
        "copies into the output folder once the whole level has succeeded",
    )


class CoreInterface(SimpleInterface):
    """A SimpleInterface whose run is one core call (:meth:`_run_core`)."""

    def _run_core(self, inputs: Any, out_dir: str) -> dict[str, Any]:
        """Call the core function on ``inputs``, writing into ``out_dir``; its outputs."""
        raise NotImplementedError

    def _run_interface(self, runtime):
        self._results.update(self._run_core(self.inputs, runtime.cwd))
        return runtime


class StagedSink(CoreInterface):
    """A sink: its files are staged in the node folder, published once the level succeeds."""

    output_spec = StagedSinkOutputSpec

    @staticmethod
    def _staged(written: Iterable[Path], staged: Iterable[Path], manifest: Path) -> dict:
        """The outputs: the destinations, the staged sidecars and the publish manifest."""
        return {
            "out_files": [str(p) for p in written],
            "staged_sidecars": [str(p) for p in staged],
            "manifest_file": str(manifest),
        }
