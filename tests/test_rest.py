"""Resting state: the model's checks, the ground truth of the synthetic rest task, bad inputs."""

from __future__ import annotations

import re
import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.core.rest.files import read_matrix
from glmflow.core.rest.run import connectivity_run_files
from glmflow.core.rest.spec import connectivity_spec
from glmflow.data.rest import INDEPENDENT, NETWORKS, add_resting_state
from glmflow.errors import ConfoundsError, DatasetError, ModelSpecError

BASE = {"name": "rest", "task": "rest", "atlas": {"name": "harvard_oxford"}}
WHERE = " (in rest.json)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"atlas": {"name": "harvard"}},
         """'atlas.name' must be one of "harvard_oxford", "aal", "juelich"; got "harvard\""""),
        ({"atlas": {"name": "aal", "coordinates": "power_2011"}},
         'The atlas needs exactly one of "name", "labels_img", "maps_img", "maps" or '
         '"coordinates"; got name, '
         "coordinates"),
        ({"atlas": {"coordinates": "power"}},
         """'atlas.coordinates' must be one of "power_2011", "dosenbach_2010", """
         """"seitzman_2018"; got "power\""""),
        ({"atlas": {"coordinates": [[1, 2]]}},
         "'atlas.coordinates' must be [x, y, z] in mm; got [1, 2]"),
        ({"measures": ["correlations"]},
         """'measures' must be one of "correlation", "partial correlation", "tangent", """
         """"covariance", "precision", "sparse inverse covariance"; got "correlations\""""),
        ({"high_pass": 0.1, "low_pass": 0.05},
         "'high_pass' (0.1 Hz) must be below low_pass (0.05 Hz)"),
        ({"standardize": "zscore"},
         """'standardize' must be one of "zscore_sample", "psc"; got "zscore\""""),
        ({"seeds": [{"name": "pcc", "coordinates": [0, 1]}]},
         "'seeds.coordinates' must be [x, y, z] in mm; got [0, 1]"),
        ({"group": {"inference": {"method": "tdp", "two_sided": False}}},
         """'group.inference.method' must be one of none, fpr, fdr, bonferroni, permutation; """
         """got "tdp\""""),
        ({"group": {"design": "paired", "conditions": ["a", "b"]}},
         """'group.design' must not be "paired" for connectivity"""),
        ({"group": {"smoothing_fwhm": 6}},
         "'group.smoothing_fwhm' does nothing in a connectivity model: it smooths maps; a "
         "matrix of edges has no space to smooth; remove it"),
        ({"group": {"first_level_contrasts": ["faces"]}},
         "'group.first_level_contrasts' does nothing in a connectivity model: it chooses "
         "first-level contrast maps; edges come from the measures; remove it"),
        ({"group": {"inference": {"cluster_threshold": 10}}},
         "'group.inference.cluster_threshold' does nothing in a connectivity model: it sizes "
         "clusters of voxels; edges form no clusters; remove it"),
        ({"group": {"method": "fixed"}},
         """'group.method' does nothing in a connectivity model: it is for maps ("fixed" needs """
         "variance maps); edges are fitted by OLS; remove it"),
        ({"group": {"output_types": ["z_score"]}},
         "'group.output_types' does nothing in a connectivity model: it chooses the maps "
         "written; edges write t, z and p matrices; remove it"),
        ({"group": {"inference": {"method": "fdr", "z_threshold": 2.3}}},
         "'group.inference.z_threshold' does nothing in a connectivity model: it is for the "
         '"threshold" method of maps; edges use alpha; remove it'),
        ({"fisher": True},
         "Unknown key 'fisher' in 'connectivity'; did you mean 'fisher_z'? Allowed: name, task, "
         "atlas, seeds, measures, confounds, fisher_z, plots, group, detrend, standardize, "
         "standardize_confounds, high_pass, low_pass"),
        ({"atlas": {"name": "aal", "missing_labels": "keep"}},
         """'atlas.missing_labels' must be one of "error", "drop"; got "keep\""""),
        ({"atlas": {"name": "aal", "exclude_labels": "3"}},
         "'atlas.exclude_labels' must be a list of label values; got \"3\""),
        ({"atlas": None}, 'The connectivity model needs an "atlas" or "seeds"; add one'),
    ],
)  # fmt: skip
def test_bad_model_is_one_line(change, message):
    model = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ModelSpecError) as err:
        connectivity_spec({"connectivity": model}, source="rest.json")
    assert str(err.value) == message + WHERE


