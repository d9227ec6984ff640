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
