"""The group level (second level) in core: plain typed functions, no Nipype.

One module per job; every user mistake raises :class:`~glmflow.errors.GroupModelError` with
one line naming the file, the field, the value and the fix.

- :mod:`~glmflow.core.group.subject_maps`: the subject maps the participant level wrote,
  found by their BIDS entities (pybids)
- :mod:`~glmflow.core.group.design`: designs from ``participants.tsv`` or a design TSV
- :mod:`~glmflow.core.group.contrasts`: group contrasts into weights
- :mod:`~glmflow.core.group.inputs`: maps (and a group mask) checked and loaded on one grid
- :mod:`~glmflow.core.group.fit`: nilearn's SecondLevelModel or precision-weighted fixed effects
- :mod:`~glmflow.core.group.plan`: the checked plan of one task (:class:`GroupPlan`)
- :mod:`~glmflow.core.group.outputs`: the images of a fit and an inference, and their BIDS names
"""

from glmflow.core.group.contrasts import (
    ContrastDef,
    contrast_weights,
    parse_contrast,
    parse_contrasts,
)
from glmflow.core.group.design import (
    check_design,
    default_group_contrasts,
    load_participants,
    make_group_design,
    read_design,
)
from glmflow.core.group.fit import OUTPUT_TYPES, GroupFit, fit_group_model
from glmflow.core.group.inputs import (
    ImageLike,
    as_affine,
    check_group_inputs,
    check_group_mask,
    load_maps,
)

__all__ = [
    "OUTPUT_TYPES",
    "ContrastDef",
    "GroupFit",
    "ImageLike",
    "as_affine",
    "check_design",
    "check_group_inputs",
    "check_group_mask",
    "contrast_weights",
    "default_group_contrasts",
    "fit_group_model",
    "load_maps",
    "load_participants",
    "make_group_design",
    "parse_contrast",
    "parse_contrasts",
    "read_design",
]
