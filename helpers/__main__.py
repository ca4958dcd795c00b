"""Command line: ``python -m helpers COMMAND ...``.

Heavy modules (TensorFlow) are imported only by the commands that need them, so
``demo-data`` and ``prepare`` start in a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from helpers.demo import make_demo_dataset

    summary = make_demo_dataset(Path(args.dir), n_clips=args.clips, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from helpers.cache import prepare

    summary = prepare(
        Path(args.source),
        Path(args.out),
        frames=args.frames,
        size=args.size,
        workers=args.workers,
        labels=[Path(p) for p in args.labels] if args.labels else None,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from helpers.training import train

    metrics = train(
        Path(args.cache),
        Path(args.out),
        model_name=args.model,
        frames=args.frames,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        strategy=args.strategy,
    )
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from helpers.training import predict_video

    scores = predict_video(Path(args.video), Path(args.model))
    for trait, score in scores.items():
        print(f"{trait:>17}: {score:.3f}")
    return 0


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from helpers.series import execute_series, notebook_paths, record_versions, repo_root

    paths = [Path(p) for p in args.paths] if args.paths else notebook_paths()
    if not paths:
        print("no numbered notebooks found in notebooks/", file=sys.stderr)
        return 1
    total = sum(run.seconds for run in execute_series(paths, timeout=args.timeout))
    print(f"{'all notebooks':<40} {total:6.1f} s")
    versions = record_versions(repo_root() / "notebooks" / "versions.json")
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m helpers``."""
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Apparent personality from face videos: the tutorial series' command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="write the synthetic demo dataset (First Impressions layout)")
    p.add_argument("dir", help="folder to write (created)")
    p.add_argument("--clips", type=int, default=200, help="number of clips (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("prepare", help="turn every clip into a cached face sequence")
    p.add_argument("source", help="dataset folder (extracted clips and/or the distributed zips)")
    p.add_argument("--out", required=True, help="cache folder to write (created; re-running resumes)")
    p.add_argument("--frames", type=int, default=32, help="frames sampled per clip (default 32)")
    p.add_argument("--size", type=int, default=48, help="face crop size in pixels (default 48)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--labels", nargs="+", default=None, metavar="FILE",
                   help="annotation pickles (default: annotation_*.pkl found in SOURCE)")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train a model on a prepared cache and score it on the test split")
    p.add_argument("cache", help="cache folder written by prepare")
    p.add_argument("--out", required=True, help="run folder to write (model.keras, history, metrics.json)")
    p.add_argument("--model", default="light", choices=["light", "article"], help="architecture (default light)")
    p.add_argument("--frames", type=int, default=32, help="sequence length fed to the model (default 32)")
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40); early stopping on validation")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--strategy", default=None, choices=["mirrored"],
                   help="'mirrored': tf.distribute.MirroredStrategy over the visible devices")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="print the five trait scores for one clip")
    p.add_argument("video", help="video file")
    p.add_argument("--model", required=True, help="run folder written by train")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("notebooks", help="execute the numbered notebooks in place (outputs saved)")
    p.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/NN_*.ipynb in order)")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser("set-repository", help="point every Colab/Binder badge and clone URL at a repository")
    p.add_argument("repository", help="GitHub OWNER/NAME (e.g. your fork)")
    p.add_argument("--branch", default="main", help="branch the links open (default main)")
    p.set_defaults(func=_cmd_set_repository)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as err:
        # Our errors (unreadable clip, unsafe archive, refused pickle, damaged cache, missing
        # folder) name the file and the fix: print that, not a traceback.
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
