"""Issue 8's size rule, kept: no module of glmflow/ over 400 lines, no function over 60.

Workflow factories (``init_*_wf``) are the one exception the rule names: their length is the
docstring and the one connect list.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "glmflow"
MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_function_sizes(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400, f"{path} has {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if not node.name.startswith("init_") or not node.name.endswith("_wf"):
                assert length <= 60, f"{path}:{node.lineno} {node.name} has {length} lines"
