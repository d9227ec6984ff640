"""Edit reruns (issue 13): what a model edit reuses must give the bytes of a cold run.

A contrast added reuses the other contrasts' run maps, subject combinations, group fits and
report sections; a confound added reuses the masked data and the runs' mean images. Both
levels' outputs after such an edit must be those of a cold run of the edited model, file
for file: the same names, the same JSON and HTML, the same image data.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from glmflow import run_group_level, run_participant_level
from glmflow.data import make_synthetic_dataset

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_study.py"
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


def _model(contrasts: dict[str, str], confounds: list[str]) -> dict:
    """benchmarks/bench_study.py's model, whose edits this test repeats on tiny data."""
    module = sys.modules.get("bench_study")
    if module is None:
        spec = importlib.util.spec_from_file_location("bench_study", BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return module.glmflow_model(contrasts, confounds)


ONE = {"face-house": "face - house"}
TWO = {**ONE, "face-scrambled": "face - scrambled"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("edits")
    bids = make_synthetic_dataset(root / "bids", n_subjects=2, n_runs=2, n_volumes=40)
    return root, bids


def _levels(root: Path, bids: Path, model: Path, name: str) -> Path:
    """Both levels of ``model`` into ``root/name`` (output) with the cache ``root/name-work``."""
    common = dict(bids_dir=bids, output_dir=root / name, model=model,
                  work_dir=root / f"{name}-work", n_procs=2, progress=False)  # fmt: skip
    run_participant_level(**common)
    run_group_level(**common)
    return root / name / "glmflow"


def _contents(out: Path) -> dict[str, bytes]:
    """Each output file's bytes: images decompressed (gzip's header holds a time), folder
    names replaced (sidecars and pages name the files they describe)."""
    found = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        found[str(path.relative_to(out))] = data.replace(str(out.parent).encode(), b"OUT")
    return found


def _assert_same(edited: Path, cold: Path) -> None:
    after, fresh = _contents(edited), _contents(cold)
    assert sorted(after) == sorted(fresh)
    differ = [name for name in fresh if after[name] != fresh[name]]
    assert differ == []


def test_contrast_then_confound_edit_write_what_a_cold_run_writes(study):
    root, bids = study
    model = root / "model.json"  # one path: the sidecars name the model file
    model.write_text(json.dumps(_model(ONE, CONFOUNDS)))
    edited = _levels(root, bids, model, "out")
    memo = root / "out-work" / "report_memo"
    remembered = {p: p.stat().st_mtime_ns for p in memo.iterdir()}
    assert remembered  # the runs' mean images, run parts and the contrast's sections
    # one design a run: the build_design nodes recalled the pre-flight's (the same key)
    designs = root / "out-work" / "contrast_memo" / "designs"
    assert len(list(designs.glob("*.pkl"))) == 4

    model.write_text(json.dumps(_model(TWO, CONFOUNDS)))
    _levels(root, bids, model, "out")  # the edit, from the first model's cache
    cold = _levels(root, bids, model, "cold-contrast")
    _assert_same(edited, cold)
    # the edit drew the new contrast only: 2 subject pages x 1 section added to the memo,
    # and recalled every run's parts (nothing remembered was written again)
    added = {p.name for p in set(memo.iterdir()) - set(remembered)}
    assert len(added) == 2 and all(name.endswith(".json") for name in added)
    assert all(p.stat().st_mtime_ns == t for p, t in remembered.items())
    assert len(list(designs.glob("*.pkl"))) == 4  # no design changed

    remembered = set(memo.iterdir())
    model.write_text(json.dumps(_model(TWO, [*CONFOUNDS, "global_signal"])))
    _levels(root, bids, model, "out")
    cold = _levels(root, bids, model, "cold-confound")
    _assert_same(edited, cold)
    # a confound rule edit: each of the 4 runs' parts drawn again, and 2 x 2 contrast
    # sections (their maps changed); the mean images recalled
    added = {p.name for p in set(memo.iterdir()) - remembered}
    assert len(added) == 8 and all(name.endswith(".json") for name in added)
    assert len(list(designs.glob("*.pkl"))) == 8  # each run's design built once more


def test_the_schedulers_ready_count_is_scipys_through_nipypes_edits():
    """MultiProc's dependency matrix counts its columns itself (a cheaper loop pass): the
    same matrix as scipy's sum, after Nipype clears rows as nodes finish."""
    import networkx as nx
    import numpy as np
    from nipype.pipeline.plugins.base import _graph_to_lil_matrix

    from glmflow.execution.multiproc import _CountedDependencies

    edges = nx.gnp_random_graph(120, 0.05, directed=True, seed=3).edges()
    graph = nx.DiGraph([(u, v) for u, v in edges if u < v])
    graph.add_nodes_from(range(120))
    plain = _graph_to_lil_matrix(graph, nodelist=list(range(120)))
    counted = _CountedDependencies(plain)
    for jobid in np.random.default_rng(0).permutation(120):
        ours, scipys = counted.sum(0), plain.sum(axis=0)
        assert type(ours) is type(scipys) and ours.dtype == scipys.dtype
        np.testing.assert_array_equal(ours, scipys)
        for matrix in (plain, counted):  # what Nipype's _task_finished_cb does
            row = matrix.getrowview(int(jobid))
            row[row.nonzero()] = 0
    assert counted.sum(0).sum() == 0 and counted.sum(axis=1).shape == (120, 1)


def test_a_pyc_written_later_changes_no_code_key(tmp_path):
    """The level stamps' and the report memo's code key follow the sources, not the .pyc
    files that a process's first import writes in the middle of a run."""
    from glmflow.core.memo import source_identity

    (tmp_path / "module.py").write_text("x = 1\n")
    before = source_identity(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"\0")
    assert source_identity(tmp_path) == before == [["module.py", *before[0][1:]]]
    (tmp_path / "module.py").write_text("x = 2\n")
    assert source_identity(tmp_path) != before
