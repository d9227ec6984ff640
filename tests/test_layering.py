"""The architecture is one-way: core < interfaces < workflows < cli."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "glmflow"
LAYERS = ["core", "interfaces", "workflows", "cli"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_lower_layers(layer):
    higher = LAYERS[LAYERS.index(layer) + 1 :]
    offenders = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for name in _imports(path):
            if any(name.startswith(f"glmflow.{h}") for h in higher):
                offenders.append(f"{path.relative_to(PKG)} imports {name}")
            if layer == "core" and name.split(".")[0] == "nipype":
                offenders.append(f"{path.relative_to(PKG)} imports {name} (core is Nipype-free)")
    assert offenders == []


def test_core_and_data_do_not_import_nipype_at_runtime():
    for sub in ("core", "data"):
        for path in sorted((PKG / sub).rglob("*.py")):
            assert not any(n.split(".")[0] == "nipype" for n in _imports(path)), path
