"""The default model's choices, on validation: GRU or LSTM, MSE or MAE as the loss.

    python benchmarks/bench_recurrent.py [--seeds 0 1] [--cache data/cache] [--split-scheme by-video]

Trains ``build_light_model`` three ways with ``helpers.training.train`` at the notebooks'
settings (length 32, every other argument at its default) on the demo cache
(``helpers.series.ensure_cache`` builds it when missing), each seed in turn: the default
(GRU, MSE loss), ``recurrent="lstm"`` and ``loss="mae"``. Prints per run the validation
mean MAE (what a choice is made on), the test MAE per trait and its mean, the epochs run
and the training seconds. Runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from helpers import TRAITS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cache", help="prepared demo cache (default: the notebooks' data/cache)")
    parser.add_argument("--split-scheme", default="by-video")
    args = parser.parse_args()

    from helpers.series import LENGTH, ensure_cache
    from helpers.training import train

    cache = Path(args.cache) if args.cache else ensure_cache()
    variants = {"gru+mse": {}, "lstm+mse": {"recurrent": "lstm"}, "gru+mae": {"loss": "mae"}}
    print(f"{'model':8} {'seed':>4} {'val':>6} | test " + " ".join(f"{t[:5]:>6}" for t in TRAITS)
          + "   mean epochs      s")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, kwargs in variants.items():
                m = train(cache, Path(tmp) / f"{name}{seed}", length=LENGTH, seed=seed, split_scheme=args.split_scheme,
                          model_kwargs=kwargs)
                per = " ".join(f"{m['per_trait'][t]['mae']:6.4f}" for t in TRAITS)
                print(f"{name:8} {seed:4d} {m['validation']['mean_mae']:6.4f} |      {per} {m['mean_mae']:6.4f} "
                      f"{m['epochs_run']:6d} {m['train_seconds']:6.1f}", flush=True)


if __name__ == "__main__":
    main()
