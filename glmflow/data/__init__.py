"""Synthetic BIDS + fMRIPrep dataset generator and packaged example models."""

from glmflow.data._truth import load_truth
from glmflow.data.synthetic import PRESETS, make_synthetic_dataset

__all__ = ["PRESETS", "load_truth", "make_synthetic_dataset"]
