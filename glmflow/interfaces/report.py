"""SaveReportAtlas and RenderReport: the report pages' atlas and one page per node."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    TraitedSpec,
    traits,
)

from glmflow.core.report import render_report
from glmflow.core.report.maps import REPORT_ATLAS, save_atlas
from glmflow.interfaces.base import CoreInterface, StagedSink, given


class _SaveReportAtlasInputSpec(BaseInterfaceInputSpec):
    atlas = traits.Str(REPORT_ATLAS, usedefault=True, desc="glmflow.core.atlases volume atlas")


class _SaveReportAtlasOutputSpec(TraitedSpec):
    atlas_image = File(exists=True, desc="the atlas' 3-D label image (NIfTI)")
    atlas_labels = File(exists=True, desc="JSON: name, description, licence, label names")


class SaveReportAtlas(CoreInterface):
    """Write the atlas' label image once (glmflow.core.report.maps.save_atlas)."""

    input_spec = _SaveReportAtlasInputSpec
    output_spec = _SaveReportAtlasOutputSpec

    def _run_core(self, inputs, out_dir):
        image, labels = save_atlas(out_dir, inputs.atlas)
        return {"atlas_image": image, "atlas_labels": labels}


class _RenderReportInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="the output dataset (pages go to its top)")
    plan = traits.Str(mandatory=True, desc="JSON of the page (glmflow.core.report.PagePlan)")
    content_key = traits.Str(
        mandatory=True,
        desc="PagePlan.content_key: the contents of every file the page reads (the cache key "
        "follows them, not their modification times)",
    )
    atlas_image = File(exists=True, mandatory=True, desc="SaveReportAtlas atlas_image")
    atlas_labels = File(exists=True, mandatory=True, desc="SaveReportAtlas atlas_labels")
    memo_dir = traits.Str(
        nohash=True,
        desc="folder remembering the parts of subject pages (the runs' mean images and "
        "design and motion parts, each contrast's section) by their contents: an edit draws "
        "only what it changed",
    )


class RenderReport(StagedSink):
    """Render one report page (glmflow.core.report.render_report); staged, then published."""

    input_spec = _RenderReportInputSpec

    def _run_core(self, inputs, out_dir):
        page, staged, manifest = render_report(
            inputs.plan, atlas_image=inputs.atlas_image, atlas_labels=inputs.atlas_labels,
            output_dir=inputs.output_dir, stage_dir=out_dir, memo_dir=given(inputs.memo_dir),
        )  # fmt: skip
        return self._staged([page], [staged], manifest)
