"""Train, evaluate and predict.

``train(cache_dir, run_dir)`` assigns the cache's clips to splits under a ``split_scheme``:
``"official"`` (default; the splits the annotation files come in, which share people:
on the real files 84 % of the test clips come from a video with training clips) or
``"by-video"`` (all clips regrouped by video id with ``split_seed``, no person on two sides:
the honest measure of how a model does on new people; ``helpers.labels``). It fits on
``train``, watches ``validation`` for early stopping (the weights of the best validation
epoch are kept), and scores ``test`` once, at the end, beside two baselines: the train
mean, and the mean of the same video's training clips (what recognising the person alone
gives; equal to the train mean under ``"by-video"``). It writes to the run folder ``run_dir``:

- ``model.keras``: the model (``helpers.models.load_model`` reads it back);
- ``splits.json``: ``split_scheme``, ``split_seed`` and ``clips`` (clip name -> split): the
  assignment ``evaluate`` and ``helpers.explain`` reuse (``run_assignment``), so a run is
  never scored on its own training clips (``helpers.predict`` reports the scheme);
- ``history.json``: per-epoch ``loss``, ``val_loss`` (the training loss: MSE for the light
  model) and ``mae``, ``val_mae`` (MAE averaged over the traits, what early stopping watches);
- ``metrics.json``: the test report of ``helpers.metrics.report`` (``per_trait`` with
  ``accuracy``, ``mae``, ``pearson_r``, ``baseline_accuracy``, ``baseline_mae``;
  ``mean_accuracy``, ``baseline_mean_accuracy``, ``same_video_baseline_mean_accuracy``,
  ``mean_mae``, ...), the same figures for validation under ``validation``, the
  ``settings`` a prediction needs (``length``, ``size``, ``num_frames``, ``padding``,
  ``traits``, and the cache's face ``detector``,
  ``helpers.faces.detector_record``) and the run's ``model``, ``dataset`` (``"demo"`` or ``"first_impressions"``,
  from the cache manifest), ``split_scheme``, ``split_seed``, ``seed``, ``distribution``,
  ``epochs_run``, ``best_epoch``, clip counts and skipped files. ``RUN_VERSION`` is 3 since
  run folders record their split assignment; ``load_run`` refuses older run folders with a
  message to re-run train.

Scoring new clips with a run is ``helpers.predict``'s job.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers import TRAITS
from helpers import metrics as M
from helpers.atomic import write_json_atomic
from helpers.cache import read_manifest
from helpers.dataset import video_id
from helpers.inputs import (DEFAULT_PADDING, ClipSource, clip_source, dataset_from_source, split_assignment,
                            split_entries, to_model_input)
from helpers.labels import same_video_means
from helpers.sequences import Strategy

#: Defaults chosen on the demo data (see ``benchmarks/bench_train.py``): the light model's
#: validation MAE still improves at epoch 40 of a cosine schedule; each epoch of 120 demo
#: clips takes about 2 s on two CPU cores.
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 8
#: Epochs without a better validation loss before training stops (the best weights are kept).
DEFAULT_PATIENCE = 10
#: The learning rate falls from its start value to this fraction of it over the epochs (cosine).
FINAL_LR_FRACTION = 0.05
#: Version of the run folder's metrics.json; ``load_run`` refuses other versions.
RUN_VERSION = 3
#: The run folder's record of which clip was in which split.
SPLITS_FILE = "splits.json"


class EpochLine(keras.callbacks.Callback):
    """Keras callback printing one line per epoch: loss and MAE on training and validation, seconds."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1:>3}/{self.epochs}"]
        parts += [f"{k} {float(logs[k]):.4f}" for k in ("loss", "val_loss", "mae", "val_mae") if k in logs]
        parts.append(f"({time.perf_counter() - self._start:.1f} s)")
        print("  ".join(parts), flush=True)


def cosine_learning_rate(epoch: int, epochs: int, start: float, final_fraction: float = FINAL_LR_FRACTION) -> float:
    """Learning rate of ``epoch`` (0-based): ``start`` at 0, falling on a half cosine to
    ``start * final_fraction`` at the last epoch. Large steps first, small steps to settle."""
    t = epoch / max(1, epochs - 1)
    return float(start * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))))


#: The ``distribution`` values ``train`` accepts (besides None, the default no-op strategy).
DISTRIBUTIONS: tuple[str, ...] = ("mirrored",)


def _distribution(distribution: str | None):
    """The tf.distribute strategy named ``distribution``."""
    import tensorflow as tf

    if distribution is None:
        return tf.distribute.get_strategy()  # the default (no-op) strategy
    if distribution == "mirrored":
        # Copies the model onto every visible GPU (or the one CPU when there is none) and
        # splits each batch among them; for several GPUs in one machine. Several machines
        # need tf.distribute.MultiWorkerMirroredStrategy instead.
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"unknown distribution {distribution!r}; use None or one of {', '.join(DISTRIBUTIONS)}")


