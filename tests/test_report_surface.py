"""Report pages of the surface group level (issue 12): one page per surface group model,
rendered by ``glmflow ... group --space fsLR --den 91k`` / ``--space fsaverage5`` as the
volume group level renders its own, the maps drawn on the mesh and checked in Chromium.

The subject maps are tests/test_surface_group_level.py's: written by the participant level's
own writer for 6 subjects, an effect planted at the first 40 cortex vertices of the left
hemisphere (no first level fitted).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_report_browser import _check_page, driver  # noqa: F401  (the Chromium fixture)
from test_surface_group_level import PLANTED, _group, study  # noqa: F401  (subject maps)

from glmflow.core.report.group import GROUP_SECTIONS

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Using large vector Freesurfer hack")]  # fmt: skip

PAGES = {
    "fsLR": "group_task-faces_space-fsLR_den-91k_contrast-faceMinusHouse.html",
    "fsaverage5": "group_task-faces_space-fsaverage5_contrast-faceMinusHouse.html",
}


@pytest.fixture(scope="module")
def pages(study):  # noqa: F811  (the imported fixture)
    """Both surface group levels run from the command line (fdr) into one output folder."""
    out = study["root"] / "reports"
    shutil.copytree(study["out"], out)
    for space, den in (("fsLR", ("--den", "91k")), ("fsaverage5", ())):
        assert _group(study, out, space, *den) == 0
    return {"study": study, "out": out, "glmflow": out / "glmflow"}


def _section(page: Path, section_id: str) -> str:
    return page.read_text().split(f'<section id="{section_id}">')[1].split("</section>")[0]


def _pictures(section: str) -> list[np.ndarray]:
    from PIL import Image

    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', section)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(u)))) for u in uris]


def test_fslr_group_page_draws_each_map_on_the_mesh(pages):
    glm = pages["glmflow"]
    page = glm / PAGES["fsLR"]
    stem = "task-faces_space-fsLR_den-91k_contrast-faceMinusHouse_stat-z_"
    sidecar = json.loads((glm / f"{stem}desc-fdr_statmap.json").read_text())
    fdr = np.asarray(nib.load(glm / f"{stem}desc-fdr_statmap.dscalar.nii").dataobj)[0]
    n_cortex = {"L": 29696, "R": 29716}
    left, right = fdr[: n_cortex["L"]], fdr[n_cortex["L"] : n_cortex["L"] + n_cortex["R"]]
    assert np.count_nonzero(left[:PLANTED]) > 0.75 * PLANTED  # the planted vertices found
    section = _section(page, "group-contrast-faceMinusHouse")
    assert section.count("<img ") == 2  # the unthresholded z and the fdr map
    assert ("<h4>Unthresholded z</h4>\n<p>Shown: 29696 of 29696 left cortex vertices and 29716 "
            "of 29716 right cortex vertices. The 31870 subcortical voxels are not drawn (31870 "
            "of them with data).</p>") in section  # fmt: skip
    assert (f"<h4>Inference fdr</h4>\n<p>fdr at alpha 0.05 (z threshold "
            f"{sidecar['Threshold']:.3g}); two-sided; 0 element(s) left out. Shown: "
            f"{np.count_nonzero(left)} of 29696 left cortex vertices and "
            f"{np.count_nonzero(right)} of 29716 right cortex vertices. The 31870 subcortical "
            f"voxels are not drawn ({np.count_nonzero(fdr[59412:])} of them pass the "
            "threshold).</p>") in section  # fmt: skip
    assert "The surface group level writes no cluster table." in section
    red = [(p[..., 0] > 150) & (p[..., 1] < 80) for p in _pictures(section)][1]
    quarter = red.shape[1] // 4
    counts = [int(red[:, k * quarter : (k + 1) * quarter].sum()) for k in range(4)]
    assert counts[0] + counts[1] > 20 and counts[2] + counts[3] == 0  # the left only
    methods = _section(page, "methods")
    assert "one-sample group design" in methods and "false discovery rate" in methods.lower()
    assert "ordinary least squares on the fsLR 91k vertices (glmflow&#x27;s surface" in methods
    assert "Subjects (6)" in page.read_text()
    # the design is the surface level's own (task-faces_space-fsLR_den-91k_design.tsv)
    assert (glm / "task-faces_space-fsLR_den-91k_design.tsv").is_file()
    assert _section(page, "design").count('<td class="text">sub-0') == 6
    assert "No warnings." in _section(page, "warnings")
    links = re.findall(r'<a href="([^"]+)"', (glm / "index.html").read_text())
    assert sorted(links) == sorted(PAGES.values())


def test_fsaverage5_group_page_gathers_both_hemispheres(pages):
    glm = pages["glmflow"]
    stem = "task-faces_hemi-{}_space-fsaverage5_contrast-faceMinusHouse_stat-z_desc-fdr_statmap"
    fdr = {h: nib.load(glm / f"{stem.format(h)}.func.gii").darrays[0].data for h in "LR"}
    section = _section(glm / PAGES["fsaverage5"], "group-contrast-faceMinusHouse")
    assert section.count("<img ") == 2
    assert (f"Shown: {np.count_nonzero(fdr['L'])} of 10242 left vertices and "
            f"{np.count_nonzero(fdr['R'])} of 10242 right vertices.") in section  # fmt: skip
    assert np.count_nonzero(fdr["L"]) >= PLANTED and "subcortical" not in section


def test_no_change_rerun_renders_no_surface_page(pages):
    glm = pages["glmflow"]
    before = {p.name: p.stat().st_mtime_ns for p in glm.glob("*.html")}
    assert _group(pages["study"], pages["out"], "fsaverage5") == 0  # its stamp: nothing run
    assert {p.name: p.stat().st_mtime_ns for p in glm.glob("*.html")} == before


def test_surface_group_pages_in_chromium(driver, pages):  # noqa: F811
    for page in PAGES.values():
        _check_page(driver, pages["glmflow"] / page, GROUP_SECTIONS)


def test_a_cortex_only_cifti_map_is_placed_on_both_hemispheres(tmp_path):
    """Its last structure (CortexRight) ends the axis: nibabel's slice of it has no stop."""
    from glmflow.core.report.surfaces import read_surface
    from glmflow.core.surface.meshes import fslr_cortex_vertices
    from glmflow.data.surface import brain_models

    path = tmp_path / "cortex.dscalar.nii"
    values = np.arange(1, 59413, dtype=np.float32)
    nib.save(nib.Cifti2Image(values[None], header=(nib.cifti2.ScalarAxis(["z"]),
                                                   brain_models()[:59412])), path)  # fmt: skip
    smap = read_surface({"cifti": str(path)})
    assert smap.n_subcortical == 0 and list(smap.cortex) == ["L", "R"]
    positions, vertices = smap.cortex["R"]
    assert positions.tolist() == list(range(29696, 59412))
    assert np.array_equal(vertices, fslr_cortex_vertices("R"))


