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

from nipype.interfaces.base import SimpleInterface, isdefined


def given(value: Any, default: Any = None) -> Any:
    """A Nipype input as core functions take it: its value, or ``default`` when unset."""
    return value if isdefined(value) else default


def set_inputs(inputs: Any, names: Iterable[str]) -> dict[str, Any]:
    """The inputs among ``names`` that are set (the core spec's defaults apply to the rest)."""
    values = {name: getattr(inputs, name) for name in names}
    return {name: value for name, value in values.items() if isdefined(value)}


def staged_outputs(written: Iterable[Path], staged: Iterable[Path], manifest: Path) -> dict:
    """A sink's outputs: the destinations, the staged sidecars and the publish manifest."""
    return {
        "out_files": [str(p) for p in written],
        "staged_sidecars": [str(p) for p in staged],
        "manifest_file": str(manifest),
    }


class CoreInterface(SimpleInterface):
    """A SimpleInterface whose run is one core call (:meth:`_run_core`)."""

    def _run_core(self, inputs: Any, out_dir: str) -> dict[str, Any]:
        """Call the core function on ``inputs``, writing into ``out_dir``; its outputs."""
        raise NotImplementedError

    def _run_interface(self, runtime):
        self._results.update(self._run_core(self.inputs, runtime.cwd))
        return runtime
