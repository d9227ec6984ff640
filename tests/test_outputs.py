"""Output naming, atomic writes, dataset_description and the DerivativesSink node."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from glmflow import __version__
from glmflow.core.outputs import (
    atomic_copy,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    contrast_label,
    contrast_labels,
    derivative_path,
    design_path,
    sidecar_path,
    write_dataset_description,
    write_derivatives,
)
from glmflow.errors import ContrastError, DatasetError

SPACE = "MNI152NLin2009cAsym"
RUN = {"subject": "01", "task": "faces", "run": "1", "space": SPACE}
RUN_SES = {"subject": "01", "session": "2", "task": "faces", "run": "01", "space": SPACE}


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("face - house", "faceMinusHouse"),
        ("face>house", "faceGtHouse"),
        ("face<house", "faceLtHouse"),
        ("face_x_rt", "faceXRt"),
        ("face+house", "facePlusHouse"),
        ("0.5*face + 0.5*house", "0p5TimesFacePlus0p5TimesHouse"),
        ("faces/2", "facesOver2"),
        ("face=house", "faceEqHouse"),
        ("faceGtHouse", "faceGtHouse"),
        ("Face vs. House", "FaceVsHouse"),
        ("(a+b) - c", "aPlusBMinusC"),
        ("visage_café", "visageCafe"),
        ("x.y 1.5", "xY1p5"),
        ("-face", "MinusFace"),
        ("2back-0back", "2backMinus0back"),
    ],
)
def test_contrast_label(name, label):
    assert contrast_label(name) == label


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Contrast name '' has no letters or digits, so it cannot name a file; rename"),
        ("__ ()", "Contrast name '__ ()' has no letters or digits"),
        (3, "Contrast name must be a string. Got 3 instead"),
    ],
)
def test_contrast_label_errors(name, message):
    with pytest.raises(ContrastError, match="^" + re.escape(message)):
        contrast_label(name)


def test_contrast_labels_reject_collisions():
    assert contrast_labels(["face>house", "face - house"]) == {
        "face>house": "faceGtHouse",
        "face - house": "faceMinusHouse",
    }
    msg = (
        "Contrasts 'face house' and 'face_house' both give the file label 'faceHouse' in "
        "models/m.json; rename one of them"
    )
    with pytest.raises(ContrastError, match="^" + re.escape(msg) + "$"):
        contrast_labels(["face house", "face_house"], source="models/m.json")


@pytest.mark.parametrize(
    ("entities", "level", "expected"),
    [
        (
            RUN,
            "run",
            f"sub-01/func/sub-01_task-faces_run-1_space-{SPACE}_contrast-faceGtHouse_stat-z"
            "_statmap.nii.gz",
        ),
        (
            RUN_SES,
            "run",
            f"sub-01/ses-2/func/sub-01_ses-2_task-faces_run-01_space-{SPACE}_contrast-faceGtHouse"
            "_stat-z_statmap.nii.gz",
        ),
        (
            RUN_SES,
            "session",
            f"sub-01/ses-2/func/sub-01_ses-2_task-faces_space-{SPACE}_contrast-faceGtHouse_stat-z"
            "_statmap.nii.gz",
        ),
        (
            RUN_SES,
            "subject",
            f"sub-01/func/sub-01_task-faces_space-{SPACE}_contrast-faceGtHouse_stat-z"
            "_statmap.nii.gz",
        ),
        (
            RUN_SES,
            "dataset",
            f"task-faces_space-{SPACE}_contrast-faceGtHouse_stat-z_statmap.nii.gz",
        ),
        (
            # BIDS order whatever the dict order: acq before ce/dir/run, res/den after space.
            {
                "den": "91k",
                "res": "2",
                "run": "3",
                "direction": "AP",
                "acquisition": "mb",
                "space": "fsLR",
                "task": "x",
                "subject": "A1",
                "echo": "1",
            },
            "run",
            "sub-A1/func/sub-A1_task-x_acq-mb_dir-AP_run-3_echo-1_space-fsLR_res-2_den-91k"
            "_contrast-faceGtHouse_stat-z_statmap.nii.gz",
        ),  # fmt: skip
    ],
)
def test_derivative_path(tmp_path, entities, level, expected):
    path = derivative_path(tmp_path, entities, contrast="face>house", stat="z", level=level)
    assert path == tmp_path / expected


def test_stat_labels_and_design_paths(tmp_path):
    names = [
        derivative_path(tmp_path, RUN, contrast="a", stat=s, level="run").name
        for s in ("effect", "variance", "t", "F", "p")
    ]
    assert [n.split("_stat-")[1] for n in names] == [
        f"{s}_statmap.nii.gz" for s in ("effect", "variance", "t", "F", "p")
    ]
    assert derivative_path(tmp_path, RUN, contrast="a", stat="t", level="run", extension=".nii")
    assert design_path(tmp_path, RUN_SES, level="run") == (
        tmp_path / "sub-01/ses-2/func/sub-01_ses-2_task-faces_run-01_design.tsv"
    )
    assert design_path(tmp_path, RUN, level="subject", extension=".svg") == (
        tmp_path / "sub-01/func/sub-01_task-faces_design.svg"
    )
    map_path = tmp_path / "a_stat-z_statmap.nii.gz"
    assert sidecar_path(map_path) == tmp_path / "a_stat-z_statmap.json"
    assert sidecar_path(tmp_path / "b.nii") == tmp_path / "b.json"


@pytest.mark.parametrize(
    ("entities", "kwargs", "error", "message"),
    [
        (RUN, {"stat": "T"}, ValueError,
         "'stat' must be one of effect, variance, t, F, p, z. Got 'T' instead"),
        (RUN, {"level": "group"}, ValueError,
         "'level' must be one of run, session, subject, dataset. Got 'group' instead"),
        (RUN, {"extension": ".mgz"}, ValueError,
         "'extension' must be one of .nii.gz, .dscalar.nii, .func.gii, .nii. Got '.mgz' "
         "instead"),
        ({**RUN, "subject": "../../etc"}, {}, DatasetError,
         "Entity subject='../../etc' is not a BIDS label (letters and digits only)"),
        ({**RUN, "run": "1_x"}, {}, DatasetError,
         "Entity run='1_x' is not a BIDS label (letters and digits only)"),
        ({**RUN, "desc": "preproc", "foo": "1"}, {}, DatasetError,
         "Unsupported entities desc, foo for an output name (supported: subject, session,"),
        ({"task": "faces"}, {}, DatasetError,
         "A run-level output needs a 'subject' entity. Got {'task': 'faces'}"),
    ],
)  # fmt: skip
def test_derivative_path_errors(tmp_path, entities, kwargs, error, message):
    args = {"contrast": "a", "stat": "z", "level": "run", **kwargs}
    with pytest.raises(error, match="^" + re.escape(message)):
        derivative_path(tmp_path, entities, **args)


def test_design_path_rejects_other_extensions(tmp_path):
    message = r"^'extension' must be '.tsv', '.json' or '.svg'. Got '.png'"
    with pytest.raises(ValueError, match=message):
        design_path(tmp_path, RUN, level="run", extension=".png")


@pytest.mark.parametrize(
    "out", ["../out", "derivatives/glmflow", "derivatives/glmflow/model-a", "derivatives/x"]
)
def test_check_output_dir_allows(tmp_path, out):
    bids = tmp_path / "ds"
    assert check_output_dir(bids / out, bids) == (bids / out).resolve()


@pytest.mark.parametrize(
    ("out", "derivatives", "message"),
    [
        (".", None, "Output folder {b} is inside the raw BIDS dataset {b}; use "
         "{b}/derivatives/glmflow or a folder outside the dataset"),
        ("sub-01/out", None, "Output folder {b}/sub-01/out is inside the raw BIDS dataset {b};"),
        ("derivatives", None, "Output folder {b}/derivatives is inside the raw BIDS dataset"),
        ("derivatives/fmriprep", None, "Output folder {b}/derivatives/fmriprep is inside the "
         "fMRIPrep derivatives {b}/derivatives/fmriprep, an input; use e.g. "
         "{b}/derivatives/glmflow"),
        ("derivatives/fmriprep/glm", None, "Output folder {b}/derivatives/fmriprep/glm is "
         "inside the fMRIPrep derivatives"),
        ("../prep/glm", "../prep", "Output folder {t}/prep/glm is inside the fMRIPrep "
         "derivatives {t}/prep, an input"),
    ],
)  # fmt: skip
def test_check_output_dir_refuses_inputs(tmp_path, out, derivatives, message):
    bids = tmp_path / "ds"
    deriv = bids / derivatives if derivatives else None
    expected = message.format(b=bids, t=tmp_path)
    with pytest.raises(DatasetError, match="^" + re.escape(expected)):
        check_output_dir(bids / out, bids, deriv)


def test_dataset_description(tmp_path):
    path = write_dataset_description(tmp_path / "out", source_datasets=[tmp_path / "ds"])
    assert json.loads(path.read_text()) == {
        "Name": "glmflow GLM outputs",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "glmflow",
                "Version": __version__,
                "CodeURL": "https://pypi.org/project/glmflow/",
            }
        ],
        "SourceDatasets": [{"URL": (tmp_path / "ds").as_uri()}],
    }
    inode = path.stat().st_ino
    write_dataset_description(tmp_path / "out", source_datasets=[tmp_path / "ds"])
    assert path.stat().st_ino == inode  # unchanged content is not rewritten
    write_dataset_description(
        tmp_path / "out", source_datasets=[{"DOI": "10.18112/openneuro.ds000105.v1"}]
    )
    assert json.loads(path.read_text())["SourceDatasets"] == [
        {"DOI": "10.18112/openneuro.ds000105.v1"}
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["dataset_description.json"]


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(TypeError):
        atomic_write_text(target, 42)  # fails after the temp file was created
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}  # old content intact
    assert os.listdir(target.parent) == ["a.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_copy_is_a_private_copy_with_the_source_time(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    copied = atomic_copy(src, tmp_path / "o" / "copied.bin")
    assert copied.stat().st_ino != src.stat().st_ino and copied.read_bytes() == b"abc"
    assert copied.stat().st_mtime_ns == src.stat().st_mtime_ns  # publish's up-to-date test
    assert oct(copied.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    copied.write_bytes(b"edited")
    assert src.read_bytes() == b"abc"  # an edit of the output leaves the source intact
    other = tmp_path / "other.bin"
    other.write_bytes(b"xyz")
    atomic_copy(other, copied)  # overwrite an existing output
    assert copied.read_bytes() == b"xyz"
    with pytest.raises(FileNotFoundError):
        atomic_copy(tmp_path / "missing", tmp_path / "o" / "m.bin")
    assert sorted(os.listdir(tmp_path / "o")) == ["copied.bin"]


def test_publish_copies_what_is_missing_or_edited_and_nothing_else(tmp_path):
    from glmflow.core.publish import publish, write_manifest

    sources = [_map(tmp_path / "work" / f"{i}.nii.gz", i) for i in range(3)]
    pairs = [(src, tmp_path / "out" / "func" / f"map{i}.nii.gz") for i, src in enumerate(sources)]
    manifest = write_manifest(tmp_path / "work" / "manifest.json", pairs)
    assert publish([manifest]) == [dst for _, dst in pairs]
    assert publish([manifest]) == []  # up to date: nothing rewritten
    edited = pairs[1][1]
    nib.save(nib.Nifti1Image(np.full((7, 8, 9), 9.0, np.float32), np.eye(4)), edited)
    assert publish([manifest]) == [edited]
    assert np.asarray(nib.load(edited).dataobj).max() == 1.0  # the cached value again
    assert np.asarray(nib.load(sources[1]).dataobj).max() == 1.0  # the cache never changed
    assert not list((tmp_path / "out").rglob(".*"))


def _map(path: Path, value: float) -> Path:
    img = nib.Nifti1Image(np.full((7, 8, 9), value, dtype=np.float32), np.eye(4))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def test_write_derivatives(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    z = _map(work / "z.nii.gz", 1.0)
    t = _map(work / "t.nii", 2.0)
    design = work / "design.tsv"
    design.write_text("a\tb\n1\t0\n")
    metadata = {
        "Model": {"Name": "m", "SourceFile": "models/m.json"},
        "Contrasts": {"face>house": {"StatType": "t", "Expressions": ["face - house"]}},
    }
    written = write_derivatives(
        out,
        entities=RUN,
        level="run",
        maps=[(z, "face>house", "z"), (t, "face>house", "t")],
        metadata=metadata,
        design_files=[design],
    )
    stem = f"sub-01/func/sub-01_task-faces_run-1_space-{SPACE}_contrast-faceGtHouse"
    assert written == [
        out / f"{stem}_stat-z_statmap.nii.gz",
        out / f"{stem}_stat-t_statmap.nii",
        out / "sub-01/func/sub-01_task-faces_run-1_design.tsv",
    ]
    assert np.asarray(nib.load(written[1]).dataobj).max() == 2.0
    assert json.loads((out / f"{stem}_stat-z_statmap.json").read_text()) == {
        "Model": {"Name": "m", "SourceFile": "models/m.json"},
        "Level": "run",
        "Statistic": "z",
        "Contrast": {
            "Name": "face>house",
            "Label": "faceGtHouse",
            "StatType": "t",
            "Expressions": ["face - house"],
        },
    }
    assert sorted(p.name for p in (out / "sub-01/func").iterdir()) == sorted(
        [p.name for p in written] + [f"{Path(stem).name}_stat-{s}_statmap.json" for s in "zt"]
    )


def test_write_derivatives_refuses_two_inputs_for_one_output(tmp_path):
    a, b = _map(tmp_path / "a.nii.gz", 0), _map(tmp_path / "b.nii.gz", 1)
    msg = f"{a} and {b} would both be written to {tmp_path}/out/sub-01/func/"
    with pytest.raises(DatasetError, match="^" + re.escape(msg)):
        write_derivatives(
            tmp_path / "out", entities=RUN, level="run", maps=[(a, "x", "z"), (b, "x", "z")]
        )
    assert not (tmp_path / "out").exists()  # checked before anything is written


def _contrast_outputs(work: Path) -> dict:
    """Files and lists shaped like ComputeContrasts' outputs (two contrasts)."""
    files = {k: [] for k in ("effect", "variance", "stat", "p", "z")}
    for i in range(2):
        for key in files:
            files[key].append(str(_map(work / f"con{i}_{key}.nii.gz", i + 0.5)))
    record = {"stat_type": "t", "dropped": [], "dof": 50.0, "skipped": False, "z": "/x"}
    index = work / "contrasts.json"
    index.write_text(json.dumps({"face>house": record, "all": {**record, "stat_type": "F"}}))
    return {
        "contrast_names": ["face>house", "all"],
        "stat_types": ["t", "F"],
        **{f"{k}_files": v for k, v in files.items()},
        "contrasts_json": str(index),
    }


