"""The architecture is one-way: core < interfaces < workflows < runners < cli.

``glmflow.execution`` sits beside the layers: it imports only core (and Nipype), and only
the runners and the CLI import it. ``glmflow.glm_express`` (glm-express's objects) is an
API beside the CLI: it imports runners, workflows and core, and nothing but the CLI may
import it. ``glmflow.errors`` and the package root are leaves every layer may use.
"""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "glmflow"
LAYERS = ["core", "interfaces", "workflows", "runners", "cli"]
# the glmflow packages each package may import (besides itself, glmflow.errors, glmflow)
ALLOWED = {
    "core": set(),
    "data": set(),
    "interfaces": {"core"},
    "workflows": {"core", "interfaces"},
    "execution": {"core"},
    "runners": {"core", "interfaces", "workflows", "execution"},
    "cli": {"core", "data", "interfaces", "workflows", "execution", "runners"},
    "glm_express": {"core", "workflows", "runners"},
}
# old import paths kept as thin re-exports (none left: workflows/ holds only factories)
TRANSITIONAL: set[str] = set()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _offenders(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    offenders = []
    for path in sorted((PKG / package).rglob("*.py")):
        relative = str(path.relative_to(PKG))
        for name in sorted(_imports(path)):
            parts = name.split(".")
            if parts[0] == "glmflow" and len(parts) > 1 and parts[1] != "errors":
                if parts[1] not in allowed and relative not in TRANSITIONAL:
                    offenders.append(f"{relative} imports {name}")
            if package == "core" and parts[0] == "nipype":
                offenders.append(f"{relative} imports {name} (core is Nipype-free)")
    return offenders


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package):
    assert _offenders(package) == []


def test_every_package_has_a_rule():
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED)


def test_layers_are_one_way():
    for index, layer in enumerate(LAYERS):
        assert not ALLOWED[layer] & set(LAYERS[index + 1 :]), layer
    assert ALLOWED["execution"] == {"core"}
    assert {p for p, allowed in ALLOWED.items() if "execution" in allowed} == {"runners", "cli"}
    # glm-express's objects sit at the API level, beside the CLI
    assert not ALLOWED["glm_express"] & {"cli", "execution"}
    assert {p for p, allowed in ALLOWED.items() if "glm_express" in allowed} <= {"cli"}


def test_the_rule_catches_an_offender(tmp_path, monkeypatch):
    (tmp_path / "execution").mkdir()
    (tmp_path / "execution" / "bad.py").write_text("from glmflow.workflows import base\n")
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path)
    assert _offenders("execution") == ["execution/bad.py imports glmflow.workflows"]


def test_core_and_data_do_not_import_nipype_at_runtime():
    for sub in ("core", "data"):
        for path in sorted((PKG / sub).rglob("*.py")):
            assert not any(n.split(".")[0] == "nipype" for n in _imports(path)), path
