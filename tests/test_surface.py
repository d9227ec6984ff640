"""Surfaces and CIFTI (issue 12): generator, discovery, bad inputs, parity with nilearn,
the first level end to end.

Parity tolerances: fsaverage5 run maps against nilearn's ``FirstLevelModel`` on the same
``SurfaceImage`` (both hemispheres), max |dz| < 1e-3 (the issue's bar; measured 0 and
2e-15: the engine is nilearn's arithmetic, on float64 data as nilearn's SurfaceMasker
gives); CIFTI against nilearn's public ``run_glm`` / ``compute_contrast`` on the same
(percent-signal-change scaled) matrix, same bar.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from glmflow.core.contrasts import compute_contrast
from glmflow.core.glm import fit_glm
from glmflow.core.surface.discover import discover_surface_runs
from glmflow.core.surface.io import read_surface_bold
from glmflow.errors import DatasetError, ModelSpecError

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models" / "faces_model.json"
FUNC = Path("derivatives", "fmriprep", "sub-01", "func")
CIFTI_RUN = FUNC / "sub-01_task-faces_run-1_space-fsLR_den-91k_bold.dtseries.nii"


def gifti_run(hemi: str, run: int = 1) -> Path:
    return FUNC / f"sub-01_task-faces_run-{run}_hemi-{hemi}_space-fsaverage5_bold.func.gii"


@pytest.fixture(scope="module")
def surface_ds(tmp_path_factory) -> Path:
    """2 subjects x 2 runs x 60 volumes, volume runs plus fsaverage5 and fsLR 91k."""
    from glmflow.data import make_synthetic_dataset
    from glmflow.data.surface import add_surface_runs

    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("surface") / "bids", n_subjects=2, n_runs=2, n_volumes=60
    )
    add_surface_runs(root)
    return root


def copy_ds(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.dtseries.nii"))
    return dst


def test_generator_writes_fmriprep_surface_files(surface_ds):
    axis = nib.load(surface_ds / CIFTI_RUN).header.get_axis(1)
    counts = {str(name): len(sub) for name, _, sub in axis.iter_structures()}
    assert len(axis) == 91282
    assert counts["CIFTI_STRUCTURE_CORTEX_LEFT"] == 29696
    assert counts["CIFTI_STRUCTURE_CORTEX_RIGHT"] == 29716
    assert sum(counts.values()) - 29696 - 29716 == 31870
    assert len(counts) == 21  # two cortices, 19 subcortical structures
    assert nib.load(surface_ds / CIFTI_RUN).shape == (60, 91282)
    left = nib.load(surface_ds / gifti_run("L"))
    assert len(left.darrays) == 60 and left.darrays[0].data.shape == (10242,)
    sidecar = json.loads(
        (surface_ds / gifti_run("L")).with_suffix("").with_suffix(".json").read_text()
    )
    assert sidecar["RepetitionTime"] == 2.0
    truth = json.loads((surface_ds / "derivatives" / "truth" / "surface.json").read_text())
    assert len(truth["spaces"]["fsaverage5"]["face"]["L"]) == 60
    assert len(truth["spaces"]["fsLR"]["face"]["cifti"]) == 181 + 315  # cortex + amygdala


def test_discovery_pairs_hemispheres_and_picks_cifti(surface_ds):
    runs = discover_surface_runs(surface_ds, space="fsaverage5")
    assert len(runs) == 4
    assert set(runs[0].parts) == {"L", "R"}
    assert runs[0].inputs.entities == {
        "subject": "01",
        "task": "faces",
        "run": "1",
        "space": "fsaverage5",
    }
    assert runs[0].inputs.tr == 2.0 and runs[0].inputs.n_volumes == 60
    assert runs[0].inputs.confounds.endswith("run-1_desc-confounds_timeseries.tsv")
    cifti = discover_surface_runs(surface_ds, space="fsLR", den="91k")
    assert [Path(r.parts["cifti"]).name for r in cifti[:1]] == [CIFTI_RUN.name]
    assert cifti[0].inputs.entities["den"] == "91k"


def test_surface_runs_are_recalled_from_the_stored_index(surface_ds, tmp_path, caplog):
    """With a database folder the surface runs found are recalled while the dataset is
    unchanged (GIFTI and CIFTI apart), equal to a search's."""
    import logging

    db = tmp_path / "db"
    for space, den in (("fsaverage5", None), ("fsLR", "91k")):
        runs = discover_surface_runs(surface_ds, space=space, den=den)  # no index: a search
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="glmflow.core.bids"):
            first = discover_surface_runs(surface_ds, space=space, den=den, database_dir=db)
            again = discover_surface_runs(surface_ds, space=space, den=den, database_dir=db)
        assert first == again == runs
        assert caplog.messages[-1].startswith("Reusing the runs found in the BIDS index in ")
    (index,) = db.iterdir()
    assert len(list(index.glob("runs-*.json"))) == 2


