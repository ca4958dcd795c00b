"""Command line: ``python -m helpers COMMAND ...``.

Heavy modules (TensorFlow) are imported only by the commands that need them, so
``demo-data`` and ``prepare`` start in a second. Option defaults are read from the
signatures of the functions the commands call (``_default``), and ``--model`` choices
from ``helpers.models.MODELS``, so the command line cannot drift from the library.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any


def _default(func, name: str) -> Any:
    """The default value of parameter ``name`` of ``func``."""
    return inspect.signature(func).parameters[name].default


def _shown(path: str | Path) -> str:
    """``path`` relative to the working folder when it lies below it (shorter, and no machine paths)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def demo_summary_text(summary: dict[str, Any]) -> str:
    """What ``demo-data`` prints by default: counts, detection check, time, where, what next."""
    splits = summary["splits"]
    parts = " / ".join(f"{s} {v['clips']}" for s, v in splits.items())
    lines = [f"demo dataset: {summary['clips']} clips ({parts}) in {_shown(summary['out_dir'])}, "
             f"{summary['seconds']:.0f} s"]
    if summary.get("face_detection_rate") is not None:
        lines.append(f"face check: found in {100 * summary['face_detection_rate']:.1f} % of "
                     f"{summary['frames_checked']} decoded frames")
    if summary.get("person_groups"):
        counts = ", ".join(f"{g} {n}" for g, n in summary["person_groups"].items())
        lines.append(f"person groups (videos): {counts}; group file {_shown(summary['group_file'])}")
    lines.append(f"next: python -m helpers prepare {_shown(summary['out_dir'])} --out data/cache")
    return "\n".join(lines)


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from helpers.demo import make_demo_dataset

    summary = make_demo_dataset(Path(args.dir), n_clips=args.clips, seed=args.seed, groups=args.groups)
    print(json.dumps(summary, indent=2) if args.json else demo_summary_text(summary))
    return 0


