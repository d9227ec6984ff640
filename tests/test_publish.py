"""Outputs are private copies published once the level has succeeded (issue 14.2, 14.4).

End to end on a one-subject, two-run synthetic dataset: an output edited in place is
rewritten by the next run while the cache and the contrast memo keep their bytes; a level
that fails after its run-level sinks ran leaves the output folder empty; a contrast name too
long for a file name is one line before anything is computed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from glmflow.data import make_synthetic_dataset
from glmflow.errors import ContrastError
from glmflow.runners.participant import run_participant_level

pytestmark = pytest.mark.slow

MODEL = Path(__file__).resolve().parents[1] / "glmflow" / "data" / "models"
SPACE = "space-MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("publish") / "bids", n_subjects=1, n_runs=2
    )


def _model(tmp_path: Path, **changes) -> Path:
    data = json.loads((MODEL / "task_information.json").read_text())
    data["faces"].update(changes)
    path = tmp_path / "task_information.json"
    path.write_text(json.dumps(data))
    return path


def _kwargs(dataset, tmp_path, **changes):
    return dict(
        bids_dir=dataset,
        output_dir=tmp_path / "out",
        model=_model(tmp_path, **changes),
        work_dir=tmp_path / "work",
        plugin="Linear",
    )


def _digests(folder: Path) -> dict[str, str]:
    # like Nipype's result files, a level's stamp (level_stamps/) is rewritten by each run
    # of the level: it records the identity of the outputs that run published
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and not p.name.endswith((".pklz", ".lock"))
        and "_report" not in p.parts
        and "level_stamps" not in p.parts
    }


def test_an_output_edited_in_place_is_rewritten_and_the_cache_is_not_touched(dataset, tmp_path):
    kwargs = _kwargs(dataset, tmp_path)
    run_participant_level(**kwargs)
    func = tmp_path / "out" / "glmflow" / "sub-01" / "func"
    run_z = func / f"sub-01_task-faces_run-1_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
    subject_z = func / f"sub-01_task-faces_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz"
    expected = {p: p.read_bytes() for p in (run_z, subject_z)}
    cache = _digests(tmp_path / "work")
    assert any("contrast_memo" in p for p in cache)  # the memo is part of what is checked
    for path in (run_z, subject_z):
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.full(img.shape, 42.0, np.float32), img.affine), path)
    assert _digests(tmp_path / "work") == cache  # outputs share no storage with the cache
    run_participant_level(**kwargs)
    for path, content in expected.items():
        assert path.read_bytes() == content
    assert _digests(tmp_path / "work") == cache


def test_a_failed_level_leaves_nothing_in_the_output_folder(dataset, tmp_path, monkeypatch):
    import glmflow.interfaces.combine as combine

    def fail(*args, **kwargs):
        raise RuntimeError("combine_runs failed on purpose")

    monkeypatch.setattr(combine, "combine_runs", fail)  # Linear: nodes run in this process
    kwargs = _kwargs(dataset, tmp_path)
    with pytest.raises(Exception, match="combine_runs"):
        run_participant_level(**kwargs)
    work = tmp_path / "work"
    assert list(work.rglob("ds_run_*/manifest.json"))  # the run-level sinks did run
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]  # no lock left
    monkeypatch.undo()
    result = run_participant_level(**kwargs)  # the rerun publishes everything
    names = {p.name for p in result.files}
    assert f"sub-01_task-faces_{SPACE}_contrast-faceMinusHouse_stat-z_statmap.nii.gz" in names
    assert "sub-01_task-faces_run-2_design.tsv" in names
    assert all(p.is_file() for p in result.files)
    assert (out / "glmflow" / "dataset_description.json").is_file()


def test_a_contrast_name_too_long_for_a_file_name_is_one_line_before_compute(dataset, tmp_path):
    name = "face-" + "x" * 295
    kwargs = _kwargs(dataset, tmp_path, design_contrasts={name: "face - house"})
    msg = (
        f"Contrast {name[:40]!r}... gives a file label of 304 characters in "
        f"{kwargs['model']}; output file names are limited to 255 bytes, so a label may "
        "have at most 120: give the contrast a shorter name"
    )
    with pytest.raises(ContrastError) as caught:
        run_participant_level(**kwargs)
    assert str(caught.value) == msg
    assert not (tmp_path / "out").exists() or not [
        p for p in (tmp_path / "out").rglob("*") if p.is_file()
    ]
    assert not list((tmp_path / "work").rglob("result_*.pklz"))  # nothing computed


def test_sidecar_json_is_strict_json(tmp_path):
    """A threshold no voxel reaches (+inf) is written as null: JSON has no Infinity."""
    import json as _json

    from glmflow.core.publish import atomic_write_json

    data = {"Threshold": float("inf"), "A": [float("nan"), 1.5]}
    path = atomic_write_json(tmp_path / "x.json", data)
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    strict = _json.loads(text, parse_constant=lambda c: pytest.fail(c))
    assert strict == {"Threshold": None, "A": [None, 1.5]}


def test_publish_copies_many_files_in_order_and_only_those_out_of_date(tmp_path):
    """Many files go through the copy threads: every destination a private copy with its
    source's bytes and time, returned in the manifests' order; a second publish copies only
    the destination edited since, and a destination listed twice gets its last source."""
    from glmflow.core.publish import COPY_THREADS, publish, write_manifest

    sources = tmp_path / "work"
    sources.mkdir()
    pairs = []
    for i in range(6 * COPY_THREADS):
        src = sources / f"map{i:02d}.bin"
        src.write_bytes(bytes([i]) * (1000 + i))
        pairs.append((src, tmp_path / "out" / f"sub-{i % 3}" / src.name))
    twice = tmp_path / "out" / "twice.bin"
    first, last = pairs[0][0], pairs[1][0]
    manifests = [
        write_manifest(tmp_path / "a.json", [*pairs[:10], (first, twice)]),
        write_manifest(tmp_path / "b.json", [*pairs[10:], (last, twice)]),
    ]
    written = publish(manifests)
    assert written == [dst for _, dst in pairs[:10]] + [twice] + [dst for _, dst in pairs[10:]]
    for src, dst in pairs:
        assert dst.read_bytes() == src.read_bytes() and not dst.samefile(src)
        assert dst.stat().st_mtime_ns == src.stat().st_mtime_ns
    assert twice.read_bytes() == last.read_bytes()
    edited = pairs[7][1]
    edited.write_bytes(b"edited in place")
    assert publish(manifests) == [edited]
    assert edited.read_bytes() == pairs[7][0].read_bytes()
