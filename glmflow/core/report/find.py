"""Which report pages an output dataset has, and the written files each page shows.

A page's plan is plain JSON (paths and names). The report node of that page receives it
with its :attr:`PagePlan.content_key`: the contents of every file it names, gzip's
timestamp left out, so that the node's cache key changes exactly when what the page shows
changes. A level that rewrites an output with the same data (the group level rewrites every
group model's maps when one first-level contrast changed; only the gzip header's time
differs) renders nothing. A run's BOLD is too large to read for a key: its plan carries
the BOLD's identity (inode, size, modification time) instead.

Everything is found from ``OUTPUT_DIR/glmflow`` (the maps, design TSVs and sidecars the
levels wrote) and the fMRIPrep folder (confounds, brain masks, BOLD runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmflow.core.memo import content_digest as file_digest
from glmflow.core.memo import file_identity, memo_key
from glmflow.core.outputs import contrast_label
from glmflow.core.report.bsm_find import bsm_page_plans
from glmflow.core.report.rest import rest_page_plans

_DESIGN = "_design.tsv"
_NOT_HASHED = ("names", "bold", "not_drawn")  # texts, and the BOLD (its identity is in the plan)


@dataclass(frozen=True)
class PagePlan:
    """One page: its file name at the top of the output, what it shows, the files read."""

    kind: str  # "subject" or "group"
    name: str  # e.g. "sub-01.html"
    title: str
    content: dict[str, Any] = field(repr=False)

    @property
    def files(self) -> list[str]:
        """Every existing file the page reads (its node's inputs)."""
        return sorted({p for p in _paths(self.content) if Path(p).is_file()})

    @property
    def node_name(self) -> str:
        """The report node's name (a ``ds_`` node: :func:`glmflow.execution.execute`
        publishes what it stages)."""
        stem = self.name.removesuffix(".html")
        return "ds_report_" + "".join(c if c.isalnum() else "_" for c in stem)

    @property
    def content_key(self) -> str:
        """What the page shows: its plan and its files' contents (see the module docstring)."""
        return memo_key(self.to_json(), [file_digest(path) for path in self.files])

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "name": self.name, "title": self.title,
                           "content": self.content}, sort_keys=True)  # fmt: skip


