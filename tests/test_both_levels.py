"""``glmflow BIDS OUT participant group``: both levels in one process (issue 13, item 2).

The invocation of both must write exactly what the two invocations of one level each write,
and every mistake either level can be told of up front must stop it before anything runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.cli.main import main
from glmflow.data import make_synthetic_dataset

MODELS = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
TASK_INFO = MODELS / "task_information.json"
SPACE = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("both") / "bids", n_subjects=3, n_runs=2, n_volumes=60
    )


def _glmflow(dataset: Path, root: Path, *levels_and_options: str) -> int:
    options = ["--model", str(TASK_INFO), "-w", str(root / "work"), "--n-cpus", "2"]
    return main([str(dataset), str(root / "out"), *levels_and_options, *options])


def _outputs(root: Path) -> dict[str, Path]:
    out = root / "out" / "glmflow"
    return {str(path.relative_to(out)): path for path in sorted(out.rglob("*")) if path.is_file()}


def _same_file(a: Path, b: Path) -> bool:
    if a.name.endswith(".nii.gz"):
        return np.array_equal(np.asanyarray(nib.load(a).dataobj),
                              np.asanyarray(nib.load(b).dataobj), equal_nan=True)  # fmt: skip
    if a.suffix == ".tsv":
        return pd.read_csv(a, sep="\t").equals(pd.read_csv(b, sep="\t"))
    return True  # pages and sidecars name their own folders


def test_both_levels_in_one_process_write_what_the_two_levels_write(dataset, tmp_path, capsys):
    apart, both = tmp_path / "apart", tmp_path / "both"
    assert _glmflow(dataset, apart, "participant") == 0
    assert _glmflow(dataset, apart, "group") == 0
    capsys.readouterr()
    # typed in either order, the participant level runs first (the group reads its maps)
    assert _glmflow(dataset, both, "group", "participant") == 0
    done = [line for line in capsys.readouterr().out.splitlines() if " done in " in line]
    assert [line.split(" done in ")[0] for line in done] == [
        "glmflow: 6 run(s) of 3 subject(s)",
        "glmflow: 6 group model(s) of 3 subject(s)",
    ]
    written, expected = _outputs(both), _outputs(apart)
    assert sorted(written) == sorted(expected)
    maps = [name for name in expected if name.endswith(".nii.gz")]
    assert len([name for name in maps if "/" not in name]) >= 6 * 2  # group z and effect maps
    different = [name for name in expected if not _same_file(written[name], expected[name])]
    assert different == []
    # the group maps are the science, not only equal: the face effect is found
    z = nib.load(written[f"task-faces_space-{SPACE}_contrast-face_stat-z_statmap.nii.gz"])
    assert np.nanmax(z.get_fdata()) > 3  # 3 subjects


def test_a_rerun_of_both_levels_runs_nothing(dataset, tmp_path, capsys):
    assert _glmflow(dataset, tmp_path, "participant", "group") == 0
    before = {name: path.stat().st_mtime_ns for name, path in _outputs(tmp_path).items()}
    capsys.readouterr()
    assert _glmflow(dataset, tmp_path, "participant", "group") == 0
    done = [line for line in capsys.readouterr().out.splitlines() if " done in " in line]
    assert [line.split(" done in ")[1].split(";")[0] for line in done] == ["0.0 s", "0.0 s"]
    assert {name: path.stat().st_mtime_ns for name, path in _outputs(tmp_path).items()} == before


def _delete_events(dataset: Path) -> None:
    (dataset / "sub-02" / "func" / "sub-02_task-faces_run-1_events.tsv").unlink()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--space", SPACE, "fsaverage5"],
         f"--space {SPACE} fsaverage5: the group level takes one space; run it once per --space"),
        (["--inference", "fdr", "--permutations", "100"],
         "--permutations and --seed set a permutation test, but --inference is 'fdr'; use "
         "--inference permutation or leave them out"),
        (["--space", "fsaverage5", "--group-mask", str(TASK_INFO)],
         f"--group-mask {TASK_INFO}: a NIfTI mask has no meaning on surface space fsaverage5; "
         "leave it out (vertices no subject map covers are left out)"),
    ],
    ids=["two spaces", "permutations without permutation", "volume mask on a surface"],
)  # fmt: skip
def test_a_group_mistake_stops_both_levels_before_anything_runs(
    dataset, tmp_path, capsys, options, message
):
    assert _glmflow(dataset, tmp_path, "participant", "group", *options) == 2
    assert capsys.readouterr().err.splitlines() == [f"glmflow: error: {message}"]
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob("result_*.pklz"))  # no node ran


def test_a_participant_failure_leaves_the_group_level_unrun(dataset, tmp_path, capsys):
    broken = tmp_path / "bids"
    shutil.copytree(dataset, broken)
    _delete_events(broken)
    assert _glmflow(broken, tmp_path, "participant", "group") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("glmflow: error: ") and "sub-02" in error and "events" in error
    assert not (tmp_path / "out" / "glmflow").exists()


def test_level_options_name_the_levels_given(dataset, tmp_path, capsys):
    assert _glmflow(dataset, tmp_path, "group", "--run", "1") == 2
    assert capsys.readouterr().err.splitlines() == [
        "glmflow: error: --run is an option of the participant level, not of 'group'; remove "
        "it, or run both levels ('participant group')"
    ]


def _bsm(tmp_path: Path, *levels_and_options: str) -> int:
    model = json.loads((MODELS / "faces_smdl.json").read_text())
    path = tmp_path / "model_smdl.json"
    path.write_text(json.dumps(model))
    return main([str(tmp_path / "ds"), str(tmp_path / "out"), *levels_and_options,
                 "--model", str(path), "-w", str(tmp_path / "work")])  # fmt: skip


def test_a_bids_stats_model_runs_its_dataset_nodes_with_the_participant_level(
    dataset, tmp_path, capsys
):
    (tmp_path / "ds").symlink_to(dataset)
    assert _bsm(tmp_path, "group") == 2
    path = tmp_path / "model_smdl.json"
    assert capsys.readouterr().err.splitlines() == [
        f"glmflow: error: {path} is a BIDS Stats Model: its Dataset nodes (the group models) "
        "run with its other nodes at the participant level; run 'participant' (or "
        "'participant group') instead of 'group'"
    ]
    assert _bsm(tmp_path, "participant", "group", "--group-design", str(path)) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"glmflow: error: --group-design does not apply to the BIDS Stats Model {path} (its "
        "Dataset nodes hold their own design and mask); remove it"
    ]
    assert not (tmp_path / "out").exists()


def test_both_levels_run_a_bids_stats_model_once(dataset, tmp_path, capsys):
    (tmp_path / "ds").symlink_to(dataset)
    assert _bsm(tmp_path, "participant", "group") == 0
    done = [line for line in capsys.readouterr().out.splitlines() if " done in " in line]
    assert len(done) == 1, done  # the participant level ran every node, the Dataset ones too
    node = tmp_path / "out" / "glmflow" / "node-dataset"
    dataset_maps = sorted(node.glob("*_stat-z_*.nii.gz"))
    assert [path.name for path in dataset_maps] == ["contrast-faceGtHouse_stat-z_statmap.nii.gz"]
    assert np.nanmax(nib.load(dataset_maps[0]).get_fdata()) > 3  # 3 subjects


def test_subject_jobs_with_both_levels_leave_the_group_level_per_node(dataset, tmp_path, capsys):
    """``--cluster-jobs subject`` makes the participant level's subjects jobs; the group
    level, not made of subjects (refused alone), runs per node instead of failing after it."""
    jobs, nodes = tmp_path / "jobs", tmp_path / "nodes"
    assert _glmflow(dataset, jobs, "participant", "group", "--cluster-jobs", "subject") == 0
    done = [line for line in capsys.readouterr().out.splitlines() if " done in " in line]
    assert len(done) == 2, done
    assert _glmflow(dataset, nodes, "participant", "group") == 0
    written, expected = _outputs(jobs), _outputs(nodes)
    assert sorted(written) == sorted(expected)
    assert [name for name in expected if not _same_file(written[name], expected[name])] == []
    capsys.readouterr()
    alone = [str(dataset), str(nodes / "out"), "group", "--model", str(TASK_INFO),
             "-w", str(tmp_path / "alone"), "--cluster-jobs", "subject"]  # fmt: skip
    assert main(alone) == 2  # the group level alone is still refused, in one line
    assert capsys.readouterr().err.strip().endswith("use --cluster-jobs node")
