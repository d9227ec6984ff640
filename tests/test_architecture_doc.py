"""docs/architecture.md stays true: every module of glmflow/ named once, every name it cites real.

Its "Modules" list must name each ``.py`` file under ``glmflow/`` exactly once and nothing
else; any ``path.py`` it cites must exist, and any ``path.py::name`` must be a function,
class or constant defined at the top of that module (``Class.method`` for a method), so
that a newcomer reaches every rule in one hop.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "glmflow"
DOC = ROOT / "docs" / "architecture.md"
LISTED = re.compile(r"^- `([\w/]+\.py)`", re.MULTILINE)
CITED = re.compile(r"`([\w/]+\.py)(?:::([\w.]+))?`")


def _modules() -> set[str]:
    return {str(p.relative_to(PKG)) for p in PKG.rglob("*.py")}


def _listed(text: str) -> list[str]:
    return LISTED.findall(text.split("\n## Modules\n", 1)[1])


def _defined(tree: ast.Module) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def _problems(text: str, pkg: Path) -> list[str]:
    problems = []
    for path, name in CITED.findall(text):
        source = ROOT / path if path.startswith("tests/") else pkg / path
        if not source.is_file():
            problems.append(f"{path} does not exist")
            continue
        if not name:
            continue
        head, _, method = name.partition(".")
        found = _defined(ast.parse(source.read_text())).get(head)
        if found is None:
            problems.append(f"{path} defines no {head}")
        elif method and not any(
            getattr(item, "name", None) == method for item in getattr(found, "body", [])
        ):
            problems.append(f"{path}: {head} has no {method}")
    return problems


def test_every_module_is_listed_once():
    listed = _listed(DOC.read_text())
    twice = sorted({m for m in listed if listed.count(m) > 1})
    assert twice == []
    assert sorted(_modules() - set(listed)) == [], "modules the doc does not name"
    assert sorted(set(listed) - _modules()) == [], "modules the doc names that do not exist"


def test_every_cited_name_exists():
    assert _problems(DOC.read_text(), PKG) == []


def test_the_doc_cites_the_main_rules():
    text = DOC.read_text()
    for cited in (
        "core/formula.py::check_rows",
        "core/formula.py::term",
        "core/formula.py::formula_weights",
        "core/fixed_effects.py::compute_fixed_effects",
        "core/bold.py::MAX_BAD_FRACTION",
        "core/images.py::stored_completely",
        "execution/folders.py::hold_folder",
        "core/publish.py::publish",
        "core/memo.py::memo_key",
        "core/sidecars.py::sidecar_key",
        "core/confounds/select.py::select_confounds",
        "core/group/design.py::make_group_design",
        "core/group/contrasts.py::contrast_weights",
        "core/inference.py::run_group_inference",
    ):
        assert f"`{cited}`" in text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("`core/nothing.py`", "core/nothing.py does not exist"),
        ("`core/formula.py::no_such_rule`", "core/formula.py defines no no_such_rule"),
        ("`core/model/spec.py::ModelSpec.nope`", "core/model/spec.py: ModelSpec has no nope"),
    ],
)
def test_a_wrong_citation_is_caught(text, problem):
    assert _problems(text, PKG) == [problem]


def test_a_missing_or_extra_module_is_caught():
    doc = "intro\n## Modules\n\n- `core/formula.py`: formulas.\n- `core/gone.py`: gone.\n"
    listed = set(_listed(doc))
    assert "core/contrasts.py" in _modules() - listed
    assert listed - _modules() == {"core/gone.py"}