def test_derivatives_sink_node_runs_once(tmp_path):
    from nipype.pipeline import engine as pe

    from glmflow.interfaces.outputs import DerivativesSink

    out = tmp_path / "out"
    inputs = {
        "output_dir": str(out),
        "entities": json.dumps(RUN),
        "level": "run",
        "metadata": json.dumps({"Model": {"Name": "m"}}),
        **_contrast_outputs(tmp_path / "upstream"),
    }

    def run():
        node = pe.Node(DerivativesSink(**inputs), name="sink", base_dir=str(tmp_path / "wd"))
        return node.run().outputs

    from glmflow.core.publish import publish

    outputs = run()
    stem = f"{out}/sub-01/func/sub-01_task-faces_run-1_space-{SPACE}_contrast-"
    assert outputs.out_files[:2] == [
        f"{stem}faceGtHouse_stat-effect_statmap.nii.gz",
        f"{stem}all_stat-effect_statmap.nii.gz",
    ]
    assert [Path(f).name.split("_stat-")[1] for f in outputs.out_files] == [
        f"{s}_statmap.nii.gz" for s in ("effect", "effect", "variance", "variance", "t", "F")
    ] + [f"{s}_statmap.nii.gz" for s in ("p", "p", "z", "z")]
    sidecar = json.loads((tmp_path / "wd/sink" / Path(outputs.sidecar_files[5]).name).read_text())
    assert sidecar == {
        "Model": {"Name": "m"},
        "Level": "run",
        "Statistic": "F",
        "Contrast": {
            "Name": "all",
            "Label": "all",
            "StatType": "F",
            "DroppedConditions": [],
            "DegreesOfFreedom": 50.0,
        },
    }
    assert not out.exists()  # staged: nothing is written until the level is published
    assert len(publish([outputs.manifest_file])) == 2 * len(outputs.out_files)  # + sidecars
    upstream_z = Path(inputs["z_files"][1])
    assert Path(outputs.out_files[-1]).stat().st_ino != upstream_z.stat().st_ino  # a copy
    assert Path(outputs.out_files[-1]).read_bytes() == upstream_z.read_bytes()
    before = [os.stat(f).st_ino for f in outputs.sidecar_files]
    run()  # nothing changed: cached, so no file is rewritten
    assert publish([outputs.manifest_file]) == []
    assert [os.stat(f).st_ino for f in outputs.sidecar_files] == before
    assert not list(out.rglob(".*.tmp"))


