"""One run per subject: the Subject ``meta`` node passes its single map through.

The packaged faces model (run -> subject (meta) -> dataset (glm)) on a synthetic dataset of
3 subjects with one run of 60 volumes each. A fixed-effects combination of one map is that
map (nilearn's ``compute_fixed_effects`` of one input); the dataset node is OLS on them.
"""

from __future__ import annotations

import json
from importlib.resources import files

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
FACES = json.loads((files("glmflow.data") / "models" / "faces_smdl.json").read_text())
STEM = "contrast-faceGtHouse_stat-{}_statmap"


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    from glmflow.data import make_synthetic_dataset
    from glmflow.runners.bsm import run_bids_stats_model

    root = tmp_path_factory.mktemp("bsm_one_run")
    dataset = make_synthetic_dataset(root / "ds", n_subjects=3, n_runs=1, n_volumes=60)
    model = root / "faces_smdl.json"
    model.write_text(json.dumps(FACES))
    return run_bids_stats_model(
        bids_dir=dataset, output_dir=root / "out", model=model, work_dir=root / "work"
    )


def _data(path) -> np.ndarray:
    return nib.load(path).get_fdata()


def test_one_map_meta_is_nilearn_fixed_effects_of_that_map(one_run):
    from nilearn.glm import compute_fixed_effects

    out = one_run.output_dir
    run = one_run.plan.runs[1]
    assert run.entities == {"subject": "02", "run": "1", "task": "faces"}
    effect, variance = (
        str(out / f"node-run/sub-02/sub-02_task-faces_run-1_{STEM.format(s)}.nii.gz")
        for s in ("effect", "variance")
    )
    dof = json.loads(open(effect.replace(".nii.gz", ".json")).read())["DegreesOfFreedom"]
    assert dof > 40  # 60 volumes less the run's columns
    theirs = compute_fixed_effects([effect], [variance], run.mask_file, dofs=[dof])
    inside = _data(run.mask_file) > 0
    subject = out / "node-subject/sub-02"
    ours = {s: _data(subject / f"sub-02_{STEM.format(s)}.nii.gz") for s in
            ("effect", "variance", "t", "z")}  # fmt: skip
    for name, nilearn_map in zip(("effect", "variance", "t", "z"), theirs, strict=True):
        assert np.abs(ours[name][inside] - nilearn_map.get_fdata()[inside]).max() < 1e-3, name
    assert np.abs(ours["effect"][inside] - _data(effect)[inside]).max() < 1e-6
    assert np.abs(ours["variance"][inside] - _data(variance)[inside]).max() < 1e-6
    assert np.abs(ours["z"][inside]).max() > 3  # the planted face > house effect
    sidecar = json.loads((subject / f"sub-02_{STEM.format('z')}.json").read_text())
    assert sidecar["DegreesOfFreedom"] == dof and sidecar["InputMaps"] == 1
    assert sidecar["Combination"] == (
        "fixed effects of one input map: effect and variance are the input's, "
        "t, z and p follow from them with the input's dof"
    )


def test_dataset_glm_on_one_map_subjects_is_second_level_model(one_run):
    from nilearn.glm.second_level import SecondLevelModel

    out = one_run.output_dir
    pattern = f"node-subject/sub-*/sub-*_{STEM.format('effect')}.nii.gz"
    effects = sorted(str(p) for p in out.glob(pattern))
    assert len(effects) == 3
    mask = str(next(one_run.work_dir.rglob("*dataset__contrast_*/mask.nii.gz")))
    slm = SecondLevelModel(mask_img=mask).fit(
        effects, design_matrix=pd.DataFrame({"intercept": [1.0] * 3})
    )
    theirs = slm.compute_contrast("intercept", output_type="z_score").get_fdata()
    ours = _data(out / f"node-dataset/{STEM.format('z')}.nii.gz")
    common = _data(mask) > 0
    assert common.sum() > 100
    assert np.abs(ours[common] - theirs[common]).max() < 1e-3
    sidecar = json.loads((out / f"node-dataset/{STEM.format('z')}.json").read_text())
    assert sidecar["InputMaps"] == 3 and "Combination" not in sidecar
    assert sidecar["DegreesOfFreedom"] == 2.0


def test_reports_of_a_bsm_run(one_run):
    """The BSM run's pages (issue 10), drawn by the report code of glmflow's own models."""
    import re

    from glmflow.core.report.group import GROUP_SECTIONS
    from glmflow.core.report.runs import variance_inflation
    from glmflow.core.report.subject import SUBJECT_SECTIONS

    out = one_run.output_dir
    assert sorted(p.name for p in one_run.reports) == [
        "group_node-dataset.html", "index.html", "sub-01.html", "sub-02.html", "sub-03.html"]
    page = (out / "sub-02.html").read_text()
    for section in (*SUBJECT_SECTIONS, "run-sub-02_task-faces_run-1",
                    "contrast-faces-faceGtHouse-node-subject"):  # fmt: skip
        assert f'<section id="{section}">' in page, section
    assert "from the BIDS Stats Model &#x27;faces_bsm&#x27; (faces_smdl.json)" in page
    assert "a discrete cosine basis with a 128 s high-pass cut-off" in page  # 1 / 0.0078125 Hz
    assert "2 of 60 volumes censored (3.3 %)" in page  # the two non-steady-state columns
    design = pd.read_csv(out / "node-run/sub-02/sub-02_task-faces_run-1_design.tsv", sep="\t")
    vif = variance_inflation(design[["trial_type.face", "trial_type.house"]].join(
        design.filter(regex="^(trans|rot)_|^trial_type.scrambled$|^csf$|^white_matter$")))
    rows = dict(re.findall(r'<tr><td class="text">([\w.]+)</td><td>([\d.]+)</td>', page))
    assert float(rows["trial_type.face"]) == pytest.approx(vif["trial_type.face"], rel=1e-3)
    assert "intercept" not in rows and "drift_1" not in rows  # constant and drift: unchecked
    # a subject-map peak of the cluster table is the z map's value at that coordinate
    peak = re.search(r"<tbody><tr><td class=\"text\">1</td><td>(-?\d+)</td><td>(-?\d+)</td>"
                     r"<td>(-?\d+)</td><td>(-?[\d.]+)</td>", page)  # fmt: skip
    z = nib.load(out / f"node-subject/sub-02/sub-02_{STEM.format('z')}.nii.gz")
    ijk = np.linalg.solve(z.affine, [*map(float, peak.groups()[:3]), 1.0])[:3].round().astype(int)
    assert z.get_fdata()[tuple(ijk)] == pytest.approx(float(peak.group(4)), abs=5e-4)
    group = (out / "group_node-dataset.html").read_text()
    for section in (*GROUP_SECTIONS, "group-contrast-faceGtHouse"):
        assert f'<section id="{section}">' in group, section
    assert "took 3 effect maps of node &#x27;subject&#x27; (3 subjects)" in group
    assert "<h2>Subjects (3)</h2>" in group
    assert group.count('<tr><td class="text">sub-0') == 3  # a row per input map
    assert "no thresholded map written (inference &#x27;none&#x27;)" in group
    index = (out / "index.html").read_text()
    assert 'href="group_node-dataset.html"' in index and 'href="sub-03.html"' in index
