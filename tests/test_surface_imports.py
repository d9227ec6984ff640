"""The surface modules use their neighbours' public API only (review s18 items 12, 13): no
private name imported from another module, and the smoothing override is the participant
runner's one function, not a copy."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1] / "glmflow"
SURFACE_MODULES = sorted(
    [*(ROOT / "core" / "surface").glob("*.py"), ROOT / "data" / "surface.py",
     ROOT / "workflows" / "surface.py", ROOT / "interfaces" / "surface.py",
     ROOT / "interfaces" / "surface_group.py", ROOT / "runners" / "surface.py",
     ROOT / "interfaces" / "run_design.py"]
)  # fmt: skip


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("glmflow"):
            yield from ((node.module, alias.name) for alias in node.names)


@pytest.mark.parametrize("path", SURFACE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported(path):
    private = [
        f"{module}.{name}"
        for module, name in _imports(path)
        if name.startswith("_")
        and not isinstance(getattr(importlib.import_module(module), name), ModuleType)
    ]
    assert private == []


def test_surface_runner_overrides_smoothing_with_the_participant_runners_function():
    from glmflow.runners import participant, surface

    assert ("glmflow.runners.participant", "with_smoothing") in set(
        _imports(ROOT / "runners" / "surface.py")
    )
    assert "dataclasses.replace(spec.glm" not in inspect.getsource(surface.plan_surface_level)
    assert surface.with_smoothing is participant.with_smoothing
