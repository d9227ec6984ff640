"""The group level on surfaces from the command line (issue 12): subject maps read back,
checked before compute, the group maps written as GIFTI / CIFTI with sidecars.

The subject maps are written by the participant level's own writer
(``glmflow.core.outputs.write_derivatives``, what its sinks publish) for 6 subjects, with a
planted effect: no first level is fitted here (tests/test_surface.py does that). Parity:
z equal to nilearn's ``SecondLevelModel`` on the same ``SurfaceImage`` list (both
hemispheres), the FDR map to nilearn's ``threshold_stats_img`` on it, the max-t FWE map to
nilearn's ``permuted_ols`` on the same matrix, CIFTI z to ``SecondLevelModel`` on the
grayordinate matrix (as a one-row NIfTI image).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.core.outputs import write_derivatives
from glmflow.errors import GroupModelError

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models" / "faces_model.json"
N_SUBJECTS = 6
PLANTED = 40  # the first vertices of the left hemisphere / of the CIFTI cortex
NAME = "face-house"


def _gifti(path: Path, values: np.ndarray) -> Path:
    array = nib.gifti.GiftiDataArray(values.astype(np.float32), datatype="NIFTI_TYPE_FLOAT32")
    nib.save(nib.gifti.GiftiImage(darrays=[array]), path)
    return path


def _dscalar(path: Path, values: np.ndarray, axis) -> Path:
    img = nib.Cifti2Image(values[None].astype(np.float32),
                          header=(nib.cifti2.ScalarAxis([NAME]), axis))  # fmt: skip
    nib.save(img, path)
    return path


def _subject_maps(out: Path, scratch: Path, space: str, rng) -> np.ndarray:
    """Subject effect maps of every subject as the participant level writes them."""
    from glmflow.core.surface.io import save_surface_map
    from glmflow.data.surface import brain_models

    rows = []
    for s in range(1, N_SUBJECTS + 1):
        entities = {"subject": f"{s:02d}", "task": "faces", "space": space}
        parts = {"L": 10242, "R": 10242} if space == "fsaverage5" else {"cifti": 91282}
        row = []
        for part, n in parts.items():
            values = rng.standard_normal(n)
            if part in ("L", "cifti"):
                values[:PLANTED] += 8.0  # t near 20 on 5 dof: past FDR over 20484
            src = scratch / f"{s}_{part}{'.func.gii' if part != 'cifti' else '.dscalar.nii'}"
            if part == "cifti" and s == 1:
                _dscalar(src, values, brain_models())
            elif part == "cifti":  # glmflow's writer on the first one's brain models: fast
                save_surface_map(values, str(scratch / f"1_{part}.dscalar.nii"), src, NAME)
            else:
                _gifti(src, values)
            entities.update({"den": "91k"} if part == "cifti" else {})
            where = entities if part == "cifti" else {**entities, "hemi": part}
            metadata = {"Contrasts": {NAME: {"DegreesOfFreedom": 50.0}}}
            write_derivatives(out / "glmflow", entities=where, level="subject",
                              maps=[(src, NAME, "effect")], metadata=metadata)  # fmt: skip
            row.append(values.astype(np.float32).astype(float))
        rows.append(np.concatenate(row))
    return np.stack(rows)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A raw dataset (participants.tsv), a one-sample model and subject maps on both spaces."""
    root = tmp_path_factory.mktemp("surface_group")
    bids, out, scratch = root / "bids", root / "out", root / "scratch"
    for folder in (bids, out, scratch):
        folder.mkdir()
    ids = [f"sub-{s:02d}" for s in range(1, N_SUBJECTS + 1)]
    pd.DataFrame({"participant_id": ids}).to_csv(bids / "participants.tsv", sep="\t", index=False)
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    model = json.loads(MODEL.read_text())
    model["group"].update(design="one-sample", contrasts=[], covariates=[], group_column=None,
                          first_level_contrasts=[NAME])  # fmt: skip
    model["group"]["inference"].update(method="fdr", cluster_threshold=0, two_sided=True)
    (root / "model.json").write_text(json.dumps(model))
    rng = np.random.default_rng(0)
    data = {space: _subject_maps(out, scratch, space, rng) for space in ("fsaverage5", "fsLR")}
    return {"bids": bids, "out": out, "model": root / "model.json", "data": data, "root": root}


