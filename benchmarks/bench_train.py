"""Benchmark training: memory, step time and accuracy of the default (light) model.

    python benchmarks/bench_train.py [--clips 200] [--seed 0] [--length 32] [--batch-size 8]
                                     [--train-seeds 0 1 2] [--split-scheme by-video] [--split-seed 0]
                                     [--demo DIR --cache DIR] [--steps 20] [--warmup 3]
                                     [--no-prepare] [--skip-article] [--bootstrap-timing-only]

On the synthetic demo dataset (made once with ``helpers.demo.make_demo_dataset`` and
prepared once with ``helpers.prepare.prepare``, both kept under the git-ignored
``benchmarks/out/``), every figure comes from its own fresh subprocess:

0. The demo labels, from the demo's annotation files alone (``helpers.labels``): the share of
   test clips whose video (person) has training clips, the two baselines (train mean,
   same video), the mean pairwise trait correlation and the share of each trait's variance
   between videos, against the issue's targets (test overlap 0.7-0.95, mean r 0.3-0.5,
   between-video share 0.55-0.85, same-video gain >= 0.0118, half the real gain).
1. ``train``: ``helpers.training.train`` of the default model at the settings the
   notebooks use (``length`` 32, ``split_scheme`` by-video, every other argument at its
   default), once per training seed (``--train-seeds``, default 0 1 2; the split seed stays
   fixed), and its test-split report: mean accuracy (1 - MAE) and MAE against the
   train-mean and same-video baselines; wall and CPU seconds of the training. Peak memory:
   the training process's own lifetime peak (``VmHWM`` of ``/proc/self/status``) plus the
   largest sum of RSS of its descendants, sampled every ``SAMPLE_S`` s by this script
   (training starts none, so that part is about 0). Not ``RUSAGE_CHILDREN``: TensorFlow's
   import forks short helper processes, and on Linux a forked child's ``ru_maxrss``
   starts at its parent's RSS at the fork (about 470 MB here) even after it execs a tiny
   program, so that figure would count the parent twice.
2. ``train`` of the per-frame pooled model (``build_per_frame_model``: the same frame
   encoder, averaged over time) with the same settings and seeds: it cannot see the order of
   frames, so it must do clearly worse on extraversion, the demo trait set by the
   FREQUENCY of head rocking.
3. ``steps``: the median time of one training step (``train_on_batch``, after ``--warmup``
   steps, over ``--steps`` steps) of the light and of the article model, at equal frames
   and batch size, on the same batches of the demo cache (held in memory, so the input
   pipeline is not timed), both compiled the same way (``jit_compile=False``, the Keras
   default on CPU for these models). Also the peak RSS of each of these processes.
4. The demo data's noise floor (``helpers.demo.noise_floor``: a model predicting every
   noiseless score exactly) on the test split.
5. The prepare figures, from ``benchmarks/bench_prepare.py``'s ``measure_prepare``
   (skip with ``--no-prepare``): peak memory of the process tree preparing 20 and 200
   clips with 2 workers, and clips/s with 1 and 2 workers.

Scores with intervals (``helpers.metrics``): each training child also scores its run on
validation and test with ``score_report`` (accuracy, r, CCC, R^2 against the train mean,
SD ratio and slope per trait, each with a 95 % interval from 2,000 resamples of the test
*videos*, seed 0), the calibration on both splits, and the test score after a per-trait
line fitted on validation; the light and per-frame runs of one seed, which share their test
clips, are compared with ``compare`` (paired MAE difference, its interval, the share of
resamples where the light model is better). First of all it times one ``score_report`` of
2,000 resamples of 2,000 clips (``--bootstrap-timing-only`` stops there).

Targets (the issues' "done when"): bootstrap <= 1 s; light training peak RSS <= 1.5 GB; light step >= 10x
faster than the article's; on the by-video scheme, light test MAE <= 0.6x the train-mean
baseline's (mean over the training seeds); per-frame model's extraversion MAE >= 1.2x the
light model's (means over the seeds); the demo label targets of 0. Prints a table, the ratios and PASS/FAIL lines, and writes
everything to ``benchmarks/out/bench_train.json``. Timings depend on the machine and its
load (the load average is printed); run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere without installing

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark module
from bench_prepare import demo_dataset, measure_prepare, process_tree, rss_kb  # noqa: E402
from checks import report  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MAX_TRAIN_RSS_GB = 1.5
MIN_STEP_SPEEDUP = 10.0
MAX_MAE_RATIO = 0.6
#: Demo label targets: test overlap, mean pairwise r, between-video share (ranges), same-video gain (minimum).
OVERLAP_RANGE, MEAN_R_RANGE, SHARE_RANGE, MIN_SAME_VIDEO_GAIN = (0.7, 0.95), (0.3, 0.5), (0.55, 0.85), 0.0118
#: The per-frame model's extraversion MAE must exceed the light model's by this factor.
MIN_EXTRAVERSION_GAP = 1.2
#: Most seconds one ``metrics.score_report`` may take: 2,000 resamples of 2,000 clips.
MAX_BOOTSTRAP_S = 1.0
#: Seconds between samples of a child's descendants' memory.
SAMPLE_S = 0.05


def _vmhwm_mb(pid: str | int = "self") -> float:
    """Peak resident memory since exec (``VmHWM`` of ``/proc/PID/status``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sample_descendants(pid: int, stop: threading.Event, peak: dict[str, float]) -> None:
    """Until ``stop``: the largest sum of RSS over the descendants of ``pid``."""
    while not stop.is_set():
        below = process_tree(pid)[1:]  # the tree without ``pid`` itself
        peak["mb"] = max(peak["mb"], sum(rss_kb(p) for p in below) / 1024)
        stop.wait(SAMPLE_S)


# ----------------------------------------------------------------------------- children


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _child_train(cfg: dict[str, Any]) -> dict[str, Any]:
    from helpers.training import train

    start, cpu = time.perf_counter(), _cpu_seconds()
    metrics = train(Path(cfg["cache"]), Path(cfg["out"]), model_name=cfg["model"], length=cfg["length"],
                    seed=cfg["seed"], split_scheme=cfg["split_scheme"], split_seed=cfg["split_seed"],
                    **({"batch_size": cfg["batch_size"]} if cfg.get("batch_size") else {}))
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    peak = _vmhwm_mb()  # before scoring, which loads the run's model a second time
    scores = _scores(Path(cfg["cache"]), Path(cfg["out"]))
    keep = ("model", "mean_accuracy", "mean_mae", "baseline_mean_accuracy", "baseline_mean_mae", "mae_ratio",
            "same_video_baseline_mean_accuracy", "split_scheme", "split_seed", "seed",
            "per_trait", "epochs_run", "best_epoch", "params", "train_seconds", "n_clips", "batch_size", "epochs")
    return {**{k: metrics[k] for k in keep}, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "self_peak_mb": round(peak, 1), **scores}


def _scores(cache: Path, run: Path) -> dict[str, Any]:
    """The run's validation and test predictions scored with intervals that resample videos.

    ``scores``/``val_scores``: ``metrics.score_report`` (seed 0, 2,000 resamples);
    ``calibration``: ``metrics.calibration`` on validation and test; ``recalibrated``: the
    test ``score_report`` after a per-trait line fitted on validation (``fit_recalibration``);
    ``test_predictions``: names, labels and predictions, for paired comparisons between runs.
    """
    import numpy as np

    from helpers import metrics as M
    from helpers.dataset import video_id
    from helpers.training import evaluate

    out: dict[str, Any] = {}
    reps = {split: evaluate(run, cache, split) for split in ("validation", "test")}
    for split, rep in reps.items():
        t, p = np.asarray(rep["y_true"]), np.asarray(rep["y_pred"])
        vids = [video_id(n) for n in rep["names"]]
        means = [rep["train_means"][k] for k in rep["per_trait"]]
        out["val_scores" if split == "validation" else "scores"] = M.score_report(t, p, vids, means=means)
        out.setdefault("calibration", {})[split] = M.calibration(t, p)
    val, test = reps["validation"], reps["test"]
    slope, intercept = M.fit_recalibration(val["y_true"], val["y_pred"])
    out["recalibrated"] = M.score_report(test["y_true"], M.apply_recalibration(test["y_pred"], slope, intercept),
                                         [video_id(n) for n in test["names"]],
                                         means=[test["train_means"][k] for k in test["per_trait"]])
    out["test_predictions"] = {k: test[k] for k in ("names", "y_true", "y_pred")}
    return out


def time_bootstrap(clips: int = 2000, videos: int = 600, resamples: int = 2000) -> float:
    """Seconds of one ``metrics.score_report`` with ``resamples`` resamples of ``clips`` clips (best of 3)."""
    import numpy as np

    from helpers import metrics as M

    rng = np.random.default_rng(0)
    t = rng.uniform(size=(clips, 5))
    p = np.clip(t + rng.normal(0, 0.1, t.shape), 0, 1)
    vids = rng.integers(0, videos, clips)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        M.score_report(t, p, vids, means=t.mean(axis=0), same_video=t, resamples=resamples)
        times.append(time.perf_counter() - start)
    return min(times)


def _child_steps(cfg: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from helpers.inputs import make_dataset
    from helpers.models import build_model

    import keras

    keras.utils.set_random_seed(cfg["seed"])
    ds, _ = make_dataset(Path(cfg["cache"]), "train", cfg["length"], cfg["batch_size"])
    batches = []
    for x, y in ds.as_numpy_iterator():
        if len(y) == cfg["batch_size"]:
            batches.append((x, y))
        if len(batches) == 4:
            break
    model = build_model(cfg["model"], cfg["length"], jit_compile=False)
    times = []
    for i in range(cfg["warmup"] + cfg["steps"]):
        x, y = batches[i % len(batches)]
        start = time.perf_counter()
        model.train_on_batch(x, y)
        if i >= cfg["warmup"]:
            times.append(time.perf_counter() - start)
    return {"model": cfg["model"], "params": int(model.count_params()), "steps": len(times),
            "median_step_s": round(statistics.median(times), 4), "min_step_s": round(min(times), 4),
            "max_step_s": round(max(times), 4), "length": cfg["length"], "batch_size": cfg["batch_size"],
            "self_peak_mb": round(_vmhwm_mb(), 1)}


def _run_child(mode: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its last stdout line is the JSON result.

    Adds ``children_peak_mb`` (largest sum of RSS over the child's own descendants, sampled
    every ``SAMPLE_S`` s; training starts none, so about 0) and ``peak_rss_mb`` = the
    child's lifetime peak (``self_peak_mb``, its VmHWM) + ``children_peak_mb``.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    peak = {"mb": 0.0}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_descendants, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}):\n{stderr[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["children_peak_mb"] = round(peak["mb"], 1)
    result["peak_rss_mb"] = round(result["self_peak_mb"] + peak["mb"], 1)
    return result


# ----------------------------------------------------------------------------- data


def demo_cache(clips: int, seed: int, num_frames: int, size: int = 48) -> tuple[Path, Path]:
    """The demo dataset and its prepared cache under ``benchmarks/out/``, made on first use."""
    from helpers.demo import DEMO_VERSION, FACTORS_FILE

    demo = OUT / f"train_demo_{clips}_seed{seed}"
    cache = OUT / f"train_cache_{clips}_seed{seed}_f{num_frames}_s{size}"
    factors = demo / FACTORS_FILE
    if not (factors.is_file() and json.loads(factors.read_text()).get("version") == DEMO_VERSION):
        (cache / "manifest.json").unlink(missing_ok=True)  # the cache of an older demo: prepare again
        subprocess.run([sys.executable, "-m", "helpers", "demo-data", str(demo), "--clips", str(clips),
                        "--seed", str(seed)], cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = cache / "manifest.json"
    if not (manifest.is_file() and json.loads(manifest.read_text()).get("complete")):
        subprocess.run([sys.executable, "-m", "helpers", "prepare", str(demo), "--out", str(cache),
                        "--num-frames", str(num_frames), "--size", str(size)], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return demo, cache


# ----------------------------------------------------------------------------- report


def _fmt_gb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB"


def _print_intervals(runs: dict[str, list[dict[str, Any]]], M) -> None:
    """Per model and seed: test scores with 95 % intervals that resample videos, calibration,
    the recalibrated score; then light against per-frame, paired on the same test clips."""
    for model, label in (("light", "light"), ("per_frame", "per-frame")):
        for r in runs[model]:
            print(M.format_score_report(r["scores"], title=f"{label}, seed {r['seed']}: test split"))
            cal = r["calibration"]["test"]
            print("  calibration on test (SD of predictions / SD of labels; slope of labels on predictions): "
                  + ", ".join(f"{t[:5]} {_opt(c['sd_ratio'])}/{_opt(c['slope'])}" for t, c in cal.items()))
            recal, raw = (M.interval_text(r[k]["mean_accuracy"], 4) for k in ("recalibrated", "scores"))
            print(f"  recalibrated on validation, test mean accuracy {recal} (raw {raw})")
            print()
    for a, b in zip(runs["light"], runs["per_frame"]):
        pa, pb = a["test_predictions"], b["test_predictions"]
        if pa["names"] != pb["names"]:
            print(f"seed {a['seed']}: the two models' test clips differ; no paired comparison")
            continue
        c = M.compare_runs(pa, pb, metric="mae")
        ex, mean = c["traits"]["extraversion"], c["mean"]
        print(f"light - per-frame, seed {a['seed']}, test MAE paired over {c['n_videos']} videos: "
              f"extraversion {ex['difference']:+.4f} [{ex['low']:+.4f}, {ex['high']:+.4f}] (light better in "
              f"{ex['share_a_better']:.0%}), mean {mean['difference']:+.4f} [{mean['low']:+.4f}, {mean['high']:+.4f}] "
              f"({mean['share_a_better']:.0%})")
        a["compare_per_frame"] = c


def _opt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="demo clips (default 200, as the notebooks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--length", type=int, default=32, help="sequence length the model sees, and frames sampled per clip by prepare (default 32, as the notebooks)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch of the step timing (default 8)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds; figures are means over them (default 0 1 2)")
    parser.add_argument("--split-scheme", default="by-video", help="split scheme of the training runs (default by-video)")
    parser.add_argument("--split-seed", type=int, default=0, help="split seed of the by-video scheme (default 0)")
    parser.add_argument("--demo", help="an existing demo dataset folder (with --cache) instead of benchmarks/out/")
    parser.add_argument("--cache", help="its prepared cache (32 frames, 48 px)")
    parser.add_argument("--no-prepare", action="store_true", help="skip the prepare figures")
    parser.add_argument("--skip-article", action="store_true", help="skip the article model's step timing")
    parser.add_argument("--bootstrap-timing-only", action="store_true",
                        help="only time metrics.score_report (2,000 resamples of 2,000 clips) and stop")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, cfg = args.child[0], json.loads(args.child[1])
        result = {"train": _child_train, "steps": _child_steps}[mode](cfg)
        print(json.dumps(result))
        return 0

    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}", flush=True)
    boot_s = time_bootstrap()
    boot_text = f"score_report: 2,000 resamples of 2,000 clips (600 videos) in {boot_s:.3f} s (<= {MAX_BOOTSTRAP_S} s)"
    print(boot_text, flush=True)
    if args.bootstrap_timing_only:
        return report({boot_text: boot_s <= MAX_BOOTSTRAP_S})

    from helpers import labels as lb
    from helpers import metrics as M
    from helpers.demo import noise_floor

    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    demo, cache = (Path(args.demo), Path(args.cache)) if args.demo else demo_cache(args.clips, args.seed, args.length)
    base = {"cache": str(cache), "length": args.length, "seed": args.seed}
    results: dict[str, Any] = {"settings": {**base, "clips": args.clips, "batch_size": args.batch_size,
                                            "steps": args.steps, "warmup": args.warmup, "train_seeds": args.train_seeds,
                                            "split_scheme": args.split_scheme, "split_seed": args.split_seed}}
    label_rep = lb.label_report(lb.load_label_files([demo]))
    results["labels"] = label_rep

    runs: dict[str, list[dict[str, Any]]] = {"light": [], "per_frame": []}
    for model in runs:
        for seed in args.train_seeds:
            print(f"training the {model} model, seed {seed} ({args.split_scheme} splits) ...", flush=True)
            runs[model].append(_run_child("train", {**base, "model": model, "seed": seed,
                                                    "split_scheme": args.split_scheme, "split_seed": args.split_seed,
                                                    "out": str(OUT / f"bench_run_{model}_{seed}")}))
    light = runs["light"][0]  # the seed-independent figures: clip counts, baselines
    print("timing training steps ...", flush=True)
    steps = {"light": _run_child("steps", {**base, "model": "light", "batch_size": args.batch_size,
                                           "steps": args.steps, "warmup": args.warmup})}
    if not args.skip_article:
        steps["article"] = _run_child("steps", {**base, "model": "article", "batch_size": args.batch_size,
                                                "steps": args.steps, "warmup": args.warmup})
    floor = noise_floor(demo, "test")
    results.update(runs=runs, steps=steps, noise_floor=floor)

    prep: dict[str, Any] = {}
    if not args.no_prepare:
        print("prepare figures (benchmarks/bench_prepare.py: measure_prepare) ...", flush=True)
        small, large = demo_dataset(20, args.seed), demo_dataset(200, args.seed)
        prep = {"n20_2w": measure_prepare(small, workers=2, num_frames=args.length),
                "n200_2w": measure_prepare(large, workers=2, num_frames=args.length),
                "n200_1w": measure_prepare(large, workers=1, num_frames=args.length)}
        results["prepare"] = prep

    # ------------------------------------------------------------------ print
    print()
    print(f"Demo data: {args.clips} clips (train/validation/test {light['n_clips']['train']}/"
          f"{light['n_clips']['validation']}/{light['n_clips']['test']}), length {args.length}, seed {args.seed}")
    print()
    overlap, baselines = label_rep["clips_with_video_in_training"], label_rep["baselines"]
    share = [v for v in label_rep["between_video_share"].values() if v is not None]
    mean_r = lb.mean_pairwise_correlation(label_rep["trait_correlation"])
    gain = baselines["same_video"] - baselines["train_mean"]
    print("Demo labels (annotation files, official splits; the real files in brackets):")
    print(f"  test clips whose video has training clips {overlap['test']:.1%}   (84.0 %); validation {overlap['validation']:.1%}")
    print(f"  test baselines: train mean {baselines['train_mean']:.4f} (0.8814), same video {baselines['same_video']:.4f} "
          f"(0.9049), gain {gain:+.4f} (+0.0235)")
    print(f"  mean pairwise trait r {mean_r:.2f} (0.70); between-video share {min(share):.2f}-{max(share):.2f} (0.65-0.80)")
    print()

    def mean(model: str, get) -> float:
        return statistics.fmean(get(r) for r in runs[model])

    print(f"Test split, {args.split_scheme} scheme (split seed {args.split_seed}), training seeds {args.train_seeds}:")
    print(f"{'model, seed':<28}{'mean acc':>9}{'MAE':>8}{'MAE/base':>9}{'extrav. MAE':>12}{'extrav. r':>10}"
          f"{'epochs':>7}{'wall':>7}{'CPU':>7}{'peak RSS':>10}")
    for model, label in (("light", "light"), ("per_frame", "per-frame")):
        for r in runs[model]:
            ex = r["per_trait"]["extraversion"]
            rr = "n/a" if ex["pearson_r"] is None else f"{ex['pearson_r']:.2f}"
            print(f"{label + ', seed ' + str(r['seed']):<28}{r['mean_accuracy']:9.4f}{r['mean_mae']:8.4f}"
                  f"{r['mae_ratio']:9.2f}{ex['mae']:12.4f}{rr:>10}{r['epochs_run']:>7}{r['seconds']:>6.0f}s"
                  f"{r['cpu_seconds']:>6.0f}s{_fmt_gb(r['peak_rss_mb']):>10}")
    ex_base = light["per_trait"]["extraversion"]["baseline_mae"]
    print(f"{'train-mean baseline':<28}{light['baseline_mean_accuracy']:9.4f}{light['baseline_mean_mae']:8.4f}"
          f"{1.0:9.2f}{ex_base:12.4f}{'n/a':>10}")
    print(f"{'same-video baseline':<28}{light['same_video_baseline_mean_accuracy']:9.4f}")
    print(f"{'noise floor (perfect model)':<28}{floor['accuracy']:9.4f}{floor['mae']:8.4f}"
          f"{floor['mae'] / light['baseline_mean_mae']:9.2f}")
    print()
    print("per trait, test MAE, mean over seeds (light / per-frame / train-mean baseline):")
    for t in light["per_trait"]:
        print(f"  {t:<18}{mean('light', lambda r: r['per_trait'][t]['mae']):.4f} / "
              f"{mean('per_frame', lambda r: r['per_trait'][t]['mae']):.4f} / {light['per_trait'][t]['baseline_mae']:.4f}")
    print()
    _print_intervals(runs, M)
    print()
    print(f"{'step timing':<28}{'params':>12}{'median s/step':>15}{'min':>8}{'max':>8}{'peak RSS':>10}")
    for name, r in steps.items():
        print(f"{name:<28}{r['params']:>12,}{r['median_step_s']:>15.3f}{r['min_step_s']:>8.3f}{r['max_step_s']:>8.3f}"
              f"{_fmt_gb(r['peak_rss_mb']):>10}")
    print(f"  ({args.steps} steps after {args.warmup} warm-up, batch {args.batch_size}, length {args.length}, "
          "jit_compile=False for both)")
    if prep:
        print()
        print(f"{'prepare':<28}{'clips':>6}{'seconds':>9}{'clips/s':>9}{'tree peak':>11}")
        for label, key in (("20 clips, 2 workers", "n20_2w"), ("200 clips, 2 workers", "n200_2w"),
                           ("200 clips, 1 worker", "n200_1w")):
            r = prep[key]
            print(f"{label:<28}{r['clips']:>6}{r['seconds']:>9.1f}{r['clips_per_s']:>9.2f}{r['tree_peak_mb']:>8.0f} MB")
        print(f"  peak 200 / 20 clips: {prep['n200_2w']['tree_peak_mb'] / prep['n20_2w']['tree_peak_mb']:.2f}x; "
              f"2 / 1 workers: {prep['n200_2w']['clips_per_s'] / prep['n200_1w']['clips_per_s']:.2f}x clips/s")

    checks: dict[str, bool] = {boot_text: boot_s <= MAX_BOOTSTRAP_S}
    gb = max(r["peak_rss_mb"] for r in runs["light"]) / 1024
    checks[f"light training peak RSS {gb:.2f} GB (<= {MAX_TRAIN_RSS_GB} GB)"] = gb <= MAX_TRAIN_RSS_GB
    if "article" in steps:
        speedup = steps["article"]["median_step_s"] / steps["light"]["median_step_s"]
        results["step_speedup"] = speedup
        checks[f"light step {speedup:.1f}x faster than the article's (>= {MIN_STEP_SPEEDUP:.0f}x)"] = \
            speedup >= MIN_STEP_SPEEDUP
    ratio = mean("light", lambda r: r["mae_ratio"])
    results["mean_mae_ratio"] = ratio
    checks[f"light test MAE / train-mean baseline MAE = {ratio:.2f}, mean over seeds {args.train_seeds} "
           f"(<= {MAX_MAE_RATIO})"] = ratio <= MAX_MAE_RATIO
    ex_l = mean("light", lambda r: r["per_trait"]["extraversion"]["mae"])
    ex_p = mean("per_frame", lambda r: r["per_trait"]["extraversion"]["mae"])
    checks[f"per-frame pooled model worse on extraversion: MAE {ex_p:.4f} vs light {ex_l:.4f} "
           f"({ex_p / ex_l:.2f}x, >= {MIN_EXTRAVERSION_GAP}x)"] = ex_p >= MIN_EXTRAVERSION_GAP * ex_l
    checks[f"demo test overlap {overlap['test']:.2f} (in {OVERLAP_RANGE})"] = \
        OVERLAP_RANGE[0] <= overlap["test"] <= OVERLAP_RANGE[1]
    checks[f"demo mean pairwise trait r {mean_r:.2f} (in {MEAN_R_RANGE})"] = MEAN_R_RANGE[0] <= mean_r <= MEAN_R_RANGE[1]
    checks[f"demo between-video share {min(share):.2f}-{max(share):.2f} (in {SHARE_RANGE})"] = \
        SHARE_RANGE[0] <= min(share) and max(share) <= SHARE_RANGE[1]
    checks[f"demo same-video gain {gain:.4f} (>= {MIN_SAME_VIDEO_GAIN})"] = gain >= MIN_SAME_VIDEO_GAIN
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}; benchmark took {time.perf_counter() - started:.0f} s")
    status = report(checks)
    results["checks"] = checks
    (OUT / "bench_train.json").write_text(json.dumps(results, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