def predict_source(model, source: ClipSource, batch_size: int = 8) -> dict[str, Any]:
    """Predictions for every readable clip of ``source``, in its order.

    Returns ``{"names", "y_true" [n, 5], "y_pred" [n, 5], "skipped"}``.
    """
    ds = dataset_from_source(source, batch_size)
    ys, ps = [], []
    for x, y in ds.as_numpy_iterator():
        ps.append(np.asarray(model.predict_on_batch(x), dtype=np.float64))
        ys.append(y.astype(np.float64))
    names = [e.name for e in source.entries if e.name not in source.skipped]
    empty = np.zeros((0, len(TRAITS)))
    return {"names": names, "y_true": np.concatenate(ys) if ys else empty,
            "y_pred": np.concatenate(ps) if ps else empty, "skipped": dict(source.skipped)}


def _faces_input_shape(model) -> tuple:
    for tensor in model.inputs:
        if tensor.name.split(":")[0] == "faces" or len(tensor.shape) == 5:
            return tuple(tensor.shape)
    raise ValueError(f"model {model.name} has no 'faces' input")


def evaluate(model, cache_dir: Path, split: str = "test", *, length: int | None = None, batch_size: int = 8,
             padding: Strategy | None = None, assignment: dict[str, str] | None = None) -> dict[str, Any]:
    """Score ``model`` (a Keras model or a run folder written by ``train``) on ``split`` of ``cache_dir``.

    Returns ``helpers.metrics.report`` (model beside the train-mean and same-video
    baselines, both from the training clips) plus ``split``, ``split_scheme``, ``names``,
    ``y_true``, ``y_pred`` (lists, for plots) and ``skipped``. For a run folder the splits
    are the run's own (``run_assignment``), and ``length`` and ``padding`` default to its
    settings; for a Keras model ``assignment`` (clip name -> split) defaults to the
    cache's official splits, ``length`` to the model's input and ``padding`` to ``DEFAULT_PADDING``.
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    scheme = "official" if assignment is None else None  # None: an assignment of the caller's
    if isinstance(model, (str, Path)):
        run_dir = Path(model)
        run = load_run(run_dir)
        model = run["model"]
        length = length or run["settings"]["length"]
        padding = padding or run["settings"]["padding"]
        assignment = run_assignment(run_dir) if assignment is None else assignment
        scheme = run["metrics"]["split_scheme"]
    shape = _faces_input_shape(model)
    length = length or int(shape[1])
    padding = padding or DEFAULT_PADDING
    source = clip_source(cache_dir, split, length, padding=padding, size=int(shape[2]), manifest=manifest,
                         assignment=assignment)
    pred = predict_source(model, source, batch_size)
    if len(pred["names"]) == 0:
        raise ValueError(f"no readable clips in split {split!r} of {cache_dir}")
    train_entries = split_entries(cache_dir, "train", manifest, assignment)
    rep = _report(pred, train_entries)
    rep.update(split=split, split_scheme=scheme, names=pred["names"], y_true=pred["y_true"].tolist(),
               y_pred=pred["y_pred"].tolist(), skipped=pred["skipped"])
    return rep


def _report(pred: dict[str, Any], train_entries: list) -> dict[str, Any]:
    """``metrics.report`` of predictions beside both baselines, made from ``train_entries``' labels."""
    if not train_entries:
        raise ValueError("no training clips to make the baselines from")
    y_train = np.stack([e.labels for e in train_entries]).astype(np.float64)
    same = same_video_means(y_train, [video_id(e.name) for e in train_entries], [video_id(n) for n in pred["names"]])
    return M.report(pred["y_true"], pred["y_pred"], means=M.train_means(y_train), same_video=same)


def run_assignment(run_dir: Path) -> dict[str, str]:
    """clip name -> split of the run folder's training (its ``splits.json``)."""
    path = Path(run_dir) / SPLITS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run folder written by `python -m helpers train`?")
    return dict(json.loads(path.read_text(encoding="utf-8"))["clips"])