def test_missing_hemisphere_is_one_line(surface_ds, tmp_path):
    root = copy_ds(surface_ds, tmp_path / "bids")
    (root / gifti_run("R", 2)).unlink()
    left = root / gifti_run("L", 2)
    with pytest.raises(DatasetError) as err:
        discover_surface_runs(root, space="fsaverage5")
    assert str(err.value) == (
        f"Surface run {left} has no hemi-R partner: expected {gifti_run('R', 2).name} in "
        f"{left.parent}; both hemispheres are modelled (add it, or leave the run out with "
        "--run / excludes)"
    )


def _write_gifti(path: Path, data: np.ndarray) -> None:
    arrays = [nib.gifti.GiftiDataArray(row.astype(np.float32)) for row in data]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), path)


def test_vertex_count_not_the_mesh_is_one_line(surface_ds, tmp_path):
    root = copy_ds(surface_ds, tmp_path / "bids")
    bad = root / gifti_run("L")
    _write_gifti(bad, np.ones((60, 2562)))
    with pytest.raises(DatasetError) as err:
        discover_surface_runs(root, space="fsaverage5")
    assert str(err.value) == (
        f"GIFTI {bad} has 2562 vertices; the fsaverage5 mesh has 10242 per hemisphere: the "
        "file is not on fsaverage5 (check its space-)"
    )


def test_hemispheres_with_different_volume_counts_is_one_line(surface_ds, tmp_path):
    root = copy_ds(surface_ds, tmp_path / "bids")
    right = root / gifti_run("R")
    _write_gifti(right, np.ones((59, 10242)))
    with pytest.raises(DatasetError) as err:
        discover_surface_runs(root, space="fsaverage5")
    assert str(err.value) == (
        f"Hemispheres of one run have different volume counts: {root / gifti_run('L')} has 60, "
        f"{right} has 59; rerun fMRIPrep's surface sampling of this run"
    )


def test_cifti_without_brain_model_axis_is_one_line(surface_ds, tmp_path):
    root = copy_ds(surface_ds, tmp_path / "bids")
    bad = root / CIFTI_RUN
    axes = (nib.cifti2.SeriesAxis(0, 2.0, 60), nib.cifti2.ScalarAxis([f"c{i}" for i in range(5)]))
    nib.save(nib.Cifti2Image(np.zeros((60, 5), np.float32), header=axes), bad)
    with pytest.raises(DatasetError) as err:
        discover_surface_runs(root, space="fsLR", den="91k")
    assert str(err.value) == (
        f"CIFTI {bad} has axes (SeriesAxis, ScalarAxis); expected (SeriesAxis, "
        "BrainModelAxis): a dense time series whose columns are grayordinates (fMRIPrep "
        "--cifti-output)"
    )


