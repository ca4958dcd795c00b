"""Benchmark ``helpers.prepare.prepare``: peak memory against the number of clips, and worker scaling.

    python benchmarks/bench_prepare.py [--clips 20 200] [--num-frames 32] [--size 48] [--seed 0]

Makes (once, kept under benchmarks/out/) demo datasets of 20 and 200 clips with
``helpers.demo.make_demo_dataset``, then runs every measurement in its own fresh
subprocess, preparing into a new temporary cache:

- memory: ``workers=2`` on 20 and on 200 clips. Target: peak within 10 %.
- speed, on a set of ``--speed-clips`` (default 100): one worker held to one OpenCV
  thread (``cv2.setNumThreads(1)``), one worker with OpenCV's default threads, two
  workers; ``--repeat`` rounds (default 3), the three interleaved in each round so that
  load from other programs falls on all alike, and the best round of each is compared.
  Targets: two workers >= 1.7x the one-thread worker, and >= the default-threads worker.

How peak memory is measured. ``prepare`` runs in a child process whose workers are its
descendants (with forkserver: children of the fork server, itself a child), so no single
``getrusage`` figure covers them all: ``RUSAGE_CHILDREN``'s ``ru_maxrss`` is the largest
*single* descendant, not the sum, and counts only processes already waited for. So this
script samples, every ``SAMPLE_S`` seconds, the sum of ``VmRSS`` (``/proc/PID/status``)
over the child and all its descendants (found through ``/proc/PID/task/*/children``), and
reports the largest sum: ``tree_peak_mb``. RSS counts shared pages (libraries, pages
shared with the fork server) once per process, so the sum over-states the memory really
used; it is the conservative figure. Alongside, ``main_maxrss_mb`` is the exact lifetime
peak of the process that called ``prepare`` (its own ``ru_maxrss``), and
``largest_descendant_mb`` the ``RUSAGE_CHILDREN`` figure. Linux only (``/proc``).

Clips per second count the whole ``prepare`` call (pool start-up included) on a cache
prepared from scratch. The machine should be otherwise idle: other load skews speed
(the load average is printed before and after).

``measure_prepare`` is the function other benchmarks call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark module
from checks import report  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
#: Seconds between samples of the process tree's memory.
SAMPLE_S = 0.02
#: Targets (see the module docstring).
MEMORY_TOLERANCE = 0.10
MIN_SPEEDUP_2_WORKERS = 1.7


def demo_dataset(n_clips: int, seed: int = 0, root: Path = OUT) -> Path:
    """A demo dataset of ``n_clips`` clips under ``root``, made on first use.

    Made by ``python -m helpers demo-data`` in its own process: a fresh interpreter whose
    worker pool never forks from a process that has OpenCV threads running.
    """
    folder = Path(root) / f"prepare_demo_{n_clips}_seed{seed}"
    if not (folder / "annotation_test.pkl").is_file():
        subprocess.run([sys.executable, "-m", "helpers", "demo-data", str(folder), "--clips", str(n_clips),
                        "--seed", str(seed)], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return folder


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it, from ``/proc/PID/task/TID/children`` (all threads)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue  # ended meanwhile
    return found


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` now (``VmRSS``), in kB; 0 once it has ended."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (``/proc/PID/stat`` fields 14 and 15), 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _sample_tree(pid: int, stop: threading.Event, peak: dict[str, Any]) -> None:
    """Until ``stop``: the largest RSS sum over the tree, and each process's last CPU time seen."""
    while not stop.is_set():
        pids = process_tree(pid)
        total = sum(rss_kb(p) for p in pids)
        if total > peak["kb"]:
            peak["kb"], peak["processes"] = total, len(pids)
        for p in pids:
            peak["ticks"][p] = max(peak["ticks"].get(p, 0), _cpu_ticks(p))
        stop.wait(SAMPLE_S)


def measure_prepare(source: Path, workers: int | None = None, cv_threads: int | None = None,
                    num_frames: int = 32, size: int = 48, out: Path | None = None) -> dict[str, Any]:
    """Run ``prepare(source, ...)`` in a fresh subprocess on an empty cache; time it and sample its memory.

    ``cv_threads``: call ``cv2.setNumThreads`` in that process first (None: OpenCV's default).
    ``out``: the cache folder (default: a temporary one, deleted after). Returns clips,
    seconds, clips_per_s, tree_peak_mb, main_maxrss_mb, largest_descendant_mb, cpu_s (CPU
    time of the whole process tree, sampled like the memory), cores_used (cpu_s / seconds),
    workers and prepare's summary counts.
    """
    tmp = None
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
        out = tmp / "cache"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(source), str(out),
           "--num-frames", str(num_frames), "--size", str(size)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if cv_threads is not None:
        cmd += ["--cv-threads", str(cv_threads)]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak: dict[str, Any] = {"kb": 0, "processes": 0, "ticks": {}}
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, stop, peak), daemon=True)
        sampler.start()
        stdout, stderr = proc.communicate()
        stop.set()
        sampler.join()
        if proc.returncode != 0:
            raise RuntimeError(f"prepare child failed ({proc.returncode}):\n{stderr[-3000:]}")
        result = json.loads(stdout.strip().splitlines()[-1])
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result["tree_peak_mb"] = round(peak["kb"] / 1024, 1)
    result["tree_processes_at_peak"] = peak["processes"]
    # CPU seconds of the whole tree (each process's last sample: at most SAMPLE_S short of its end)
    result["cpu_s"] = round(sum(peak["ticks"].values()) / os.sysconf("SC_CLK_TCK"), 2)
    result["cores_used"] = round(result["cpu_s"] / result["seconds"], 2)
    return result


