"""What costs memory in the training notebook's kernel (05), step by step, as PSS.

    python benchmarks/bench_kernel_memory.py [--epochs 2]

Runs, in one fresh process, the steps of notebook 05, and prints the process's proportional
set size (``Pss:`` of ``/proc/self/smaps_rollup``) after each step: the setup cell's
imports, ``import keras`` (TensorFlow), building the article's 23 M-weight model, dropping it
again, building the light model, training the light model on the demo cache (``data/cache``,
built when missing). The article's model, whose memory is not given back when it is
deleted, is why 05 builds it in a separate process (a ``%%script`` cell, run before the
kernel imports TensorFlow); the light model's training costs little and runs in 05's
kernel. Linux only.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pss_mb() -> float:
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the light model (default 2)")
    args = parser.parse_args(argv)
    rows = [("python", pss_mb())]

    import cv2  # noqa: F401
    import matplotlib.pyplot as plt  # noqa: F401
    import numpy as np  # noqa: F401

    import helpers.setup  # noqa: F401
    rows.append(("setup cell imports (helpers, cv2, numpy, matplotlib)", pss_mb()))
    import keras
    rows.append(("import keras (TensorFlow)", pss_mb()))
    from helpers.models import build_article_model, build_light_model
    from helpers.series import ensure_cache
    from helpers.training import train

    article = build_article_model(length=32)
    rows.append((f"article model built ({article.count_params():,} weights)", pss_mb()))
    del article
    keras.backend.clear_session()
    gc.collect()
    rows.append(("article model deleted, clear_session()", pss_mb()))
    light = build_light_model(length=32)
    rows.append((f"light model built ({light.count_params():,} weights)", pss_mb()))
    cache = ensure_cache()
    rows.append(("demo cache ready", pss_mb()))
    with tempfile.TemporaryDirectory() as run:
        train(cache, Path(run), model_name="light", length=32, epochs=args.epochs, seed=0)
    rows.append((f"light model trained ({args.epochs} epochs) and tested", pss_mb()))
    previous = None
    for name, mb in rows:
        step = f"{mb - previous:+7.0f}" if previous is not None else " " * 7
        print(f"{name:<60} {mb:7.0f} MB  {step}")
        previous = mb
    return 0


if __name__ == "__main__":
    sys.exit(main())
