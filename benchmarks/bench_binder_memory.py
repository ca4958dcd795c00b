"""Binder's 2 GB: the notebooks' kernels' memory (PSS) when a workshop attendee leaves them open.

    python benchmarks/bench_binder_memory.py [--cold] [--interval 0.5]

Runs copies of ``notebooks/NN_*.ipynb`` in order, each in its own kernel, as JupyterLab
does; every kernel stays alive after its notebook (an attendee who never shuts one down).
A sampler reads the proportional set size (PSS, ``Pss:`` of ``/proc/PID/smaps_rollup``:
shared libraries split between the processes that map them, so the figures add up) of
each kernel's process tree (the kernel and its children, e.g. ``prepare``'s workers) twice
a second. Prints per notebook its kernel's PSS when it finished and its peak; the largest
sum of two consecutive kernels at any one moment; the largest all-open total. Targets
(issue "Binder's 2 GB"): every kernel <= 1.0 GB, two consecutive <= 1.6 GB. ``--cold``
deletes what the series builds in ``data/`` first, as on a fresh Binder.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

from helpers.notebooks import ipc_kernel_manager, notebook_paths  # noqa: E402
from helpers.series import BUILT_FOLDERS, data_dir  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark module
from bench_prepare import process_tree  # noqa: E402
from checks import report  # noqa: E402

TARGET_KERNEL_MB = 1024
TARGET_PAIR_MB = 1638  # 1.6 GB


def pss_mb(pid: int) -> float:
    """PSS of one process in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_pss_mb(pid: int) -> float:
    return sum(pss_mb(p) for p in process_tree(pid))


class Sampler(threading.Thread):
    """Samples every kernel's tree PSS; keeps per-kernel peaks, the largest pair and total."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval = interval
        self.pids: list[int] = []
        self.peaks: list[float] = []
        self.pair_peak = (0.0, -1)  # (MB, index of the first of the two)
        self.total_peak = 0.0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def add(self, pid: int) -> None:
        with self.lock:
            self.pids.append(pid)
            self.peaks.append(0.0)

    def sample(self) -> list[float]:
        with self.lock:
            pids = list(self.pids)
        now = [tree_pss_mb(pid) for pid in pids]
        with self.lock:
            for i, mb in enumerate(now):
                self.peaks[i] = max(self.peaks[i], mb)
            for i in range(len(now) - 1):
                if now[i] + now[i + 1] > self.pair_peak[0]:
                    self.pair_peak = (now[i] + now[i + 1], i)
            self.total_peak = max(self.total_peak, sum(now))
        return now

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="delete the demo data, caches and runs in data/ first")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples (default 0.5)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient

    if args.cold:
        for name in BUILT_FOLDERS:
            shutil.rmtree(data_dir() / name, ignore_errors=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    sampler = Sampler(args.interval)
    sampler.start()
    clients = []
    print(f"{'notebook':<40} {'seconds':>7} {'PSS at end':>11} {'peak PSS':>9}   all open", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for path in notebook_paths():
                copy = Path(tmp) / path.name
                shutil.copy2(path, copy)
                nb = nbformat.read(copy, as_version=4)
                km = ipc_kernel_manager()
                client = NotebookClient(nb, km=km, timeout=args.timeout, kernel_name="python3",
                                        resources={"metadata": {"path": tmp}})
                start = time.perf_counter()
                client.start_new_kernel(cwd=tmp)
                client.start_new_kernel_client()
                clients.append(client)
                sampler.add(km.provisioner.process.pid)
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
                seconds = time.perf_counter() - start
                time.sleep(2 * args.interval)  # let the sampler see the settled kernel
                now = sampler.sample()
                print(f"{path.name:<40} {seconds:7.1f} {now[-1]:8.0f} MB {sampler.peaks[-1]:6.0f} MB   "
                      f"{sum(now):5.0f} MB", flush=True)
        finally:
            sampler.stop.set()
            for client in clients:
                try:
                    client.kc.stop_channels()
                    client.km.shutdown_kernel(now=True)
                except Exception:  # noqa: BLE001 - best effort at exit
                    pass
    pair_mb, first = sampler.pair_peak
    names = [p.stem[:2] for p in notebook_paths()]
    largest = max(sampler.peaks)
    print(f"largest kernel: {largest:.0f} MB ({names[sampler.peaks.index(largest)]}); "
          f"largest two consecutive at one moment: {pair_mb:.0f} MB ({names[first]}+{names[first + 1]}); "
          f"all open, largest total: {sampler.total_peak:.0f} MB")
    return report({f"every kernel <= {TARGET_KERNEL_MB} MB PSS": largest <= TARGET_KERNEL_MB,
                   f"two consecutive kernels <= {TARGET_PAIR_MB} MB PSS": pair_mb <= TARGET_PAIR_MB})


if __name__ == "__main__":
    sys.exit(main())