def test_derivatives_sink_rejects_misaligned_lists(tmp_path):
    from nipype.pipeline import engine as pe
    from nipype.pipeline.engine.nodes import NodeExecutionError

    from glmflow.interfaces.outputs import DerivativesSink

    inputs = _contrast_outputs(tmp_path / "upstream")
    inputs["z_files"] = inputs["z_files"][:1]
    node = pe.Node(
        DerivativesSink(
            output_dir=str(tmp_path / "out"), entities=json.dumps(RUN), level="run", **inputs
        ),
        name="sink",
        base_dir=str(tmp_path / "wd"),
    )
    msg = "ValueError: DerivativesSink: z_files has 1 files, contrast_names 2 names and "
    with pytest.raises(NodeExecutionError, match=re.escape(msg)):
        node.run()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("key", "spelled"),
    [
        ("stat_type", "StatType"),
        ("run_combination_rule", "RunCombinationRule"),
        ("dof", "DegreesOfFreedom"),
        ("dropped", "DroppedConditions"),
        ("weights", "Weights"),
        ("StatType", "StatType"),
        ("FirstLevelContrasts", "FirstLevelContrasts"),
    ],
)
def test_sidecar_keys_have_one_spelling(key, spelled):
    from glmflow.core.sidecars import sidecar_key

    assert sidecar_key(key) == spelled


def test_sidecar_contrast_merges_the_model_and_the_record_in_one_spelling():
    from glmflow.core.outputs import sidecar_contrast

    model = {"Expressions": ["face - house"], "StatType": "t"}
    record = {"name": "face>house", "stat_type": "t", "dof": 73.0, "dropped": []}
    assert sidecar_contrast("face>house", model, record) == {
        "Name": "face>house",
        "Label": "faceGtHouse",
        "Expressions": ["face - house"],
        "StatType": "t",
        "DegreesOfFreedom": 73.0,
        "DroppedConditions": [],
    }


def test_sidecars_list_only_the_settings_of_applied_confound_strategies():
    from glmflow.core.model import ConfoundsSpec
    from glmflow.core.sidecars import applied_confounds

    columns = ConfoundsSpec(columns=("trans_x",)).to_dict()
    assert sorted(applied_confounds(columns)) == [
        "columns",
        "demean",
        "optional_columns",
        "strategy",
    ]
    chosen = ConfoundsSpec(strategy=("motion", "scrub")).to_dict()
    assert sorted(set(chosen) - set(applied_confounds(chosen))) == [
        "compcor", "global_signal", "n_compcor", "wm_csf"
    ]  # fmt: skip
