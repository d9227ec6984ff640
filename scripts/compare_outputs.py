#!/usr/bin/env python3
"""Compare two glmflow output folders map by map (a refactor must not change a number).

    python scripts/compare_outputs.py BEFORE/derivatives/glmflow AFTER/derivatives/glmflow

Every NIfTI found in both folders (matched by relative path, after ``--rename OLD=NEW`` rules
applied to BEFORE's names, e.g. ``desc-design_matrix=design``) is compared voxel by voxel; the
largest absolute difference per file is reported. Files present on one side only are listed.
Exit code 1 when any shared map differs by more than ``--atol`` or a map exists on one side
only (``--allow-missing`` accepts the latter), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def _maps(folder: Path, renames: list[tuple[str, str]]) -> dict[str, Path]:
    found = {}
    for path in sorted(folder.rglob("*.nii*")):
        name = str(path.relative_to(folder))
        for old, new in renames:
            name = name.replace(old, new)
        found[name] = path
    return found


def _difference(a: Path, b: Path) -> float:
    img_a, img_b = nib.load(a), nib.load(b)
    if img_a.shape != img_b.shape or not np.allclose(img_a.affine, img_b.affine):
        return float("inf")
    x = np.asanyarray(img_a.dataobj, dtype=np.float64)
    y = np.asanyarray(img_b.dataobj, dtype=np.float64)
    same_nan = np.isnan(x) == np.isnan(y)
    if not same_nan.all():
        return float("inf")
    finite = ~np.isnan(x)
    return float(np.max(np.abs(x[finite] - y[finite]), initial=0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--atol", type=float, default=0.0, help="largest accepted |difference|")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    parser.add_argument("--allow-missing", action="store_true")
    args = parser.parse_args(argv)
    renames = [tuple(rule.split("=", 1)) for rule in args.rename]
    before, after = _maps(args.before, renames), _maps(args.after, [])
    shared = sorted(before.keys() & after.keys())
    worst, bad = 0.0, []
    for name in shared:
        diff = _difference(before[name], after[name])
        worst = max(worst, diff)
        if diff > args.atol:
            bad.append((name, diff))
    only = sorted(before.keys() ^ after.keys())
    for name in only:
        side = "before" if name in before else "after"
        print(f"only {side}: {name}")
    for name, diff in bad:
        print(f"differs by {diff:.3g}: {name}")
    print(f"{len(shared)} maps compared, max |difference| {worst:.3g}; {len(bad)} over "
          f"{args.atol:g}; {len(only)} on one side only")
    return 1 if bad or (only and not args.allow_missing) else 0


if __name__ == "__main__":
    sys.exit(main())
