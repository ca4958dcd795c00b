"""Wall time of the notebook series, and each kernel's peak memory.

    python benchmarks/bench_series.py [--cold]

Executes copies of ``notebooks/NN_*.ipynb`` (the committed notebooks are left as they
are) in order, each in a fresh kernel, as a reader would run them. ``--cold`` first
deletes what the series builds in ``data/`` (demo clips, caches, trained runs, 08's
grouped demo included), so the figures include building them, as on a fresh clone.
Targets: the whole series in <= 6 minutes on 2 cores, every kernel <= 1.5 GB peak RSS
(VmHWM of the kernel process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

from helpers.notebooks import execute_series, notebook_paths  # noqa: E402
from helpers.series import BUILT_FOLDERS, data_dir  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark module
from checks import report  # noqa: E402

TARGET_SECONDS = 360
TARGET_RSS_MB = 1536


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="delete the demo data, caches and runs in data/ first")
    args = parser.parse_args()
    if args.cold:
        for name in BUILT_FOLDERS:
            shutil.rmtree(data_dir() / name, ignore_errors=True)
    # Kernels inherit the environment: let them import helpers from this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        copies = []
        for path in notebook_paths():
            copy = Path(tmp) / path.name
            shutil.copy2(path, copy)
            copies.append(copy)
        print(f"{'notebook':<40} {'seconds':>7}   kernel peak RSS", flush=True)
        runs = execute_series(copies)
    total = sum(r.seconds for r in runs)
    peak = max((r.kernel_peak_rss_mb or 0.0) for r in runs)
    print(f"{'series':<40} {total:7.1f} s ({'cold' if args.cold else 'warm'} data/); largest kernel {peak:.0f} MB")
    return report({f"series {total:.0f} s (<= {TARGET_SECONDS} s)": total <= TARGET_SECONDS,
                   f"largest kernel {peak:.0f} MB (<= {TARGET_RSS_MB} MB)": peak <= TARGET_RSS_MB})


if __name__ == "__main__":
    sys.exit(main())