def test_offline_atlases_resolve():
    from glmflow.core.rest.atlas import resolve_atlas

    ho = resolve_atlas(connectivity_spec(BASE))
    assert (ho.kind, len(ho.indices), ho.names[0]) == ("labels", 113, "Left_Frontal_Pole")
    power = resolve_atlas(connectivity_spec({**BASE, "atlas": {"coordinates": "power_2011"}}))
    assert (power.kind, len(power.coordinates), power.seg) == ("spheres", 264, "power2011")


@pytest.fixture(scope="module")
def rest_ds(tmp_path_factory):
    return add_resting_state(tmp_path_factory.mktemp("rest") / "bids", n_subjects=8)


def _model(root, **change):
    atlas = {
        "labels_img": str(root / "derivatives/truth/atlas-rest_dseg.nii.gz"),
        "labels_tsv": str(root / "derivatives/truth/atlas-rest_dseg.tsv"),
        "label": "synth",
    }
    section = {"name": "rest", "task": "rest", "atlas": atlas, "fisher_z": False,
               "confounds": {"strategy": ["motion", "scrub"], "motion": "basic"}}  # fmt: skip
    return connectivity_spec({"connectivity": {**section, **change}})


def _run_files(root, sub):
    stem = root / f"derivatives/fmriprep/sub-{sub}/func/sub-{sub}_task-rest_run-1"
    prefix = f"{stem}_space-MNI152NLin2009cAsym"
    return {
        "bold_file": f"{prefix}_desc-preproc_bold.nii.gz",
        "mask_file": f"{prefix}_desc-brain_mask.nii.gz",
        "confounds_file": f"{stem}_desc-confounds_timeseries.tsv",
        "tr": 2.0,
    }


def _mean_matrix(root, spec, tmp_path):
    out = []
    for s in range(1, 9):
        folder = tmp_path / f"{spec.confounds.strategy}_{s}"
        folder.mkdir()
        result = connectivity_run_files(**_run_files(root, f"{s:02d}"), spec=spec, out_dir=folder)
        out.append(read_matrix(result["matrices"]["correlation"]))
    return np.mean(out, axis=0)


def _blocks(matrix):
    a, b = (np.array(NETWORKS[k]) - 1 for k in ("A", "B"))
    within = [matrix[i, j] for net in (a, b) for i in net for j in net if i < j]
    between = [matrix[i, j] for i in a for j in b]
    return np.array(within), np.array(between)


def test_ground_truth_networks_and_scrubbing(rest_ds, tmp_path):
    """Within-network edges strong, between near zero; the spikes' shared artefact left in
    (no scrubbing) raises every between-network edge."""
    scrubbed = _mean_matrix(rest_ds, _model(rest_ds), tmp_path)
    within, between = _blocks(scrubbed)
    assert within.min() > 0.4  # planted r = 0.6
    assert np.abs(between).max() < 0.12
    spec = _model(rest_ds, confounds={"strategy": ["motion"], "motion": "basic"})
    kept = _mean_matrix(rest_ds, spec, tmp_path)
    _, between_kept = _blocks(kept)
    assert between_kept.mean() > between.mean() + 0.05
    assert np.abs(between).mean() < 0.05 < between_kept.mean()


