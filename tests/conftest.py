"""Shared fixtures: the real reference data and small synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NIPYPE_NO_ET", "1")

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("GLMFLOW_REALDATA", ROOT.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Path of ../shared/realdata; tests that need it are skipped with a reason when absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real reference data not found at {REALDATA} (set GLMFLOW_REALDATA)")
    return REALDATA


@pytest.fixture(scope="session")
def synthetic_1x2(tmp_path_factory) -> Path:
    """The small synthetic dataset, 1 subject x 2 runs x 60 volumes (copy it to edit it)."""
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_1x2")
    return make_synthetic_dataset(root / "bids", n_subjects=1, n_runs=2, n_volumes=60)


@pytest.fixture(scope="session")
def synthetic_3x1(tmp_path_factory) -> Path:
    """The small synthetic dataset, 3 subjects x 1 run x 60 volumes (copy it to edit it)."""
    from glmflow.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_3x1")
    return make_synthetic_dataset(root / "bids", n_subjects=3, n_runs=1, n_volumes=60)
