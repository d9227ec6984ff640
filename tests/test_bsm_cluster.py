"""The same BIDS Stats Model graph on SLURM and SGE (the project's daemons) as on MultiProc.

Marked ``cluster`` (skipped with the reason when the scheduler does not answer, as in
tests/test_cluster.py). The graph is small: 2 subjects x 1 run, run node -> dataset node,
11 nodes, each a batch job.
"""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import pytest
from test_cluster import POLL, require_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
FACES = json.loads((files("glmflow.data") / "models" / "faces_smdl.json").read_text())


@pytest.fixture(scope="module")
def bsm_case(tmp_path_factory):
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("bsm_cluster")
    dataset = make_synthetic_dataset(root / "ds", n_subjects=2, n_runs=1, n_volumes=60)
    model = copy.deepcopy(FACES)
    del model["Nodes"][1]  # run -> dataset (the subject node of one run is a copy)
    path = root / "run_dataset_smdl.json"
    path.write_text(json.dumps(model))
    return dataset, path


def _maps(dataset: Path, model: Path, root: Path, plugin: str) -> dict[str, bytes]:
    from glmflow.runners.bsm import run_bids_stats_model

    result = run_bids_stats_model(
        bids_dir=dataset,
        output_dir=root / "out",
        model=model,
        work_dir=root / "work",
        plugin=plugin,
        poll_interval=POLL if plugin != "MultiProc" else None,
    )
    found = {}
    for path in sorted(result.files):
        rel = str(path.relative_to(result.output_dir))
        found[rel] = (
            nib.load(path).get_fdata().tobytes() if rel.endswith(".nii.gz") else path.read_bytes()
        )
    return found


@pytest.fixture(scope="module")
def multiproc_maps(bsm_case, tmp_path_factory):
    return _maps(*bsm_case, tmp_path_factory.mktemp("bsm_mp"), "MultiProc")


# one scheduler (the participant level runs on the other, tests/test_cluster.py), under a
# Graph plugin, which queues the 11 jobs at once (the per-node ones run smaller graphs)
@pytest.mark.parametrize("plugin", ["SGEGraph"])
def test_bsm_graph_on_cluster_equals_multiproc(plugin, bsm_case, multiproc_maps, tmp_path):
    require_cluster(plugin)
    maps = _maps(*bsm_case, tmp_path, plugin)
    # 2 runs x (5 maps + design) and the dataset node's 5 maps
    assert len(maps) == len(multiproc_maps) == 2 * 6 + 5
    assert "node-dataset/contrast-faceGtHouse_stat-z_statmap.nii.gz" in maps
    assert [k for k in multiproc_maps if maps.get(k) != multiproc_maps[k]] == []
