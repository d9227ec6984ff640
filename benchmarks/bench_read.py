"""Reading one BOLD: inflaters side by side, the reader against its floor, ``.nii`` via mmap.

On one realistic run (2-mm MNI grid 97x115x97, 240 volumes, gzip float32, from
``glmflow.data.make_synthetic_dataset(preset="realistic")``), each in a fresh process,
repeated (the machine is shared: min, median and max are printed):

- ``python -m isal.igzip -dc bold > /dev/null``: the floor (ISA-L's own command);
- inflate only, in Python: ISA-L (``isal.igzip.open`` streamed by volume, what glmflow
  uses), libdeflate (the ``deflate`` package's one-shot ``gzip_decompress``: it needs the
  whole compressed file and the whole output in memory, and the output size from the gzip
  trailer), zlib (``gzip.open``);
- glmflow's ``read_bold`` (the masked float32 time series), with imports;
- the same run stored uncompressed (``.nii``), read by ``read_bold`` through ``np.memmap``
  (page cache, no read copy), warm cache, against ``cat bold.nii > /dev/null``.

Usage: ``python benchmarks/bench_read.py [--data DIR] [--repeats N]``; libdeflate is
measured when ``import deflate`` works (``pip install deflate``; the script also looks in
``$DEFLATE_PATH``). Prints a markdown table and writes ``benchmarks/RESULTS-read.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

INFLATE_CHILD = """
import sys, time
t0 = time.perf_counter()
kind, path = sys.argv[1], sys.argv[2]
if kind == "isal":
    from isal import igzip
    with igzip.open(path, "rb") as fh:
        while fh.read(97 * 115 * 97 * 4):
            pass
elif kind == "zlib":
    import gzip
    with gzip.open(path, "rb") as fh:
        while fh.read(97 * 115 * 97 * 4):
            pass
elif kind == "deflate":
    import deflate
    with open(path, "rb") as fh:
        data = fh.read()
    out = deflate.gzip_decompress(data)
    del out
print(time.perf_counter() - t0)
"""

READ_CHILD = """
import sys, time
t0 = time.perf_counter()
from glmflow.core.bold import read_bold
t1 = time.perf_counter()
read_bold(sys.argv[1], sys.argv[2])
print(time.perf_counter() - t1)
"""


def _wall(cmd: list[str], env=None, stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """Wall seconds of a child process and its peak RSS (GB)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-2000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return wall, rss


def _stats(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def _dataset(data_dir: Path) -> tuple[Path, Path]:
    bolds = sorted(data_dir.glob("derivatives/fmriprep/sub-*/func/*desc-preproc_bold.nii.gz"))
    if not bolds:
        from glmflow.data import make_synthetic_dataset

        make_synthetic_dataset(data_dir, preset="realistic", n_subjects=1, n_runs=1)
        bolds = sorted(data_dir.glob("derivatives/fmriprep/sub-*/func/*preproc_bold.nii.gz"))
    bold = bolds[0]
    mask = Path(str(bold).replace("desc-preproc_bold", "desc-brain_mask"))
    return bold, mask


def _have_deflate(env) -> bool:
    return subprocess.run([sys.executable, "-c", "import deflate"], env=env).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/glmflow-bench"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bold, mask = _dataset(args.data)
    env = dict(os.environ)
    if os.environ.get("DEFLATE_PATH"):
        env["PYTHONPATH"] = os.pathsep.join([env.get("PYTHONPATH", ""), env["DEFLATE_PATH"]])
    kinds = ["isal", "zlib"] + (["deflate"] if _have_deflate(env) else [])
    raw = Path(tempfile.mkdtemp(prefix="bench-read-")) / "bold.nii"
    with open(raw, "wb") as fh:
        subprocess.run([sys.executable, "-m", "isal.igzip", "-dc", str(bold)], stdout=fh)
    rows: dict[str, list[float]] = {}
    py = [sys.executable, "-c"]
    for _ in range(args.repeats):  # interleaved: load changes hit every row alike
        rows.setdefault("floor", []).append(
            _wall([sys.executable, "-m", "isal.igzip", "-dc", str(bold)])[0]
        )
        for kind in kinds:
            out = subprocess.run(
                [*py, INFLATE_CHILD, kind, str(bold)], capture_output=True, env=env, text=True
            )
            rows.setdefault(kind, []).append(float(out.stdout))
        for name, path in (("read_gz", bold), ("read_nii", raw)):
            wall, _ = _wall([*py, READ_CHILD, str(path), str(mask)])
            out = subprocess.run([*py, READ_CHILD, str(path), str(mask)], capture_output=True)
            rows.setdefault(name, []).append(float(out.stdout))
            rows.setdefault(name + "_proc", []).append(wall)
        rows.setdefault("cat", []).append(_wall(["cat", str(raw)])[0])
    raw.unlink()
    report = _report(rows, kinds, bold, args.repeats)
    print(report)
    (HERE / "RESULTS-read.md").write_text(report)


def _report(rows, kinds, bold: Path, repeats: int) -> str:
    floor = min(rows["floor"])
    label = {
        "isal": "ISA-L `isal.igzip.open`, streamed by volume (glmflow's inflater)",
        "deflate": "libdeflate `deflate.gzip_decompress` (whole file in, whole output out)",
        "zlib": "zlib `gzip.open`, streamed",
    }
    lines = [
        "# Reading one realistic BOLD",
        "",
        f"{bold.name}: {bold.stat().st_size / 1e6:.0f} MB gzip, 97x115x97x240 float32 "
        f"(1.04 GB); {platform.node()}, {os.cpu_count()} cores, shared; {repeats} repeats, "
        "interleaved. Seconds as min / median / max; ratio of the minima.",
        "",
        "| what | wall s (min / median / max) | vs `isal.igzip -dc` |",
        "| --- | --- | --- |",
        f"| `python -m isal.igzip -dc` (process) | {_stats(rows['floor'])} | 1.00x |",
    ]
    for kind in kinds:
        lines.append(
            f"| inflate only: {label[kind]} | {_stats(rows[kind])} | "
            f"{min(rows[kind]) / floor:.2f}x |"
        )
    lines += [
        f"| glmflow `read_bold` .nii.gz (masked float32, after imports) | "
        f"{_stats(rows['read_gz'])} | {min(rows['read_gz']) / floor:.2f}x |",
        f"| the same, whole process (imports included) | {_stats(rows['read_gz_proc'])} | "
        f"{min(rows['read_gz_proc']) / floor:.2f}x |",
        f"| glmflow `read_bold` .nii via np.memmap, warm cache (after imports) | "
        f"{_stats(rows['read_nii'])} | |",
        f"| `cat bold.nii > /dev/null`, warm cache | {_stats(rows['cat'])} | |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