def _design(root: Path, n: int = 60, tr: float = 2.0) -> pd.DataFrame:
    """nilearn's design of run 1 (events, six motion confounds, cosine drift)."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    events = pd.read_csv(root / "sub-01" / "func" / "sub-01_task-faces_run-1_events.tsv", sep="\t")
    events = events[events["trial_type"] != "fixation"][["onset", "duration", "trial_type"]]
    confounds = pd.read_csv(
        root / FUNC / "sub-01_task-faces_run-1_desc-confounds_timeseries.tsv", sep="\t"
    )
    motion = confounds[["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]]
    times = (np.arange(n) + 0.5) * tr
    return make_first_level_design_matrix(times, events, hrf_model="spm", add_regs=motion)


def _our_z(data: np.ndarray, design: pd.DataFrame, contrast: str) -> np.ndarray:
    fit = fit_glm(data, design, noise_model="ar1", signal_scaling=0)
    return compute_contrast(fit, {"name": "c", "expressions": [contrast], "stat_type": "t"})["z"]


def test_fsaverage5_run_maps_equal_nilearn_first_level_model(surface_ds):
    from nilearn.datasets import load_fsaverage
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.surface import SurfaceImage

    design = _design(surface_ds)
    paths = {hemi: surface_ds / gifti_run(hemi) for hemi in ("L", "R")}
    img = SurfaceImage(
        mesh=load_fsaverage("fsaverage5")["pial"],
        data={"left": str(paths["L"]), "right": str(paths["R"])},
    )
    model = FirstLevelModel(t_r=2.0, noise_model="ar1", signal_scaling=0, minimize_memory=True)
    theirs = model.fit(img, design_matrices=design).compute_contrast("face - house")
    for hemi, part in (("L", "left"), ("R", "right")):
        ours = _our_z(read_surface_bold(paths[hemi]).data, design, "face - house")
        reference = np.asarray(theirs.data.parts[part]).ravel()
        assert np.abs(ours - reference).max() < 1e-3


def test_cifti_run_maps_equal_nilearn_run_glm(surface_ds):
    from nilearn.glm.contrasts import compute_contrast as nilearn_contrast
    from nilearn.glm.first_level import run_glm

    design = _design(surface_ds)
    data = read_surface_bold(surface_ds / CIFTI_RUN).data
    assert data.shape == (60, 91282)
    ours = _our_z(data, design, "face - house")
    mean = data.mean(axis=0)
    scaled = 100 * (data / mean - 1)  # nilearn's percent signal change (signal_scaling=0)
    labels, results = run_glm(scaled, design.to_numpy(), noise_model="ar1")
    weights = (design.columns == "face") * 1.0 - (design.columns == "house") * 1.0
    reference = nilearn_contrast(labels, results, weights, stat_type="t").z_score()
    assert np.abs(ours - reference).max() < 1e-3


def test_cifti_read_is_nibabels_data_and_leaves_out_bad_grayordinates(surface_ds, tmp_path):
    """The block-transposed read equals nibabel's get_fdata; a NaN, an inf or a constant
    series (one value each) leaves exactly that grayordinate out, with a warning."""
    from glmflow.core.bold import ExcludedVoxelsWarning

    img = nib.load(surface_ds / CIFTI_RUN)
    expected = img.get_fdata()
    assert np.array_equal(read_surface_bold(surface_ds / CIFTI_RUN).data, expected)
    bad = expected.copy()
    bad[17, 3], bad[0, 40000], bad[:, 91281] = np.nan, -np.inf, 5.0
    path = tmp_path / CIFTI_RUN.name
    nib.save(nib.Cifti2Image(bad.astype(np.float32), header=img.header), path)
    with pytest.warns(
        ExcludedVoxelsWarning,
        match=r"3 of the 91282 vertices .* \(2 with "
        r"NaN/inf values, 1 constant\); left out",
    ):
        bold = read_surface_bold(path)
    assert np.flatnonzero(~bold.kept).tolist() == [3, 40000, 91281]
    assert np.array_equal(bold.data, np.delete(expected, [3, 40000, 91281], axis=1))


def _gii(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).darrays[0].data)


@pytest.mark.slow
def test_volume_and_fsaverage5_in_one_invocation(surface_ds, tmp_path, capsys):
    """`--space MNI152NLin2009cAsym fsaverage5`: both analyses, BIDS names, planted effects."""
    from glmflow.cli.main import main

    out = tmp_path / "out"
    args = [str(surface_ds), str(out), "participant", "--model", str(MODEL), "--space",
            "MNI152NLin2009cAsym", "fsaverage5", "--smoothing-fwhm", "0",
            "--participant-label", "01", "-w", str(tmp_path / "work"), "-q",
            "--n-cpus", "2"]  # fmt: skip
    code = main(args)
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("glmflow: 2 run(s) of 1 subject(s) done in ")
    assert lines[1].startswith("glmflow: 2 fsaverage5 run(s) of 1 subject(s) done in ")
    func = out / "glmflow" / "sub-01" / "func"
    stem = "sub-01_task-faces_hemi-{}_space-fsaverage5_contrast-faceMinusHouse_stat-{}_statmap"
    assert (
        func
        / (
            "sub-01_task-faces_space-MNI152NLin2009cAsym_contrast-faceMinusHouse_"
            "stat-z_statmap.nii.gz"
        )
    ).is_file()
    for hemi in ("L", "R"):
        for stat in ("effect", "variance", "t", "p", "z"):
            assert (func / (stem.format(hemi, stat) + ".func.gii")).is_file()
        run = func / (
            "sub-01_task-faces_run-1_hemi-" + hemi + "_space-fsaverage5_contrast-"
            "effectsMinusOfMinusInterest_stat-F_statmap.func.gii"
        )
        assert run.is_file()
    # no hemi- on the design; the surface level's design is its own, beside the volume's
    assert (func / "sub-01_task-faces_run-1_design.tsv").is_file()
    assert (func / "sub-01_task-faces_run-1_space-fsaverage5_design.tsv").is_file()
    sidecar = json.loads((func / (stem.format("L", "z") + ".json")).read_text())
    assert sidecar["Level"] == "subject" and sidecar["Statistic"] == "z"
    assert sidecar["Contrast"]["Runs"] == ["run_1", "run_2"]
    assert sidecar["Contrast"]["DegreesOfFreedom"] > 60
    truth = json.loads((surface_ds / "derivatives" / "truth" / "surface.json").read_text())
    face = truth["spaces"]["fsaverage5"]["face"]["L"]
    house = truth["spaces"]["fsaverage5"]["house"]["R"]
    z_left, z_right = (_gii(func / (stem.format(h, "z") + ".func.gii")) for h in ("L", "R"))
    null = np.delete(z_left, face)
    assert z_left[face].mean() > 1.0 and z_right[house].mean() < -1.0
    # null vertices: centred, few beyond |z| 3.29 (p 0.001 two-sided). Their spread is 1.26,
    # not 1: nilearn's AR(1) estimate is biased low on 60-volume runs with ~25 design
    # columns (the same number from nilearn: the parity tests above), so z is inflated
    assert abs(np.median(null)) < 0.1
    assert (np.abs(null) > 3.29).mean() < 0.02
    # the subject page, made once both levels have written, shows both spaces' maps
    page = (out / "glmflow" / "sub-01.html").read_text()
    assert (
        page.count(">Contrast face-house<")
        == page.count(">Contrast face-house (fsaverage5)<")
        == 1
    )
    # nothing changed: both levels are recalled from their stamps, no level graph is built
    # (the two levels wrote one shared design before, so neither stamp matched again)
    assert main([a for a in args if a != "-q"]) == 0
    again = capsys.readouterr()
    assert "glmflow_wf:" not in again.out + again.err
    assert "glmflow_fsaverage5_wf:" not in again.out + again.err
    assert "reports_wf: 2/2 done (2 cached)" in again.err  # the pages: cached, not drawn


@pytest.mark.slow
def test_cifti_run_level_writes_dscalar_with_scalar_names(surface_ds, tmp_path):
    from glmflow.runners.surface import run_surface_level

    result = run_surface_level(
        bids_dir=surface_ds,
        output_dir=tmp_path / "out",
        model=MODEL,
        space="fsLR",
        den="91k",
        smoothing_fwhm=0,
        participant_label=["01"],
        work_dir=tmp_path / "work",
    )
    func = tmp_path / "out" / "glmflow" / "sub-01" / "func"
    path = (
        func
        / "sub-01_task-faces_space-fsLR_den-91k_contrast-faceMinusHouse_stat-z_statmap.dscalar.nii"
    )
    assert path in result.files
    img = nib.load(path)
    assert img.header.get_axis(0).name.tolist() == ["face-house z"]
    assert len(img.header.get_axis(1)) == 91282
    assert img.nifti_header.get_intent()[0] == "ConnDenseScalar"
    truth = json.loads((surface_ds / "derivatives" / "truth" / "surface.json").read_text())
    z = np.asarray(img.dataobj)[0]
    assert z[truth["spaces"]["fsLR"]["face"]["cifti"]].mean() > 1.0
    assert z[truth["spaces"]["fsLR"]["house"]["cifti"]].mean() < -1.0
    # a rerun that nothing touched is the stamp's (execution/unchanged.py), same files
    from glmflow.execution.unchanged import RecalledSequence

    again = run_surface_level(bids_dir=surface_ds, output_dir=tmp_path / "out", model=MODEL,
                              space="fsLR", den="91k", smoothing_fwhm=0,
                              participant_label=["01"], work_dir=tmp_path / "work")  # fmt: skip
    assert isinstance(again.analyses, RecalledSequence)
    assert again.files == result.files and again.summary == result.summary
    assert again.analyses[0].runs == result.analyses[0].runs


def test_smoothing_without_an_offline_mesh_is_refused(surface_ds):
    """Surfaces are smoothed on their mesh (tests/test_surface_smooth.py); a space whose mesh
    glmflow does not ship offline is refused in one line, before discovery."""
    from glmflow.runners.surface import plan_surface_level

    (analysis,) = plan_surface_level(bids_dir=surface_ds, model=MODEL, space="fsaverage5",
                                     participant_label=["01"])  # fmt: skip
    assert analysis.spec.glm.smoothing_fwhm == 6 and len(analysis.runs) == 2
    with pytest.raises(ModelSpecError) as err:
        plan_surface_level(bids_dir=surface_ds, model=MODEL, space="fsaverage6")
    assert str(err.value) == (
        f"smoothing_fwhm=6 in {MODEL} cannot be applied on surface space fsaverage6: glmflow "
        "smooths on the meshes it ships offline (fsaverage5, fsLR); set it to 0 / "
        "--smoothing-fwhm 0, or smooth the data beforehand (e.g. mri_surf2surf --fwhm)"
    )


def test_dscalar_maps_carry_the_runs_brain_models(surface_ds, tmp_path):
    """The fast writer (the source's XML, its series map made a scalar map) gives nibabel's
    axes: the run's BrainModelAxis and a ScalarAxis with the map's name; F effects (rows)
    go through nibabel's own writer."""
    from glmflow.core.surface.io import brain_model_axis, read_surface_map, save_surface_map

    source = str(surface_ds / CIFTI_RUN)
    values = np.arange(91282, dtype=np.float32)
    path = save_surface_map(values, source, tmp_path / "a.dscalar.nii", "face & <house> z")
    again = save_surface_map(values, str(path), tmp_path / "b.dscalar.nii", "copy")
    rows = save_surface_map(np.stack([values, -values]), source, tmp_path / "c.dscalar.nii", "F")
    for written, names in (
        (path, ["face & <house> z"]),
        (again, ["copy"]),
        (rows, ["F_0", "F_1"]),
    ):
        img = nib.load(written)
        assert img.header.get_axis(0).name.tolist() == names
        assert img.header.get_axis(1) == brain_model_axis(source)
        assert img.nifti_header.get_intent()[0] == "ConnDenseScalar"
    assert np.array_equal(read_surface_map(path), values)
    assert np.array_equal(read_surface_map(rows)[1], -values)


def test_surface_run_design_is_the_volume_levels_design_node(surface_ds, tmp_path):
    """The surface run builds its design in run_level.py's BuildRunDesign (review s18
    item 10), with the same files as the three nodes it replaced."""
    from nipype.pipeline import engine as pe

    from glmflow.core.model import load_model
    from glmflow.interfaces.confounds import SelectConfounds
    from glmflow.interfaces.design import BuildDesignMatrix
    from glmflow.interfaces.events import ParseEvents
    from glmflow.interfaces.run_design import BuildRunDesign
    from glmflow.workflows.run_level import set_options
    from glmflow.workflows.surface import init_surface_run_wf

    spec = load_model(MODEL)
    wf = init_surface_run_wf(spec=spec, contrasts=spec.contrasts, parts=("L", "R"), mem_gb=1)
    assert isinstance(wf.get_node("build_design").interface, BuildRunDesign)
    assert {"parse_events", "select_confounds", "design_files"}.isdisjoint(wf.list_node_names())
    run = discover_surface_runs(surface_ds, space="fsaverage5")[0].inputs
    given = {"n_volumes": run.n_volumes, "tr": run.tr, "slice_time_ref": run.slice_time_ref}
    node = wf.get_node("build_design")
    node.base_dir = str(tmp_path / "new")
    for name, value in {**given, "events_file": str(run.events), "bold_file": str(run.bold),
                        "confounds_file": str(run.confounds)}.items():  # fmt: skip
        setattr(node.inputs, name, value)
    new = node.run().outputs

    def outputs(interface, name):
        return pe.Node(interface, name=name, base_dir=str(tmp_path / "old")).run().outputs

    events = outputs(ParseEvents(**set_options(spec.events.to_dict()),
                                 events_file=str(run.events), n_volumes=run.n_volumes,
                                 tr=run.tr), "events")  # fmt: skip
    confounds = outputs(SelectConfounds(**set_options(spec.confounds.to_dict()),
                                        confounds_file=str(run.confounds),
                                        bold_file=str(run.bold)), "confounds")  # fmt: skip
    old = outputs(BuildDesignMatrix(**set_options(spec.design.to_dict()), plot=False,
                                    events_file=events.events_file,
                                    confounds_file=confounds.confounds_file, **given),
                  "design")  # fmt: skip
    for key in ("design_file", "sidecar_file"):
        assert Path(getattr(new, key)).read_text() == Path(getattr(old, key)).read_text()
    assert Path(new.sample_mask_file).read_text() == Path(confounds.sample_mask_file).read_text()
    assert [Path(f).name for f in new.design_files] == ["design.tsv", "design.json", "design.svg"]