def test_censored_volumes_in_the_sidecar(rest_ds, tmp_path):
    import json

    result = connectivity_run_files(**_run_files(rest_ds, "01"), spec=_model(rest_ds),
                                    out_dir=tmp_path)  # fmt: skip
    truth = json.loads((rest_ds / "derivatives/truth/rest_truth.json").read_text())
    spikes = truth["runs"]["sub-01_task-rest_run-1"]["spikes"]
    record = json.loads(open(result["record"]).read())
    assert set(spikes) <= set(record["CensoredVolumes"])
    assert record["NodeLabels"] == ["A1", "A2", "A3", "B1", "B2", "B3", "solo1", "solo2"]
    series = pd.read_csv(result["timeseries"], sep="\t")
    assert len(series) == 150 - len(record["CensoredVolumes"])
    assert len(INDEPENDENT) == 2


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_label_without_voxel_in_mask(rest_ds, tmp_path):
    root = tmp_path / "bids"
    shutil.copytree(rest_ds, root)
    img = nib.load(root / "derivatives/truth/atlas-rest_dseg.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 9  # a label outside the brain
    nib.save(nib.Nifti1Image(data, img.affine), root / "derivatives/truth/atlas-rest_dseg.nii.gz")
    tsv = root / "derivatives/truth/atlas-rest_dseg.tsv"
    tsv.write_text(tsv.read_text() + "9\tnowhere\n")
    with pytest.raises(DatasetError) as err:
        connectivity_run_files(**_run_files(root, "01"), spec=_model(root), out_dir=tmp_path)
    assert re.fullmatch(
        r"Atlas \S+atlas-rest_dseg.nii.gz label 9 \(nowhere\) has no voxel in the brain mask "
        r"of run \S+_desc-preproc_bold.nii.gz \(mask \S+_desc-brain_mask.nii.gz\); set "
        r'"missing_labels": "drop" in the atlas, list it in "exclude_labels", or use an atlas '
        r"that the mask covers",
        _one_line(err),
    )


NYQUIST = [({"low_pass": 0.3}, "low_pass", "0.3"),
           ({"high_pass": 0.25, "low_pass": None}, "high_pass", "0.25")]  # fmt: skip


@pytest.mark.parametrize(("band", "key", "value"), NYQUIST)
def test_band_above_nyquist_is_one_line(rest_ds, tmp_path, band, key, value):
    files = _run_files(rest_ds, "01")
    with pytest.raises(DatasetError) as err:
        connectivity_run_files(**files, spec=_model(rest_ds, **band), out_dir=tmp_path)
    assert _one_line(err) == (
        f"{key} {value} Hz is at or above the Nyquist frequency 0.25 Hz of run "
        f"{files['bold_file']} (TR 2 s); lower it or remove it"
    )
    assert not any(tmp_path.iterdir())  # refused before any compute


def test_run_shorter_than_the_filter_needs(tmp_path):
    root = add_resting_state(tmp_path / "short", n_subjects=1, n_volumes=30)
    with pytest.raises(DatasetError) as err:
        connectivity_run_files(**_run_files(root, "01"), spec=_model(root), out_dir=tmp_path)
    assert re.fullmatch(
        r"run \S+_bold.nii.gz has 30 volumes, but nilearn's band-pass filter \(order 5 "
        r"Butterworth, filtered both ways\) needs more than 33; remove high_pass / low_pass "
        r"for this run or leave it out",
        _one_line(err),
    )


def test_all_volumes_censored(rest_ds, tmp_path):
    spec = _model(rest_ds, confounds={"strategy": ["scrub"], "fd_threshold": 1e-9,
                                      "std_dvars_threshold": 1e-9})  # fmt: skip
    with pytest.raises(ConfoundsError) as err:
        connectivity_run_files(**_run_files(rest_ds, "01"), spec=spec, out_dir=tmp_path)
    assert re.fullmatch(
        r"Scrubbing censors every volume of \S+_desc-confounds_timeseries.tsv \(fd_threshold="
        r"1e-09, std_dvars_threshold=1e-09\); raise the thresholds or drop 'scrub' from the "
        r"strategy",
        _one_line(err),
    )


def test_seed_outside_the_brain(rest_ds, tmp_path):
    spec = _model(rest_ds, seeds=[{"name": "far", "coordinates": [90, 90, 90], "radius": 4}])
    with pytest.raises(DatasetError) as err:
        connectivity_run_files(**_run_files(rest_ds, "01"), spec=spec, out_dir=tmp_path)
    assert re.fullmatch(
        r"Seed far at \(90, 90, 90\) mm is outside the brain: no voxel of the mask of run "
        r"\S+_bold.nii.gz \(mask \S+_mask.nii.gz\) within 4 mm; check the coordinates' space "
        r"\(MNI mm\) or enlarge the radius",
        _one_line(err),
    )


def test_seed_map_peaks_in_its_network(rest_ds, tmp_path):
    """A seed in parcel A1: its map (mean of 4 subjects) is high in A2, near zero in B2."""
    labels = np.asarray(nib.load(rest_ds / "derivatives/truth/atlas-rest_dseg.nii.gz").dataobj)
    affine = nib.load(rest_ds / "derivatives/truth/atlas-rest_dseg.nii.gz").affine
    centre = nib.affines.apply_affine(affine, np.argwhere(labels == 1).mean(0))
    spec = _model(rest_ds, seeds=[{"name": "a1", "coordinates": centre.tolist(), "radius": 6}])
    maps = []
    for sub in ("01", "02", "03", "04"):
        (tmp_path / sub).mkdir()
        result = connectivity_run_files(**_run_files(rest_ds, sub), spec=spec,
                                        out_dir=tmp_path / sub)  # fmt: skip
        maps.append(np.asarray(nib.load(result["seed_maps"]["a1"]).dataobj))
    values = np.mean(maps, axis=0)
    assert values[labels == 2].mean() > 0.25
    assert abs(values[labels == 5].mean()) < 0.1


def test_named_atlas_drops_labels_outside_the_masks(rest_ds):
    """Harvard-Oxford on the synthetic brain: labels outside it are refused, or dropped."""
    from glmflow.core.bids import discover_runs
    from glmflow.core.rest.plan import check_rest_runs

    runs = discover_runs(rest_ds, tasks=["rest"], participant_label=["01"], need_events=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=r"has no voxel in the brain mask"):
            check_rest_runs(runs, connectivity_spec(BASE))
        spec = connectivity_spec({**BASE, "atlas": {"name": "harvard_oxford",
                                                    "missing_labels": "drop"}})  # fmt: skip
    with pytest.warns(UserWarning, match=r"label\(s\) with no voxel in some run's brain mask"):
        kept = check_rest_runs(runs, spec)
    assert 0 < 113 - len(kept.atlas.exclude_labels) < 113


def _inference(**inference):
    from glmflow.core.model.group_specs import InferenceSpec

    return InferenceSpec(**inference)


def test_edge_glm_one_sample_and_covariate_equal_scipy():
    from scipy import stats

    from glmflow.core.rest.group import edge_glm

    rng = np.random.default_rng(3)
    n_sub, n = 14, 5
    matrices = rng.normal(size=(n_sub, n, n))
    matrices = (matrices + matrices.transpose(0, 2, 1)) / 2
    matrices[:, 1, 3] = matrices[:, 3, 1] = 1.0 + rng.normal(size=n_sub) * 0.3
    labels = [f"r{i}" for i in range(n)]
    ones = pd.DataFrame({"intercept": np.ones(n_sub)})
    result = edge_glm(matrices, ones, np.array([1.0]), _inference(), labels, name="mean")
    i, j = np.triu_indices(n, 1)
    t, p = stats.ttest_1samp(matrices[:, i, j], 0.0)
    assert np.allclose(result.t[i, j], t) and np.allclose(result.p[i, j], p)
    assert result.table[["label_i", "label_j"]].values.tolist() == [["r1", "r3"]]
    age = rng.uniform(20, 60, n_sub)
    matrices[:, 0, 4] = matrices[:, 4, 0] = 0.05 * age + rng.normal(size=n_sub) * 0.3
    design = pd.DataFrame({"intercept": np.ones(n_sub), "age": age - age.mean()})
    result = edge_glm(matrices, design, np.array([0.0, 1.0]), _inference(), labels, name="age")
    slope = stats.linregress(age, matrices[:, 0, 4])
    assert np.isclose(result.t[0, 4], slope.slope / slope.stderr)
    assert np.isclose(result.p[0, 4], slope.pvalue)
    assert [tuple(r) for r in result.table[["node_i", "node_j"]].values] == [(1, 5)]


def test_edge_glm_refuses_f_contrasts_and_no_dof():
    from glmflow.core.rest.group import edge_glm
    from glmflow.errors import GroupModelError

    matrices = np.ones((2, 3, 3))
    design = pd.DataFrame({"a": [1.0, 0.0], "b": [0.0, 1.0]})
    with pytest.raises(GroupModelError, match=r"^Contrast 'f' is an F contrast; edge-wise"):
        edge_glm(matrices, design, np.eye(2), _inference(), list("xyz"), name="f")
    with pytest.raises(GroupModelError, match=r"^Contrast 'd': 2 subjects for 2 design columns"):
        edge_glm(matrices, design, np.array([1.0, -1.0]), _inference(), list("xyz"), name="d")


def test_coordinates_outside_every_mask_are_dropped_when_asked(rest_ds, tmp_path):
    from glmflow.core.bids import discover_runs
    from glmflow.core.rest.plan import check_rest_runs

    runs = discover_runs(rest_ds, tasks=["rest"], participant_label=["01"], need_events=False)
    coordinates = {"coordinates": [[0, -18, 18], [90, 90, 90], [10, -10, 10]], "radius": 6,
                   "names": ["centre", "far", "near"], "missing_labels": "drop"}  # fmt: skip
    spec = _model(rest_ds, atlas=coordinates)
    with pytest.warns(UserWarning, match=r"1 label\(s\) with no voxel .*: 2 \(far\)$"):
        kept = check_rest_runs(runs, spec)
    assert kept.atlas.exclude_labels == (2,)
    result = connectivity_run_files(**_run_files(rest_ds, "01"), spec=kept, out_dir=tmp_path)
    assert list(pd.read_csv(result["timeseries"], sep="\t").columns) == ["centre", "near"]