def _paths(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _paths(item) if key not in _NOT_HASHED]
    if isinstance(value, list):
        return [p for item in value for p in _paths(item)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _fmriprep_companions(
    run: str, grid: str | None, folder: Path, fmriprep: Path | None, top: Path
) -> dict:  # fmt: skip
    """The run's fMRIPrep confounds, and for a volume run (``grid``: its entities, such as
    ``_space-MNI152NLin2009cAsym``) its brain mask and BOLD; None where there is none."""
    found: dict[str, str | None] = {"confounds": None, "mask": None, "bold": None}
    if fmriprep is None:
        return found
    folder = fmriprep / folder.relative_to(top)  # sub-<s>/[ses-<x>/]func
    names = {"confounds": f"{run}_desc-confounds_timeseries.tsv"}
    if grid is not None:  # a surface run's data are not a volume: no mask, no mean image
        names |= {"mask": f"{run}{grid}_desc-brain_mask.nii.gz",
                  "bold": f"{run}{grid}_desc-preproc_bold.nii.gz"}  # fmt: skip
    for key, name in names.items():
        if (folder / name).is_file():
            found[key] = str(folder / name)
    if found["bold"] is not None:
        found["bold_identity"] = file_identity(found["bold"])
    return found


_GRID = ("space-", "res-", "den-")


def _split_grid(stem: str) -> tuple[str, str]:
    """(a name without its grid entities, those entities): a surface level's designs keep
    ``space-`` (and ``den-``), a volume level's carry none."""
    parts = stem.split("_")
    return ("_".join(p for p in parts if not p.startswith(_GRID)),
            "_".join(p for p in parts if p.startswith(_GRID)))  # fmt: skip


def _run_plan(design_tsv: Path, fmriprep: Path | None, top: Path) -> dict[str, Any]:
    """A run's design and the z sidecars of its maps on the design's grid: a volume design
    takes the run's NIfTI maps, a surface design (``..._space-fsaverage5_design.tsv``) the
    maps of its space."""
    stem = design_tsv.name.removesuffix(_DESIGN)
    run, surface = _split_grid(stem)
    sidecars = [
        path for path in sorted(design_tsv.parent.glob(f"{run}_*contrast-*_stat-z_statmap.json"))
        if (image := _map_file(path)) is None or _surface_key(image) == surface
    ]  # fmt: skip
    grid = None if surface else ""
    if sidecars and not surface:  # the grid entities between the run's name and its contrast
        grid = sidecars[0].name[len(run) :].split("_contrast-")[0]
    return {
        "name": stem,
        "design": str(design_tsv),
        "design_sidecar": str(design_tsv.with_suffix(".json")),
        "maps": [str(p) for p in sidecars],
        **_fmriprep_companions(run, grid, design_tsv.parent, fmriprep, top),
        **({"surface": surface} if surface else {}),
    }


_SURFACE_EXTENSIONS = (".func.gii", ".dscalar.nii")


def _map_file(sidecar: Path) -> Path | None:
    """The map a sidecar describes: NIfTI, GIFTI or CIFTI (None: none written)."""
    base = str(sidecar).removesuffix(".json")
    found = [Path(base + ext) for ext in (".nii.gz", *_SURFACE_EXTENSIONS)]
    return next((path for path in found if path.is_file()), None)


def _hemi(name: str) -> str | None:
    return next((p[5:] for p in name.split("_") if p.startswith("hemi-")), None)


def _surface_entry(entries: dict, image: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """The plan entry of a surface map, its hemispheres gathered under one key (``{"L":
    gii, "R": gii}`` or ``{"cifti": dscalar}``)."""
    hemi = _hemi(image.name) if image.name.endswith(".func.gii") else None
    key = image.name.replace(f"_hemi-{hemi}", "") if hemi else image.name
    entry = entries.setdefault(key, {"surface": {}, **extra})
    entry["surface"][hemi or "cifti"] = str(image)
    return entry


def _subject_page(folder: Path, fmriprep: Path | None) -> PagePlan | None:
    from glmflow.core.report.surfaces import not_drawn_reason

    designs = sorted(folder.rglob(f"*{_DESIGN}"))
    if not designs:
        return None
    runs = [_run_plan(d, fmriprep, folder.parent) for d in designs]
    contrasts = []
    surfaces: dict[str, dict[str, Any]] = {}  # fsaverage5 GIFTI and fsLR 91k CIFTI maps
    not_drawn = []  # other surface maps (fsaverage6, ...): [name, why]
    for sidecar in sorted(folder.rglob("*_contrast-*_stat-z_statmap.json")):
        info = _read(sidecar)
        if info.get("Level") not in ("subject", "session"):
            continue
        image = _map_file(sidecar)
        names = [info["Contrast"]["Name"], info["Model"]["Task"]]
        if image is None:
            not_drawn.append([sidecar.name.removesuffix(".json"), "its map is missing"])
        elif image.name.endswith(".nii.gz"):
            contrasts.append({"z": str(image), "sidecar": str(sidecar), "names": names})
        elif (reason := not_drawn_reason(image.name)) is not None:
            not_drawn.append([sidecar.name.removesuffix(".json"), reason])
        else:
            _surface_entry(surfaces, image, {"sidecar": str(sidecar), "names": names})
    contrasts += list(surfaces.values())
    label = folder.name
    content = {"subject": label.removeprefix("sub-"), "runs": runs, "contrasts": contrasts,
               "not_drawn": not_drawn}  # fmt: skip
    return PagePlan("subject", f"{label}.html", f"Subject {label}", content)


def _group_key(info: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    return info["Model"]["Task"], tuple(info["Contrast"].get("FirstLevelContrasts", ()))


def _surface_key(image: Path) -> str:
    """Empty for a volume map, else its ``space-`` (and ``den-``) entities as in its name."""
    if image.name.endswith(".nii.gz"):
        return ""
    return _split_grid(image.name)[1]


def _group_pages(glmflow_dir: Path) -> list[PagePlan]:
    """One page per group model: volume maps, or surface maps of one space (and density)."""
    models: dict[tuple, dict[str, Any]] = {}
    for sidecar in sorted(glmflow_dir.glob("*_statmap.json")):
        info = _read(sidecar)
        if info.get("Level") != "dataset" or "FirstLevelContrasts" not in info.get("Contrast", {}):
            continue
        task, first = _group_key(info)
        image = _map_file(sidecar) or Path(str(sidecar).removesuffix(".json") + ".nii.gz")
        surface = _surface_key(image)
        # a volume group level writes one space an invocation: two of them into one output
        # folder are two models (their maps are told apart by ``space-``)
        volume = "" if surface else _split_grid(image.name)[1]
        model = models.setdefault((task, first, surface, volume), {
            "task": task, "first_level": list(first), "design": None, "contrasts": {},
            **({"flavour": "surface", "space": surface} if surface else {})})  # fmt: skip
        # a surface level's design keeps its space- (and den-); older outputs: grid-free
        designs = [glmflow_dir / f"task-{task}_{surface}{_DESIGN}"] if surface else []
        design = next((d for d in designs if d.is_file()), glmflow_dir / f"task-{task}{_DESIGN}")
        model["design"] = str(design) if design.is_file() else None
        contrast = model["contrasts"].setdefault(
            info["Contrast"]["Name"], {"z": None, "sidecar": None, "inferences": []}
        )
        if surface:
            _surface_group_map(contrast, info, image, sidecar)
        elif info.get("Thresholded"):
            table = str(image).removesuffix("_statmap.nii.gz") + "_clusters.tsv"
            contrast["inferences"].append(
                {
                    "map": str(image),
                    "sidecar": str(sidecar),
                    "clusters": table if Path(table).is_file() else None,
                }
            )
        elif info.get("Statistic") == "z":
            contrast["z"], contrast["sidecar"] = str(image), str(sidecar)
    return [_group_page(key, model, models) for key, model in models.items()]


def _group_page(key: tuple, model: dict[str, Any], models: dict[tuple, Any]) -> PagePlan:
    """The page of one group model; a volume model's page names its space only when the
    folder holds the same model in another volume space (one space: the name it always had)."""
    task, first, surface, volume = key
    label = contrast_label(" ".join(first)) if first else "group"
    model["contrasts"] = [{"names": [name], **c} for name, c in model["contrasts"].items()]
    on = f", {surface.replace('space-', 'surface ').replace('_den-', ' ')}" if surface else ""
    grid = surface
    if not surface and any(k[:3] == key[:3] and k[3] != volume for k in models):
        on, grid = f", {volume.replace('_', ' ').replace('-', ' ')}", volume
    title = f"Group model: task {task}{on}, first-level contrast {' and '.join(first)}"
    name = f"group_task-{task}{'_' + grid if grid else ''}_contrast-{label}.html"
    return PagePlan("group", name, title, model)


def _surface_group_map(contrast: dict, info: dict, image: Path, sidecar: Path) -> None:
    """A surface group map into its contrast's entry: the unthresholded z (``z``: parts)
    or a thresholded map (``inferences``: one per ``desc-``), each hemisphere's file a part
    (``{"L": gii, "R": gii}`` or ``{"cifti": dscalar}``)."""
    part = (_hemi(image.name) if image.name.endswith(".func.gii") else None) or "cifti"
    if info.get("Thresholded"):
        desc = image.name.split("_desc-")[1].split("_")[0]
        entry = next((i for i in contrast["inferences"] if i["desc"] == desc), None)
        if entry is None:
            entry = {"map": {}, "sidecar": str(sidecar), "desc": desc}
            contrast["inferences"].append(entry)
        entry["map"][part] = str(image)
    elif info.get("Statistic") == "z":
        contrast["z"] = {**(contrast["z"] or {}), part: str(image)}
        contrast["sidecar"] = contrast["sidecar"] or str(sidecar)


def find_pages(glmflow_dir: str | Path, fmriprep_dir: str | Path | None) -> list[PagePlan]:
    """Every page the output dataset ``glmflow_dir`` has: one per subject with run designs,
    one per group model with dataset-level maps, and those of a BIDS Stats Model's outputs
    (:mod:`.bsm_find`; a subject with both has ``sub-<s>_desc-bsm.html`` for the BSM) and
    of connectivity outputs (:mod:`.rest`)."""
    glmflow_dir = Path(glmflow_dir)
    fmriprep = Path(fmriprep_dir) if fmriprep_dir is not None else None
    pages = [
        page for folder in sorted(glmflow_dir.glob("sub-*")) if folder.is_dir()
        if (page := _subject_page(folder, fmriprep)) is not None
    ]  # fmt: skip
    pages += _group_pages(glmflow_dir)
    taken = {page.name for page in pages}
    planned = bsm_page_plans(glmflow_dir, fmriprep) + rest_page_plans(glmflow_dir, fmriprep)
    for kind, name, title, content in planned:
        if name in taken:  # glmflow's and a BSM's outputs in one folder: both pages
            name = name.replace(".html", "_desc-bsm.html")
        pages.append(PagePlan(kind, name, title, content))
    return pages