def _group(study, out: Path, space: str, *extra: str) -> int:
    from glmflow.cli.main import main

    args = [str(study["bids"]), str(out), "group", "--model", str(study["model"]),
            "--space", space, "-q", "-w", str(out.parent / f"work_{space}"), *extra]  # fmt: skip
    return main(args)


def _gii(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).darrays[0].data, float)


def test_fsaverage5_group_maps_equal_nilearn(study, tmp_path, capsys):
    from nilearn.datasets import load_fsaverage
    from nilearn.glm import threshold_stats_img
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.surface import SurfaceImage

    out = tmp_path / "out"
    shutil.copytree(study["out"], out)
    assert _group(study, out, "fsaverage5") == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("glmflow: 1 group model(s) of 6 subject(s) done in ")
    stem = "task-faces_hemi-{}_space-fsaverage5_contrast-faceMinusHouse_stat-{}_statmap"
    glm = out / "glmflow"
    z = np.concatenate([_gii(glm / (stem.format(h, "z") + ".func.gii")) for h in "LR"])
    fdr = np.concatenate([_gii(glm / (stem.format(h, "z_desc-fdr") + ".func.gii")) for h in "LR"])
    sidecar = json.loads((glm / (stem.format("L", "z_desc-fdr") + ".json")).read_text())
    assert sidecar["Level"] == "dataset" and sidecar["Tail"] == "two-sided"
    assert sidecar["Contrast"]["Name"] == NAME and sidecar["Thresholded"] is True
    assert len(sidecar["Inputs"]) == N_SUBJECTS
    assert (glm / "task-faces_space-fsaverage5_design.tsv").is_file()  # the surface group's own
    mesh = load_fsaverage("fsaverage5")["pial"]
    data = study["data"]["fsaverage5"]
    imgs = [SurfaceImage(mesh=mesh, data={"left": d[:10242], "right": d[10242:]}) for d in data]
    ref = SecondLevelModel().fit(imgs, design_matrix=pd.DataFrame({"intercept": [1.0] * 6}))
    z_ref = ref.compute_contrast("intercept", output_type="z_score")
    z_nilearn = np.concatenate([np.ravel(z_ref.data.parts[h]) for h in ("left", "right")])
    assert np.abs(z - z_nilearn).max() < 1e-5  # maps stored as float32: measured 2.4e-7
    thresholded, threshold = threshold_stats_img(z_ref, alpha=0.05, height_control="fdr",
                                                 two_sided=True)  # fmt: skip
    kept = np.concatenate([np.ravel(thresholded.data.parts[h]) != 0 for h in ("left", "right")])
    assert np.array_equal(fdr != 0, kept)
    assert sidecar["Threshold"] == pytest.approx(threshold, rel=1e-4)
    # the planted effect found, the null vertices silent
    assert (fdr[:PLANTED] != 0).mean() > 0.9 and (fdr[PLANTED:] != 0).sum() <= 5


def test_max_t_fwe_equals_nilearn_permuted_ols(study, tmp_path):
    from nilearn.mass_univariate import permuted_ols

    out = tmp_path / "out"
    shutil.copytree(study["out"], out)
    code = _group(study, out, "fsaverage5", "--inference", "permutation", "--permutations",
                  "40", "--seed", "3")  # fmt: skip
    assert code == 0
    stem = "task-faces_hemi-{}_space-fsaverage5_contrast-faceMinusHouse_stat-{}_statmap.func.gii"
    glm = out / "glmflow"
    logp = np.concatenate([_gii(glm / stem.format(h, "logp_desc-maxtFWE")) for h in "LR"])
    data = study["data"]["fsaverage5"]
    ref = permuted_ols(np.ones((6, 1)), data, model_intercept=False, n_perm=40,
                       two_sided_test=True, random_state=3)  # fmt: skip
    assert np.abs(logp - np.ravel(ref["logp_max_t"])).max() < 1e-6  # measured 4.6e-8
    thresholded = np.concatenate([_gii(glm / stem.format(h, "t_desc-maxtFWE")) for h in "LR"])
    assert np.array_equal(thresholded != 0, logp > -np.log10(0.05))
    # the same command again is the no-change stamp's: no graph run (its cache folder,
    # removed here, is not made again), nothing rewritten
    graph = out.parent / "work_fsaverage5" / "glmflow_fsaverage5_group_wf"
    assert graph.is_dir()
    shutil.rmtree(graph)
    written = {p: p.stat().st_mtime_ns for p in glm.glob("task-faces_*")}
    code = _group(study, out, "fsaverage5", "--inference", "permutation", "--permutations",
                  "40", "--seed", "3")  # fmt: skip
    assert code == 0 and not graph.exists()
    assert {p: p.stat().st_mtime_ns for p in glm.glob("task-faces_*")} == written