def _patch(adjacency, seed: int, size: int) -> list[int]:
    """``size`` vertices connected on the mesh, grown from ``seed`` breadth first."""
    patch = [seed]
    for vertex in patch:
        patch += [int(v) for v in adjacency[vertex].indices if v not in patch]
        if len(patch) >= size:
            return sorted(patch[:size])
    raise AssertionError("the mesh is smaller than the patch")


def test_a_subject_surface_map_keeps_the_models_cluster_extent_on_the_mesh(tmp_path):
    """z > 3.09 with clusters of at least 10 vertices: a patch of 20 connected vertices
    stays, a patch of 4 and an isolated vertex on the other hemisphere go."""
    from glmflow.core.model import InferenceSpec
    from glmflow.core.report.surfaces import read_surface, threshold_surface
    from glmflow.core.surface.meshes import fsaverage5_mesh, hemisphere_adjacency

    coords, adjacency = fsaverage5_mesh("L")[0], hemisphere_adjacency("fsaverage5", "L")
    big = _patch(adjacency, 0, 20)
    z = {"L": np.zeros(10242), "R": np.full(10242, 0.5)}
    z["L"][big] = 5.0
    z["L"][_patch(adjacency, int(np.argmax(np.linalg.norm(coords - coords[0], axis=1))), 4)] = -5
    z["R"][7] = 6.0
    parts = {}
    for hemi, values in z.items():
        parts[hemi] = str(tmp_path / f"hemi-{hemi}_space-fsaverage5_z.func.gii")
        nib.save(nib.GiftiImage(darrays=[nib.gifti.GiftiDataArray(values.astype(np.float32))]),
                 parts[hemi])  # fmt: skip
    spec = InferenceSpec(method="threshold", z_threshold=3.09, cluster_threshold=10)
    shown, setting = threshold_surface(read_surface(parts), spec)
    assert np.flatnonzero(shown).tolist() == big
    assert setting == "z > 3.09, clusters of at least 10 vertices on the mesh (z threshold 3.09)"
