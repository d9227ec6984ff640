"""Generative model of the synthetic dataset: events, regressors, motion and BOLD signal.

Everything here is deterministic given a :class:`numpy.random.Generator`; the constants are
the ground truth and are copied verbatim into ``derivatives/truth/truth.json``.

Signal of an in-brain voxel ``v`` at frame ``t`` (all effects in percent of the baseline
``B(v)``, so a GLM on percent-signal-change data recovers the betas)::

    y = B * (1 + (sum_k beta_k x_k(t) + drift + motion + physio + noise) / 100)
        + B * nss_boost(t)

``x_k`` are the SPM-HRF regressors of :data:`REGRESSORS` sampled at the slice-time-corrected
frame times ``(i + 0.5) * TR``; ``noise`` is AR(1). Outside the brain the image is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from nilearn.glm.first_level import compute_regressor

from glmflow.data._anatomy import Anatomy

CONDITIONS = ("face", "house", "scrambled")
#: Generative regressors: the three conditions, face trials modulated by mean-centred RT,
#: and every stimulus trial of a "high" block (the block effect).
REGRESSORS = (*CONDITIONS, "rt", "highblock")
#: True betas (percent signal change per unit regressor; rt: per second of RT).
#: The face beta of the "group" region is subject-specific (see GROUP_EFFECT).
REGION_BETAS = {
    "face": {"face": 2.0, "house": 0.5, "scrambled": 0.5},
    "house": {"face": 0.5, "house": 2.0, "scrambled": 0.5},
    "both": {"face": 1.5, "house": 1.5, "scrambled": 0.5},
    "rt": {"face": 1.0, "house": 0.5, "scrambled": 0.5, "rt": 4.0},
    "block": {"face": 1.0, "house": 1.0, "scrambled": 1.0, "highblock": 1.5},
    "group": {"house": 0.5, "scrambled": 0.5},
    "null": {},
}
#: Face beta in the group region: mean + diff * (+1/2 patient, -1/2 control)
#: + age_slope * (age - sample mean age) + N(0, between_subject_sd).
GROUP_EFFECT = {
    "mean": 1.5,
    "patient_minus_control": -1.0,
    "age_slope_per_year": -0.03,
    "between_subject_sd": 0.2,
}
NOISE = {"sd_psc": 0.5, "edge_gain": 0.5, "ar_phi": 0.3}  # sd = sd_psc*(1+edge_gain*rho^2)
NSS_BOOST = (0.3, 0.1)  # extra fraction of baseline in the leading non-steady-state frames
DRIFT_MAX_PSC = 2.0  # linear and half-cosine drift amplitudes ~ U(-max, max) per run
#: Motion-related signal, percent per mm (translations) or per radian (rotations),
#: applied to the run-demeaned parameters.
MOTION_PSC = {
    "trans_x": 0.6,
    "trans_y": -0.4,
    "trans_z": 0.8,
    "rot_x": 20.0,
    "rot_y": -15.0,
    "rot_z": 10.0,
}
PHYSIO_SD_PSC = {"csf": 1.0, "wm": 0.4, "other": 0.1}  # two shared physiological sources
STIM_DURATION = 1.0
TRIALS_PER_BLOCK = 9
END_MARGIN = 12.0  # seconds left after the last trial onset so its response is sampled


def make_events(rng: np.random.Generator, n_volumes: int, tr: float) -> pd.DataFrame:
    """Event-related faces task in alternating high/low blocks separated by fixation.

    Stimulus trials last 1 s with a jittered 1-3 s gap; each block of up to 9 trials is
    condition-balanced; fixation rows (rt and block_type n/a) fill the gaps between blocks.
    Onsets, durations and reaction times are rounded to the millisecond as written.
    """
    run_end = n_volumes * tr
    rows = []
    block = str(rng.choice(["high", "low"]))
    t = 0.0
    done = False
    while not done:
        fixation = rng.uniform(6.0, 10.0)
        if t + fixation + END_MARGIN > run_end:
            break
        rows.append((t, fixation, "fixation", np.nan, "n/a"))
        t += fixation
        conditions = rng.permutation(np.repeat(CONDITIONS, TRIALS_PER_BLOCK // 3))
        for condition in conditions:
            if t + END_MARGIN > run_end:
                done = True
                break
            rt = np.clip(rng.lognormal(np.log(0.7), 0.35), 0.3, 2.0)
            rows.append((t, STIM_DURATION, str(condition), rt, block))
            t += STIM_DURATION + rng.uniform(1.0, 3.0)
        block = "low" if block == "high" else "high"
    last_end = max(o + d for o, d, *_ in rows) if rows else 0.0
    rows.append((last_end, run_end - last_end, "fixation", np.nan, "n/a"))
    events = pd.DataFrame(rows, columns=["onset", "duration", "trial_type", "rt", "block_type"])
    return events.round({"onset": 3, "duration": 3, "rt": 3})


def frame_times(n_volumes: int, tr: float, start_time: float) -> np.ndarray:
    """Acquisition times after slice-timing correction to ``start_time`` (nilearn convention)."""
    return (np.arange(n_volumes) + start_time / tr) * tr


def make_regressors(events: pd.DataFrame, times: np.ndarray) -> pd.DataFrame:
    """The generative regressors (SPM HRF, nilearn's oversampling) of one run."""
    stim = events[events["trial_type"] != "fixation"]
    face = stim[stim["trial_type"] == "face"]
    high = stim[stim["block_type"] == "high"]
    parts = {c: (stim[stim["trial_type"] == c], None) for c in CONDITIONS}
    # SPM-style parametric modulator: centred within the run so it is orthogonal-ish to face
    parts["rt"] = (face, face["rt"] - face["rt"].mean())
    parts["highblock"] = (high, None)
    columns = {}
    for name, (rows, amplitude) in parts.items():
        if rows.empty:
            columns[name] = np.zeros(len(times))
            continue
        amp = np.ones(len(rows)) if amplitude is None else amplitude.to_numpy()
        condition = (rows["onset"].to_numpy(), rows["duration"].to_numpy(), amp)
        columns[name] = compute_regressor(condition, "spm", times, con_id=name)[0][:, 0]
    return pd.DataFrame(columns, index=times)


def make_motion(
    rng: np.random.Generator, n_volumes: int, n_nss: int
) -> tuple[np.ndarray, list[int]]:
    """Six rigid-body parameters (mm, rad): a random walk plus one or two abrupt jerks.

    Returns the (n_volumes, 6) parameters and the frames where a jerk starts.
    """
    steps = np.concatenate(
        [rng.normal(0, 0.02, (n_volumes, 3)), rng.normal(0, 0.0003, (n_volumes, 3))], axis=1
    )
    motion = np.cumsum(steps, axis=0)
    motion -= motion[0]
    candidates = np.arange(n_nss + 3, n_volumes - 3)
    jerks = sorted(rng.choice(candidates, size=min(rng.integers(1, 3), len(candidates))))
    for start in jerks:
        axis = rng.integers(0, 3)
        amplitude = rng.uniform(0.6, 1.0) * rng.choice([-1, 1])
        width = rng.integers(1, 3)
        motion[start : start + width, axis] += amplitude
        motion[start : start + width, 3 + axis] += amplitude / 100  # about 0.5 mm at 50 mm
    return motion, [int(j) for j in jerks]


def make_physio(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """Two unit-variance aliased sources (respiration ~0.3 Hz, cardiac ~1.1 Hz), (n, 2)."""
    resp = np.sin(2 * np.pi * rng.uniform(0.25, 0.35) * times + rng.uniform(0, 2 * np.pi))
    resp *= 1 + 0.3 * np.sin(2 * np.pi * times / 60 + rng.uniform(0, 2 * np.pi))
    card = np.sin(2 * np.pi * rng.uniform(1.0, 1.3) * times + rng.uniform(0, 2 * np.pi))
    sources = np.stack([resp, card], axis=1)
    return (sources - sources.mean(0)) / sources.std(0)


@dataclass
class RunStats:
    """Per-frame summaries of the written image, for the confounds file."""

    global_signal: np.ndarray
    csf: np.ndarray
    white_matter: np.ndarray
    csf_wm: np.ndarray
    tcompcor: np.ndarray
    dvars: np.ndarray
    std_dvars: np.ndarray
    series: dict[str, np.ndarray]  # (n, n_voxels) time series of the CompCor masks


@dataclass
class RunInputs:
    """Everything that varies from run to run."""

    regressors: np.ndarray  # (n, len(REGRESSORS))
    motion: np.ndarray  # (n, 6)
    physio: np.ndarray  # (n, 2)
    drift: tuple[float, float]  # linear and half-cosine amplitudes (PSC)
    n_nss: int


@dataclass
class _Voxels:
    """Per-voxel parameters of the in-brain voxels of one subject (flat, Fortran order)."""

    index: np.ndarray  # positions in the flattened volume
    base: np.ndarray  # baseline intensity B
    sd: np.ndarray  # marginal noise sd (PSC)
    drift_gain: np.ndarray
    loadings: np.ndarray  # (2, n_voxels) physiological loadings (PSC)
    masks: dict[str, np.ndarray]  # csf, wm, tcompcor: boolean over the in-brain voxels


def _voxels(anat: Anatomy, brain: np.ndarray, scale: float) -> _Voxels:
    index = np.flatnonzero(brain.ravel(order="F"))
    masks = {"csf": anat.csf, "wm": anat.wm}
    masks = {name: arr.ravel(order="F")[index] for name, arr in masks.items()}
    coords = anat.coords.reshape(3, -1, order="F")[:, index]
    sd = NOISE["sd_psc"] * (1 + NOISE["edge_gain"] * (coords**2).sum(0))
    physio_sd = np.full(index.size, PHYSIO_SD_PSC["other"])
    physio_sd[masks["csf"]] = PHYSIO_SD_PSC["csf"]
    physio_sd[masks["wm"]] = PHYSIO_SD_PSC["wm"]
    # the 2 % voxels of highest temporal sd, as fMRIPrep's tCompCor mask (known here)
    top = np.argsort(-(sd**2 + physio_sd**2), kind="stable")[: max(1, index.size // 50)]
    masks["tcompcor"] = np.isin(np.arange(index.size), top)
    return _Voxels(
        index=index,
        base=100.0 * scale * anat.baseline.ravel(order="F")[index],
        sd=sd,
        drift_gain=1 + 0.5 * coords[0],
        loadings=physio_sd * np.stack([1 + 0.5 * coords[0], 1 - 0.5 * coords[2]]) / np.sqrt(2),
        masks=masks,
    )


def simulate_run(
    anat: Anatomy,
    brain: np.ndarray,
    scale: float,
    betas: np.ndarray,
    run: RunInputs,
    rng: np.random.Generator,
    sink: Callable[[np.ndarray], None],
) -> RunStats:
    """Generate one run frame by frame, hand each float32 volume (flat, Fortran order) to
    ``sink`` and return the confound summaries.

    ``betas`` is (len(REGRESSORS), *shape). Only one frame plus the AR state is held at a
    time, so memory stays at a few copies of one volume even on the 2-mm grid.
    """
    vox = _voxels(anat, brain, scale)
    beta_flat = betas.reshape(len(REGRESSORS), -1, order="F")[:, vox.index]
    active = np.flatnonzero(np.any(beta_flat != 0, axis=0))
    activation = run.regressors @ beta_flat[:, active]  # (n, n_active)
    n = run.regressors.shape[0]
    tau = np.linspace(0, 1, n)
    drift = run.drift[0] * (tau - 0.5) + run.drift[1] * np.cos(np.pi * tau)
    motion = (run.motion - run.motion.mean(0)) @ np.array(list(MOTION_PSC.values()))
    phi = NOISE["ar_phi"]
    recorder = _Recorder(vox.masks, n)
    volume = np.zeros(brain.size, np.float32)
    noise = rng.standard_normal(vox.index.size) * vox.sd
    for t in range(n):
        if t:
            innovation = rng.standard_normal(vox.index.size)
            noise = phi * noise + np.sqrt(1 - phi**2) * vox.sd * innovation
        psc = noise + drift[t] * vox.drift_gain + motion[t] + run.physio[t] @ vox.loadings
        psc[active] += activation[t]
        y = vox.base * (1 + psc / 100)
        if t < run.n_nss:
            y += vox.base * NSS_BOOST[min(t, len(NSS_BOOST) - 1)]
        y32 = y.astype(np.float32)
        volume[vox.index] = y32
        sink(volume)
        recorder.add(t, y32)
    return recorder.stats(np.median(vox.base), run.n_nss)


class _Recorder:
    """Per-frame means, CompCor mask series and DVARS of the frames written so far."""

    def __init__(self, masks: dict[str, np.ndarray], n: int) -> None:
        csf, wm = masks["csf"], masks["wm"]
        self.means = {"gs": slice(None), "csf": csf, "wm": wm, "comb": csf | wm}
        self.means["tcc"] = masks["tcompcor"]
        self.keep = {k: _subsample(np.flatnonzero(v)) for k, v in masks.items()}
        self.keep["combined"] = np.union1d(self.keep["csf"], self.keep["wm"])
        self.series = {k: np.empty((n, v.size), np.float32) for k, v in self.keep.items()}
        self.values = {k: np.full(n, np.nan) for k in (*self.means, "dvars")}
        self.previous: np.ndarray | None = None

    def add(self, t: int, y32: np.ndarray) -> None:
        for key, where in self.means.items():
            self.values[key][t] = y32[where].mean(dtype=np.float64)
        for key, where in self.keep.items():
            self.series[key][t] = y32[where]
        current = y32.astype(np.float64)
        if self.previous is not None:
            self.values["dvars"][t] = np.sqrt(np.mean((current - self.previous) ** 2))
        self.previous = current

    def stats(self, median_base: float, n_nss: int) -> RunStats:
        # Nipype (fMRIPrep) scales DVARS to a median brain intensity of 1000; its AR(1)-based
        # standardisation is replaced by the run's median over steady-state frames (robust, ~1)
        dvars = self.values["dvars"] * 1000 / median_base
        return RunStats(
            global_signal=self.values["gs"],
            csf=self.values["csf"],
            white_matter=self.values["wm"],
            csf_wm=self.values["comb"],
            tcompcor=self.values["tcc"],
            dvars=dvars,
            std_dvars=dvars / np.median(dvars[n_nss + 1 :]),
            series=self.series,
        )


def _subsample(positions: np.ndarray, limit: int = 4000) -> np.ndarray:
    """At most ``limit`` evenly spaced entries: CompCor needs the subspace, not every voxel."""
    if positions.size <= limit:
        return positions
    return positions[np.linspace(0, positions.size - 1, limit).round().astype(int)]