@pytest.mark.filterwarnings("ignore:Using large vector Freesurfer hack")  # the reference image
def test_cifti_group_maps_are_dscalar_equal_to_nilearn(study, tmp_path):
    from nilearn.glm.second_level import SecondLevelModel

    out = tmp_path / "out"
    shutil.copytree(study["out"], out)
    assert _group(study, out, "fsLR", "--den", "91k") == 0
    name = "task-faces_space-fsLR_den-91k_contrast-faceMinusHouse_stat-z_statmap.dscalar.nii"
    path = out / "glmflow" / name
    img = nib.load(path)
    assert img.header.get_axis(0).name.tolist() == [f"{NAME} z"]
    assert len(img.header.get_axis(1)) == 91282
    z = np.asarray(img.dataobj, float)[0]
    data = study["data"]["fsLR"]
    imgs = [nib.Nifti1Image(d.reshape(-1, 1, 1).astype(np.float32), np.eye(4)) for d in data]
    mask = nib.Nifti1Image(np.ones((91282, 1, 1), np.int8), np.eye(4))
    ref = SecondLevelModel(mask_img=mask).fit(imgs, design_matrix=pd.DataFrame(
        {"intercept": [1.0] * 6}))  # fmt: skip
    z_ref = np.ravel(ref.compute_contrast("intercept", output_type="z_score").get_fdata())
    assert np.abs(z - z_ref).max() < 1e-5  # measured 2.3e-7
    assert z[:PLANTED].mean() > 3 and abs(np.median(z[PLANTED:])) < 0.1


def _plan(study, out: Path, space: str = "fsaverage5", **keywords):
    from glmflow.runners.surface import plan_surface_group_level

    return plan_surface_group_level(bids_dir=study["bids"], output_dir=out, model=study["model"],
                                    space=space, **keywords)  # fmt: skip


def _left(out: Path, subject: str, hemi: str = "L") -> Path:
    return (out / "glmflow" / f"sub-{subject}" / "func" /
            f"sub-{subject}_task-faces_hemi-{hemi}_space-fsaverage5_contrast-faceMinusHouse_"
            "stat-effect_statmap.func.gii")  # fmt: skip


def test_bad_surface_inputs_are_one_line_each(study, tmp_path):
    from glmflow.data.surface import brain_models

    out = tmp_path / "out"
    shutil.copytree(study["out"], out)
    _gifti(_left(out, "03"), np.zeros(10241))
    with pytest.raises(GroupModelError) as err:
        _plan(study, out)
    assert str(err.value) == (
        f"Subject map {_left(out, '03')} holds 1 map(s) of 10241 vertices; a subject map on "
        "fsaverage5 is one map of 10242 vertices: rerun the participant level"
    )
    _left(out, "03").unlink()
    shutil.copy(_left(out, "01"), _left(out, "03"))
    _left(out, "04", "R").unlink()
    with pytest.raises(GroupModelError) as err:
        _plan(study, out)
    assert str(err.value) == (
        f"Subject map {_left(out, '04', 'R')} is missing (its hemi-L map "
        f"{_left(out, '04').name} exists); rerun the participant level for this subject"
    )
    cifti = (out / "glmflow" / "sub-02" / "func" / "sub-02_task-faces_space-fsLR_den-91k_"
             "contrast-faceMinusHouse_stat-effect_statmap.dscalar.nii")  # fmt: skip
    _dscalar(cifti, np.zeros(91282 - 1000), brain_models()[:-1000])
    first = cifti.name.replace("sub-02", "sub-01")
    with pytest.raises(GroupModelError) as err:
        _plan(study, out, space="fsLR", den="91k")
    assert str(err.value) == (
        f"Subject map {cifti} has another brain models (grayordinates) than {first} (90282 "
        "grayordinates vs 91282 grayordinates); every subject map must be on one mesh: rerun "
        "the participant level of this subject with --space fsLR"
    )