def train(cache_dir: Path, run_dir: Path, model_name: str = "light", length: int = 32,
          epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
          distribution: str | None = None, verbose: int = 0, *, learning_rate: float | None = None,
          patience: int = DEFAULT_PATIENCE, padding: Strategy = DEFAULT_PADDING,
          split_scheme: str = "official", split_seed: int = 0, model_kwargs: dict | None = None) -> dict[str, Any]:
    """Train ``model_name`` (a name of ``helpers.models.MODELS``) on the train split,
    stop early on validation, score test once.

    ``split_scheme`` (``helpers.labels.SPLIT_SCHEMES``) and ``split_seed`` (by-video only;
    independent of the training ``seed``) say which clips form the splits
    (``inputs.split_assignment``). ``length``: the sequence length the model sees (each
    clip is made that long with ``padding``). ``learning_rate`` defaults to the model's (``models.default_learning_rate``).
    ``verbose=1`` prints one line per epoch; Keras' own progress bars stay off.
    ``distribution="mirrored"`` builds and compiles the model under
    ``tf.distribute.MirroredStrategy`` (meant for several GPUs; it also runs on one CPU).
    Returns the dict written to ``run_dir/metrics.json`` (see the module docstring).
    """
    from helpers.models import build_model, default_learning_rate

    cache_dir, run_dir = Path(cache_dir), Path(run_dir)
    manifest = read_manifest(cache_dir)
    lr = default_learning_rate(model_name) if learning_rate is None else learning_rate
    assignment = split_assignment(manifest, split_scheme, split_seed)
    keras.utils.set_random_seed(seed)
    train_src = clip_source(cache_dir, "train", length, shuffle=True, seed=seed, padding=padding, manifest=manifest,
                            assignment=assignment)
    size = train_src.size
    val_src = clip_source(cache_dir, "validation", length, padding=padding, size=size, manifest=manifest,
                          assignment=assignment)

    with _distribution(distribution).scope():
        model = build_model(model_name, length, size, learning_rate=lr, **(model_kwargs or {}))

    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch: cosine_learning_rate(epoch, epochs, lr)),
        # Model choice on the validation split by the challenge's own measure (MAE), whatever the loss.
        keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=patience, restore_best_weights=True),
    ]
    if verbose:
        callbacks.append(EpochLine(epochs))
    start = time.perf_counter()
    with warnings.catch_warnings():
        # The streamed datasets have no known length (damaged files are skipped as met), so
        # Keras warns at the end of the first epoch that the input "ran out of data": expected.
        warnings.filterwarnings("ignore", message=".*ran out of data.*")
        history = model.fit(dataset_from_source(train_src, batch_size),
                            validation_data=dataset_from_source(val_src, batch_size),
                            epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0)
    train_seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best_epoch = int(np.argmin(hist["val_mae"])) + 1 if hist.get("val_mae") else len(hist.get("loss", []))

    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    write_json_atomic(run_dir / "history.json", hist)
    write_json_atomic(run_dir / SPLITS_FILE, {"split_scheme": split_scheme, "split_seed": split_seed,
                                              "clips": assignment})

    usable_train = train_src.usable
    if not usable_train:
        raise ValueError(f"every training file of {cache_dir} failed to load: {sorted(train_src.skipped)}")
    val = _report(predict_source(model, val_src, batch_size), usable_train)
    test_src = clip_source(cache_dir, "test", length, padding=padding, size=size, manifest=manifest,
                           assignment=assignment)
    rep = _report(predict_source(model, test_src, batch_size), usable_train)  # the one look at the test split

    skipped = {**train_src.skipped, **val_src.skipped, **test_src.skipped}
    metrics = {
        "version": RUN_VERSION,
        "model": model_name,
        "split": "test",
        **rep,
        "validation": {k: val[k] for k in ("n", "mean_accuracy", "mean_mae", "baseline_mean_accuracy",
                                           "baseline_mean_mae", "same_video_baseline_mean_accuracy", "mae_ratio")},
        "settings": {"length": length, "size": size, "num_frames": int(manifest["settings"]["num_frames"]),
                     "padding": padding, "traits": list(TRAITS), "detector": manifest["settings"].get("detector")},
        "dataset": manifest.get("dataset"),  # recorded by prepare
        "split_scheme": split_scheme,
        "split_seed": split_seed,
        "seed": seed,
        "batch_size": batch_size,
        "learning_rate": lr,
        "epochs": epochs,
        "epochs_run": len(hist.get("loss", [])),
        "best_epoch": best_epoch,
        "patience": patience,
        "distribution": distribution,
        "params": int(model.count_params()),
        "train_seconds": round(train_seconds, 2),
        "n_clips": {"train": len(usable_train), "validation": val["n"], "test": rep["n"]},
        "skipped_files": skipped,
    }
    write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


_RUN_CACHE: dict[tuple[str, float], dict[str, Any]] = {}


def load_run(run_dir: Path) -> dict[str, Any]:
    """``{"model", "settings", "metrics"}`` of a run folder written by ``train`` (cached per file version)."""
    from helpers.models import load_model

    run_dir = Path(run_dir)
    model_path, metrics_path = run_dir / "model.keras", run_dir / "metrics.json"
    for p in (model_path, metrics_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: is {run_dir} a run folder written by `python -m helpers train`?")
    key = (str(model_path.resolve()), model_path.stat().st_mtime)
    if key not in _RUN_CACHE:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        if not isinstance(metrics, dict) or metrics.get("version") != RUN_VERSION:
            raise ValueError(f"{run_dir} was trained by an older version of helpers (its metrics.json has no "
                             f"version {RUN_VERSION}): re-run `python -m helpers train CACHE --out {run_dir}`")
        _RUN_CACHE.clear()
        _RUN_CACHE[key] = {"model": load_model(model_path), "settings": metrics["settings"], "metrics": metrics}
    return _RUN_CACHE[key]
