"""Synthetic BIDS + fMRIPrep dataset generator and packaged example models."""

from glmflow.data.synthetic import PRESETS, load_truth, make_synthetic_dataset

__all__ = ["PRESETS", "load_truth", "make_synthetic_dataset"]