def _child(args: argparse.Namespace) -> None:
    """Inside the measured subprocess: prepare once and print one JSON line."""
    if args.cv_threads is not None:
        import cv2

        cv2.setNumThreads(args.cv_threads)
    from helpers.prepare import prepare

    start = time.perf_counter()
    summary = prepare(Path(args.source), Path(args.out), num_frames=args.num_frames, size=args.size,
                      workers=args.workers, progress=False)
    seconds = time.perf_counter() - start
    done = summary["prepared"] + summary["no_face"] + summary["unreadable"]
    # ru_maxrss is in KiB on Linux
    print(json.dumps({
        "clips": done, "seconds": round(seconds, 3), "clips_per_s": round(done / seconds, 2),
        "workers": summary["workers"], "cv_threads": args.cv_threads,
        "prepared": summary["prepared"], "no_face": summary["no_face"], "unreadable": summary["unreadable"],
        "main_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "largest_descendant_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs=2, default=[20, 200], metavar=("SMALL", "LARGE"),
                        help="clip counts compared for memory (default 20 200)")
    parser.add_argument("--speed-clips", type=int, default=100, help="clips of the speed runs (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of speed runs; the best counts (default 3)")
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["memory", "speed"], default=None, help="run one half only")
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cv-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.source, args.out = args.child
        _child(args)
        return 0

    import cv2

    small, large, speed_set = (demo_dataset(n, args.seed) for n in (*args.clips, args.speed_clips))
    print(f"cpus: {os.cpu_count()}, opencv default threads: {cv2.getNumThreads()}, "
          f"load average: {os.getloadavg()[0]:.2f}, num_frames {args.num_frames}, size {args.size}")

    def show(label: str, r: dict[str, Any]) -> None:
        print(f"{label:<36} {r['clips']:>4} clips {r['seconds']:>7.2f} s {r['clips_per_s']:>7.2f} clips/s   "
              f"tree peak {r['tree_peak_mb']:>6.1f} MB ({r['tree_processes_at_peak']} processes), "
              f"main {r['main_maxrss_mb']:.1f} MB; CPU {r['cpu_s']:.1f} s, {r['cores_used']:.2f} cores", flush=True)

    kw = {"num_frames": args.num_frames, "size": args.size}
    checks: dict[str, bool] = {}
    if args.only in (None, "memory"):
        mem_small = measure_prepare(small, workers=2, **kw)
        show(f"memory: {args.clips[0]} clips, 2 workers", mem_small)
        mem_large = measure_prepare(large, workers=2, **kw)
        show(f"memory: {args.clips[1]} clips, 2 workers", mem_large)
        ratio = mem_large["tree_peak_mb"] / mem_small["tree_peak_mb"]
        checks[f"peak memory {args.clips[1]} / {args.clips[0]} clips = {ratio:.3f} (within 1 +- {MEMORY_TOLERANCE})"] = \
            abs(ratio - 1) <= MEMORY_TOLERANCE

    if args.only in (None, "speed"):
        configs = {"1 worker, 1 OpenCV thread": {"workers": 1, "cv_threads": 1},
                   "1 worker, default threads": {"workers": 1},
                   "2 workers": {"workers": 2}}
        best: dict[str, dict[str, Any]] = {}
        for round_ in range(args.repeat):
            for label, config in configs.items():
                r = measure_prepare(speed_set, **config, **kw)
                show(f"speed {round_ + 1}: {label}", r)
                if label not in best or r["clips_per_s"] > best[label]["clips_per_s"]:
                    best[label] = r
        one_thread, one_default, two = (best[label] for label in configs)
        speedup = two["clips_per_s"] / one_thread["clips_per_s"]
        vs_default = two["clips_per_s"] / one_default["clips_per_s"]
        # Independent of other load: CPU seconds per clip. Equal figures mean the two workers
        # waste nothing, and their speed-up is bounded only by the cores they are given.
        per_clip = {label: r["cpu_s"] / r["clips"] for label, r in best.items()}
        print("CPU per clip: " + ", ".join(f"{label} {v:.3f} s" for label, v in per_clip.items())
              + f"; 2 workers spend {per_clip['2 workers'] / per_clip['1 worker, 1 OpenCV thread']:.2f}x "
              "the CPU per clip of 1 worker, 1 thread")
        checks[f"2 workers / 1 worker 1 thread = {speedup:.2f}x (>= {MIN_SPEEDUP_2_WORKERS})"] = \
            speedup >= MIN_SPEEDUP_2_WORKERS
        checks[f"2 workers / 1 worker default threads = {vs_default:.2f}x (>= 1)"] = vs_default >= 1.0
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return report(checks)

if __name__ == "__main__":
    sys.exit(main())
