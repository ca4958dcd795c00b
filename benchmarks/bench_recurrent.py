"""The default model's choices, on validation: LSTM or GRU, MSE or MAE as the loss, 64 or 32 units.

    python benchmarks/bench_recurrent.py [--seeds 0 1 2] [--variants lstm gru ...] [--cache data/cache]

Trains ``build_light_model`` several ways with ``helpers.training.train`` at the notebooks'
settings (length 32, by-video splits, every other argument at its default) on the demo
cache (``helpers.series.ensure_cache`` builds it when missing), each seed in turn:
``lstm`` and ``gru`` (64 units, MSE loss), ``lstm+mae`` and ``gru+mae`` (MAE as the loss),
``lstm32`` and ``gru32`` (32 units). Prints per run the validation mean MAE (what a choice
is made on), the test MAE per trait and its mean, the epochs run and the training seconds;
then per variant the median over seeds. Runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from helpers import TRAITS  # noqa: E402

VARIANTS = {
    "lstm": {"recurrent": "lstm"},
    "gru": {"recurrent": "gru"},
    "lstm+mae": {"recurrent": "lstm", "loss": "mae"},
    "gru+mae": {"recurrent": "gru", "loss": "mae"},
    "lstm32": {"recurrent": "lstm", "units": 32},
    "gru32": {"recurrent": "gru", "units": 32},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--cache", help="prepared demo cache (default: the notebooks' data/cache)")
    parser.add_argument("--split-scheme", default="by-video")
    args = parser.parse_args()

    from helpers.series import LENGTH, ensure_cache
    from helpers.training import train

    cache = Path(args.cache) if args.cache else ensure_cache()
    results: dict[str, list[dict]] = {name: [] for name in args.variants}
    print(f"{'model':9} {'seed':>4} {'val':>6} | test " + " ".join(f"{t[:5]:>6}" for t in TRAITS)
          + "   mean epochs      s")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in args.variants:
                m = train(cache, Path(tmp) / f"{name}{seed}", length=LENGTH, seed=seed, split_scheme=args.split_scheme,
                          model_kwargs=VARIANTS[name])
                results[name].append(m)
                per = " ".join(f"{m['per_trait'][t]['mae']:6.4f}" for t in TRAITS)
                print(f"{name:9} {seed:4d} {m['validation']['mean_mae']:6.4f} |      {per} {m['mean_mae']:6.4f} "
                      f"{m['epochs_run']:6d} {m['train_seconds']:6.1f}", flush=True)
    print(f"\nmedian over seeds {', '.join(map(str, args.seeds))}:")
    print(f"{'model':9} {'val':>6} {'test':>6} {'extra':>6} {'s':>6}")
    for name, runs in results.items():
        med = {key: statistics.median(f(m) for m in runs) for key, f in (
            ("val", lambda m: m["validation"]["mean_mae"]), ("test", lambda m: m["mean_mae"]),
            ("extra", lambda m: m["per_trait"]["extraversion"]["mae"]), ("s", lambda m: m["train_seconds"]))}
        print(f"{name:9} {med['val']:6.4f} {med['test']:6.4f} {med['extra']:6.4f} {med['s']:6.1f}")


if __name__ == "__main__":
    main()