def prepare_summary_text(summary: dict[str, Any]) -> str:
    """What ``prepare`` prints by default: a table per split and status, time, the cache, what next."""
    from helpers.prepare import STATUSES

    heads = ("clips", *STATUSES, "no label")
    lines = [f"{'':<12}" + "".join(f"{h:>12}" for h in heads)]
    for split, row in summary["splits"].items():
        cells = (row["clips"], *(row[s] for s in STATUSES), row["clips_without_label"])
        lines.append(f"{split:<12}" + "".join(f"{c:>12}" for c in cells))
    cache = _shown(summary["cache"])
    notes = [f"{summary['done']} of {summary['clips']} clips in the cache {cache} ({summary['reused']} kept from "
             f"an earlier run), {summary['seconds']:.0f} s with {summary['workers']} worker(s)"]
    if summary.get("skipped"):
        notes.append(f"{summary['skipped']} clips skipped: named outside <video id>.<NNN>.<ext>, or sharing a cache "
                     "file with another clip (manifest.json: each one's error says which)")
    if summary["labels_without_clip"]:
        notes.append(f"{summary['labels_without_clip']} labelled clips were not found (listed in manifest.json)")
    if summary["split_conflicts"]:
        notes.append(f"{summary['split_conflicts']} clips sit in a folder of another split than their "
                     "annotation file says (manifest.json: split_conflicts)")
    notes.append(f"next: python -m helpers train {cache} --out data/runs/light")
    return "\n".join(lines + notes)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from helpers.prepare import prepare

    labels = [Path(p) for p in args.labels] if args.labels else None
    summary = prepare(Path(args.source), Path(args.out), num_frames=args.num_frames, size=args.size,
                      workers=args.workers, labels=labels, detector=args.detector)
    print(json.dumps(summary, indent=2) if args.json else prepare_summary_text(summary))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from helpers.training import train

    metrics = train(
        Path(args.cache),
        Path(args.out),
        model_name=args.model,
        length=args.length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        distribution=args.distribution,
        padding=args.padding,
        split_scheme=args.split_scheme,
        split_seed=args.split_seed,
        allow_incomplete=args.allow_incomplete,
    )
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        from helpers.metrics import format_report

        print(format_report(metrics, title=f"{metrics['model']} model, test split "
                                           f"({metrics['epochs_run']} epochs, {metrics['train_seconds']:.0f} s)"))
        print(f"run folder: {_shown(args.out)} (metrics.json has every figure)")
        print(f"next: python -m helpers predict YOUR_CLIP.mp4 --model {_shown(args.out)}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from helpers.metrics import format_comparison
    from helpers.training import paired_comparison

    rep = paired_comparison(Path(args.run_a), Path(args.run_b), Path(args.cache), args.split, metric=args.metric)
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    shown = (_shown(args.run_a), _shown(args.run_b))
    names = (Path(args.run_a).name, Path(args.run_b).name)  # short column headers, unless they clash
    if names[0] == names[1] or not all(names):
        names = shown
    else:
        print(f"runs: {names[0]} = {shown[0]}, {names[1]} = {shown[1]}")
    print(format_comparison(rep, names=names))
    if rep["n_only_a"] or rep["n_only_b"]:
        print(f"note: {rep['n_only_a']} and {rep['n_only_b']} clips of the {args.split} split are in one run only "
              "(trained with other splits?) and were left out")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from helpers import predict as P

    rows = P.predict_clips(args.paths, Path(args.model), progress=not (args.json or args.csv))
    provenance = P.run_provenance(Path(args.model))
    notes = P.provenance_lines(provenance)
    if args.json:
        print("\n".join(notes), file=sys.stderr)
        print(P.format_json(rows))
    elif args.csv:
        print(P.format_csv(rows, provenance), end="")
    else:
        print("\n".join(notes) + "\n")
        print(P.format_table(rows))
    return 0 if any(r.status == "scored" for r in rows) else 1


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from helpers.notebooks import execute_series, notebook_paths, record_versions
    from helpers.repository import root

    paths = [Path(p) for p in args.paths] if args.paths else notebook_paths()
    if not paths:
        print("no numbered notebooks found in notebooks/", file=sys.stderr)
        return 1
    total = sum(run.seconds for run in execute_series(paths, timeout=args.timeout))
    print(f"{'all notebooks':<40} {total:6.1f} s")
    versions = record_versions(root() / "notebooks" / "versions.json")
    print("package versions recorded in notebooks/versions.json:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print("open them with:  .venv/bin/jupyter lab notebooks/")
    return 0


def _cmd_set_repository(args: argparse.Namespace) -> int:
    from helpers.repository import root, set_repository

    changed = set_repository(args.repository, args.branch)
    for path in changed:
        print(f"rewrote {path.relative_to(root()).as_posix()}")
    print(f"links point at {args.repository} ({args.branch}); {len(changed)} files changed")
    return 0


def _cmd_labels(args: argparse.Namespace) -> int:
    from helpers.labels import format_label_report, label_report, load_label_files

    report = label_report(load_label_files(args.paths))
    print(json.dumps(report, indent=2) if args.json else format_label_report(report))
    return 0


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """``train``'s options; imports TensorFlow (for the defaults and model names), so only when asked."""
    from helpers.models import MODELS
    from helpers.sequences import STRATEGIES
    from helpers.labels import SPLIT_SCHEMES
    from helpers.training import DISTRIBUTIONS, MAX_LENGTH, train

    model = _default(train, "model_name")
    p.add_argument("cache", help="cache folder written by prepare")
    p.add_argument("--out", required=True, help="run folder to write (model.keras, metrics.json, splits.json, "
                                                "history.json); an existing one is replaced once the new run is complete")
    p.add_argument("--model", default=model, choices=list(MODELS), help=f"architecture (default {model})")
    for name, what in (("length", f"sequence length the model sees, usable frames, 1 to {MAX_LENGTH}"),
                       ("epochs", "maximum epochs; early stopping on validation"), ("batch_size", "batch size"),
                       ("seed", "random seed")):
        value = _default(train, name)
        p.add_argument("--" + name.replace("_", "-"), type=int, default=value, help=f"{what} (default {value})")
    padding = _default(train, "padding")
    p.add_argument("--padding", default=padding, choices=list(STRATEGIES),
                   help=f"how a clip is made --length long (default {padding})")
    scheme, split_seed = _default(train, "split_scheme"), _default(train, "split_seed")
    p.add_argument("--split-scheme", default=scheme, choices=list(SPLIT_SCHEMES),
                   help=f"which clips form training/validation/test: 'by-video' regroups all clips by video id, "
                        f"so no video is in two splits (how a model does on new videos: on the demo new people; on the "
                        f"real data a few people with several videos may still be on two sides); 'official' is the "
                        f"annotation files' splits, which share people (84 %% of the real test clips come from a "
                        f"video with training clips), so it measures recognising people (default {scheme})")
    p.add_argument("--split-seed", type=int, default=split_seed,
                   help=f"seed of the by-video regrouping, independent of --seed (default {split_seed})")
    p.add_argument("--distribution", default=_default(train, "distribution"), choices=list(DISTRIBUTIONS),
                   help="'mirrored': tf.distribute.MirroredStrategy over the visible devices")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="train on a cache an interrupted prepare left (its manifest says complete: false)")
    p.add_argument("--json", action="store_true", help="print every figure of metrics.json")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``python -m helpers``.

    ``command``: the command about to run; ``train``'s options (which import TensorFlow)
    are added only for ``train`` or when None (the whole parser).
    """
    from helpers.demo import GROUP_B_SHARE, GROUPS_FILE, make_demo_dataset
    from helpers.faces import DEFAULT_DETECTOR, DETECTORS
    from helpers.prepare import prepare
    from helpers.notebooks import execute_series

    parser = argparse.ArgumentParser(prog="python -m helpers", description="Apparent personality from face videos: the tutorial series' command line.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's, absl's and FFmpeg's own start-up and log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="write the synthetic demo dataset (First Impressions layout)")
    p.add_argument("dir", help="folder to write (created)")
    clips, seed = _default(make_demo_dataset, "n_clips"), _default(make_demo_dataset, "seed")
    p.add_argument("--clips", type=int, default=clips, help=f"number of clips (default {clips})")
    p.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    p.add_argument("--groups", action="store_true",
                   help=f"give each person a group: B (about {100 * GROUP_B_SHARE:.0f} %% of people) wears a fringe and "
                        f"its raters' labels are shifted (notebook 08's audit); writes {GROUPS_FILE}")
    p.add_argument("--json", action="store_true", help="print the full summary as JSON")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("prepare", help="turn every clip into a cached face sequence")
    p.add_argument("source", help="dataset folder (extracted clips and/or the distributed zips)")
    p.add_argument("--out", required=True, help="cache folder to write (created; re-running resumes)")
    num_frames, size = _default(prepare, "num_frames"), _default(prepare, "size")
    p.add_argument("--num-frames", type=int, default=num_frames,
                   help=f"frames sampled per clip (default {num_frames})")
    p.add_argument("--size", type=int, default=size, help=f"face crop size in pixels (default {size})")
    p.add_argument("--workers", type=int, default=_default(prepare, "workers"),
                   help="worker processes (default: CPU count)")
    p.add_argument("--labels", nargs="+", default=None, metavar="FILE",
                   help="annotation pickles (default: annotation_*.pkl found in SOURCE)")
    p.add_argument("--detector", choices=list(DETECTORS), default=DEFAULT_DETECTOR,
                   help=f"face detector, recorded in the cache; train and predict use it (default {DEFAULT_DETECTOR})")
    p.add_argument("--json", action="store_true", help="print the full summary as JSON")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train a model on a prepared cache and score it on the test split")
    if command in (None, "train"):
        _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("compare", help="compare two runs on the same clips, paired: the difference and its interval")
    p.add_argument("run_a", metavar="RUN_A", help="run folder written by train")
    p.add_argument("run_b", metavar="RUN_B", help="run folder written by train (same --split-scheme and --split-seed)")
    p.add_argument("--cache", required=True, metavar="CACHE_DIR", help="the prepared cache both runs were trained on")
    p.add_argument("--split", default="test", choices=["validation", "test"], help="split to score (default test)")
    from helpers.metrics import COMPARABLE

    p.add_argument("--metric", default="mae", choices=COMPARABLE, help="what to compare (default mae)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("predict", help="score clips with a trained run: one row per clip")
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files and/or folders searched for clips")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run folder written by train")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list of clip objects on stdout")
    fmt.add_argument("--csv", action="store_true", help="CSV on stdout (notes as # lines)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("notebooks", help="execute the numbered notebooks in place (outputs saved)")
    p.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/NN_*.ipynb in order)")
    timeout = _default(execute_series, "timeout")
    p.add_argument("--timeout", type=int, default=timeout, help=f"seconds allowed per cell (default {timeout})")
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser("labels", help="label statistics: splits, shared videos, both baselines, trait correlations")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="folder holding the annotation files (annotation_training.pkl ...), or the files")
    p.add_argument("--json", action="store_true", help="print JSON (floats unrounded) instead of text")
    p.set_defaults(func=_cmd_labels)

    p = sub.add_parser("set-repository", help="point every Colab/Binder badge and clone URL at a repository")
    p.add_argument("repository", help="GitHub OWNER/NAME (e.g. your fork)")
    p.add_argument("--branch", default="main", help="branch the links open (default main)")
    p.set_defaults(func=_cmd_set_repository)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if hasattr(sys.stdout, "reconfigure"):
        # A file name that is not valid UTF-8 (a lone surrogate) must not end a run at print time.
        sys.stdout.reconfigure(errors="backslashreplace")
    if "--verbose" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        # Before the parser is built: building train's options imports TensorFlow.
        from helpers.quiet import install

        install(verbose=True)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command or "").parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as err:
        # Our errors (unreadable clip, unsafe archive, refused pickle, damaged cache, missing
        # folder) name the file and the fix: print that, not a traceback.
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