@pytest.mark.parametrize(
    ("inference", "message"),
    [
        ({"method": "tdp"}, "group.inference.method='tdp' in {model} on surface space "
         "fsaverage5: surfaces offer none, fpr, fdr, bonferroni, threshold, permutation"),
        ({"method": "permutation", "permutation_stat": "mass", "cluster_forming_p": 0.001},
         "group.inference.permutation_stat='mass' in {model} on surface space fsaverage5: "
         "surfaces offer max_t, size, tfce"),
    ],
)  # fmt: skip
def test_surface_group_refusals(study, inference, message):
    with pytest.raises(GroupModelError) as err:
        _plan(study, study["out"], inference=inference)
    assert str(err.value) == message.format(model=study["model"])


def test_group_mask_on_a_surface_is_one_line(study, tmp_path, capsys):
    code = _group(study, tmp_path / "out", "fsaverage5", "--group-mask", str(study["model"]))
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"glmflow: error: --group-mask {study['model']}: a NIfTI mask has no meaning on "
        "surface space fsaverage5; leave it out (vertices no subject map covers are left out)"
    ]


def test_vertices_without_data_in_one_map_are_left_out(tmp_path):
    """A vertex 0 in one subject's map and NaN in another's is not fitted as data (item 17):
    left out, warned about, counted in the sidecars; the other vertices' t is unchanged."""
    from glmflow.core.surface.group_level import surface_group_contrast_files

    rng = np.random.default_rng(5)
    data = rng.standard_normal((4, 60)) + 1.0
    data[:, 0] = 0.0  # no map: the medial wall
    data[1, 5], data[2, 7] = 0.0, np.nan
    effects = []
    for s, row in enumerate(data, start=1):
        stem = f"sub-{s:02d}_hemi-{{}}_space-fsaverage5_stat-effect_statmap.func.gii"
        for hemi, values in zip("LR", (row[:30], row[30:]), strict=True):
            _gifti(tmp_path / stem.format(hemi), values)
        effects.append(str(tmp_path / stem.format("L")))
    design = tmp_path / "design.tsv"
    pd.DataFrame({"intercept": [1.0] * 4}).to_csv(design, sep="\t", index=False)
    inference = {"method": "none", "two_sided": True, "alpha": 0.05, "definition": [1.0],
                 "permutation_stat": "max_t", "n_perm": 0, "cluster_forming_p": None,
                 "seed": 0, "cluster_threshold": 0}  # fmt: skip
    (tmp_path / "stage").mkdir()
    with pytest.warns(UserWarning) as caught:
        written, staged, _ = surface_group_contrast_files(
            effects, design_file=design, contrast="mean", inference=inference,
            entities={"task": "x", "space": "fsaverage5"}, output_dir=tmp_path / "out",
            metadata={}, out_dir=tmp_path / "stage",
        )  # fmt: skip
    assert [str(w.message) for w in caught] == [
        "2 vertices with data in some subject maps are 0 or not finite in others (1 of them "
        f"in {effects[1]}); they are left out of the group inference"
    ]
    sidecar = json.loads(staged[0].read_text())
    assert sidecar["ExcludedVertices"] == 3
    assert sidecar["ExcludedVerticesWithDataInSomeMaps"] == 2
    t = np.concatenate([_gii(tmp_path / "stage" / f"{h}_t_map.func.gii") for h in "LR"])
    assert np.flatnonzero(t == 0).tolist() == [0, 5, 7]
    kept = np.ones(60, bool)
    kept[[0, 5, 7]] = False
    y = data[:, kept]
    expected = y.mean(0) / (y.std(0, ddof=1) / 2.0)
    np.testing.assert_allclose(t[kept], expected, rtol=1e-5)  # maps stored as float32
