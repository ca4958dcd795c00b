"""Train and evaluate.

``train(cache_dir, run_dir)`` assigns the cache's clips to splits under a ``split_scheme``:
``"by-video"`` (default; all clips regrouped by video id with ``split_seed``, no video on
two sides: the honest measure of how a model does on new videos, which on the demo are new
people and on the real data almost always are; ``helpers.labels``) or
``"official"`` (the splits the annotation files come in, which share people: on the real
files 84 % of the test clips come from a video with training clips, so it measures how well
a model recognises people it has seen). It fits on ``train``, watches ``validation`` for
early stopping (the weights of the best validation epoch are kept), and scores ``test``
once, at the end, beside two baselines: the train mean, and the mean of the same video's
training clips (what recognising the person alone gives; equal to the train mean under
``"by-video"``).

Before any work it checks its options (``check_options``), that the cache is complete
(a manifest of an interrupted ``prepare`` says ``complete: false``; ``allow_incomplete``
trains on what it holds), that the clip names carry a video id, and that the run folder
can be written. The run folder's format is ``helpers.runs``' (``model.keras``,
``metrics.json``, ``splits.json``, ``history.json``); it is written into a temporary
sibling and renamed into place when complete, so an interrupted train leaves the previous
run whole (``helpers.runs.staged_run``). ``metrics.json`` holds the test report of
``helpers.metrics.report`` (``per_trait`` with ``accuracy``, ``mae``, ``pearson_r``,
``baseline_accuracy``, ``baseline_mae``; ``mean_accuracy``, ``baseline_mean_accuracy``,
``same_video_baseline_mean_accuracy``, ``mean_mae``, ...) with ``intervals``
(``helpers.metrics.score_report``: every metric with a 95 % interval that resamples
videos), the same figures for validation under ``validation``, ``calibration``
(prediction SD / label SD and slope per trait on both splits, and test scored after a
linear recalibration fitted on validation), the ``settings`` a prediction needs
(``helpers.runs.RunSettings``) and the run's ``model``, ``dataset`` (from the cache
manifest), ``split_scheme``, ``split_seed``, ``seed``, ``distribution``, ``epochs_run``,
``best_epoch``, clip counts and skipped files. ``load_run`` reads a run back
(``helpers.runs.read_run`` plus its model).

Scoring new clips with a run is ``helpers.predict``'s job.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from helpers import TRAITS
from helpers import metrics as M
from helpers.cache import read_manifest
from helpers.dataset import video_id
from helpers.inputs import (DEFAULT_PADDING, ClipSource, clip_source, dataset_from_source, split_assignment,
                            split_entries)
from helpers.labels import SPLIT_SCHEMES, same_video_means
from helpers.runs import (METRICS_FILE, MODEL_FILE, RUN_VERSION, SPLITS_FILE, Run, RunSettings,  # noqa: F401
                          read_run, staged_run, write_run)
from helpers.sequences import STRATEGIES, Strategy

# RUN_VERSION and SPLITS_FILE are read from here by helpers.series and older code: one definition, in runs.

#: Defaults chosen on the demo data (see ``benchmarks/bench_train.py``): the light model's
#: validation MAE still improves at epoch 40 of a cosine schedule; each epoch of 120 demo
#: clips takes about 2 s on two CPU cores.
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 8
#: Epochs without a better validation loss before training stops (the best weights are kept).
DEFAULT_PATIENCE = 10
#: The learning rate falls from its start value to this fraction of it over the epochs (cosine).
FINAL_LR_FRACTION = 0.05
#: Longest ``length`` ``train`` accepts: a First Impressions clip is about 15 s (450-460 frames
#: at 30 fps), so 1024 holds every frame of a clip twice as long; above it a value is a typo
#: (``--length 1000000000``), which would otherwise end in a TensorFlow memory error.
MAX_LENGTH = 1024


class IncompleteCacheError(ValueError):
    """The cache's manifest says ``complete: false`` (an interrupted prepare); the message says what to do."""


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
    # Copies the model onto every visible GPU (or the one CPU when there is none) and
    # splits each batch among them; for several GPUs in one machine. Several machines
    # need tf.distribute.MultiWorkerMirroredStrategy instead.
    return tf.distribute.MirroredStrategy()


def _check_count(name: str, value: Any, low: int | None, high: int | None = None) -> None:
    """``ValueError`` unless ``value`` is an integer within ``low`` .. ``high`` (None: unbounded)."""
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if is_int and (low is None or value >= low) and (high is None or value <= high):
        return
    bounds = "" if low is None else f" >= {low}" if high is None else f" from {low} to {high}"
    why = " (longer is a typo, not a clip: see MAX_LENGTH)" if name == "length" else ""
    raise ValueError(f"{name} must be an integer{bounds}{why}, got {value!r:.40}")


def check_options(*, model_name: str, length: int, epochs: int, batch_size: int, patience: int,
                  learning_rate: float | None, padding: str, split_scheme: str, split_seed: int,
                  distribution: str | None) -> None:
    """``ValueError`` naming the first option of ``train`` out of range; called before any work."""
    from helpers.models import MODELS

    for name, value, low, high in (("epochs", epochs, 1, None), ("batch_size", batch_size, 1, None),
                                   ("patience", patience, 0, None), ("length", length, 1, MAX_LENGTH),
                                   ("split_seed", split_seed, None, None)):
        _check_count(name, value, low, high)
    if learning_rate is not None and not (isinstance(learning_rate, (int, float)) and
                                          math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r:.40}")
    choices = {"model_name": (model_name, tuple(MODELS)), "padding": (padding, STRATEGIES),
               "split scheme": (split_scheme, SPLIT_SCHEMES), "distribution": (distribution, (None, *DISTRIBUTIONS))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r:.40}; choose one of "
                             f"{', '.join(str(a) for a in allowed if a is not None)}")


def check_complete(cache_dir: Path, manifest: dict[str, Any]) -> None:
    """``IncompleteCacheError`` if the manifest says an interrupted prepare wrote it (``complete: false``)."""
    if manifest.get("complete") is not False:
        return
    summary = manifest.get("summary") if isinstance(manifest.get("summary"), dict) else {}
    done, total = summary.get("done", len(manifest["clips"])), summary.get("clips", "?")
    raise IncompleteCacheError(
        f"cache {cache_dir} is incomplete (its manifest.json says complete: false, written by a prepare that "
        f"did not finish): it holds {done} of {total} clips. Re-run `python -m helpers prepare SOURCE --out "
        f"{cache_dir}` to finish it (finished clips are kept), or train on these clips with --allow-incomplete "
        "(allow_incomplete=True)")


#: ``predict`` feeds the model chunks of this many clips, the last one filled up with copies of
#: its final clip: one input shape, so Keras traces its predict step once per model (every new
#: shape traces again, and TensorFlow prints a warning when that repeats).
PREDICT_CHUNK = 8


def predict(model, faces: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's float64 ``[clips, 5]`` on numpy model input of any number of clips."""
    out = []
    for start in range(0, len(faces), PREDICT_CHUNK):
        f, m = faces[start:start + PREDICT_CHUNK], mask[start:start + PREDICT_CHUNK]
        n = len(f)
        if n < PREDICT_CHUNK:  # inference: each clip's output depends on that clip only
            f = np.concatenate([f, np.repeat(f[-1:], PREDICT_CHUNK - n, axis=0)])
            m = np.concatenate([m, np.repeat(m[-1:], PREDICT_CHUNK - n, axis=0)])
        out.append(np.asarray(model.predict_on_batch({"faces": f, "mask": m}), dtype=np.float64)[:n])
    return np.concatenate(out) if out else np.zeros((0, len(TRAITS)))


Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def predict_source(model, source: ClipSource, batch_size: int = 8,
                   transforms: Sequence[Transform] = ()) -> dict[str, Any]:
    """Predictions for every usable clip of ``source``, in its order: the one prediction loop.

    Returns ``{"names", "y_true" [n, 5], "y_pred" [n, 5], "skipped"}``; with ``transforms``
    (each ``(faces, mask) -> (faces, mask)`` on a batch), also ``"y_transformed"``
    ``[len(transforms), n, 5]``: the predictions on each transform of every batch (called in
    order, batch by batch: a transform drawing from one generator is reproducible).
    """
    names, ys, preds, changed = [], [], [], []
    for batch in source.batches(batch_size):
        names += batch["names"]
        ys.append(batch["y"].astype(np.float64))
        preds.append(predict(model, batch["faces"], batch["mask"]))
        if transforms:
            changed.append(np.stack([predict(model, *t(batch["faces"], batch["mask"])) for t in transforms]))
    empty = np.zeros((0, len(TRAITS)))
    out = {"names": names, "y_true": np.concatenate(ys) if ys else empty,
           "y_pred": np.concatenate(preds) if preds else empty, "skipped": dict(source.skipped)}
    if transforms:
        out["y_transformed"] = np.concatenate(changed, axis=1) if changed else np.zeros((len(transforms), 0, 5))
    return out


def _faces_input_shape(model) -> tuple:
    for tensor in model.inputs:
        if tensor.name.split(":")[0] == "faces" or len(tensor.shape) == 5:
            return tuple(tensor.shape)
    raise ValueError(f"model {model.name} has no 'faces' input")


def run_source(run: Run, cache_dir: Path, split: str, manifest: dict[str, Any] | None = None) -> ClipSource:
    """The clips of ``split`` of ``cache_dir`` as ``run``'s model takes them, under the run's own splits."""
    s = run.settings
    return clip_source(cache_dir, split, s.length, padding=s.padding, size=s.size, manifest=manifest,
                       assignment=run.assignment)


def evaluate(model, cache_dir: Path, split: str = "test", *, length: int | None = None, batch_size: int = 8,
             padding: Strategy | None = None, assignment: dict[str, str] | None = None) -> dict[str, Any]:
    """Score ``model`` (a Keras model or a run folder written by ``train``) on ``split`` of ``cache_dir``.

    Returns ``helpers.metrics.report`` (model beside the train-mean and same-video
    baselines, both from the training clips) plus ``split``, ``split_scheme``, ``names``,
    ``y_true``, ``y_pred`` (lists, for plots) and ``skipped``. For a run folder the splits
    are the run's own (``splits.json``), and ``length`` and ``padding`` default to its
    settings; for a Keras model ``assignment`` (clip name -> split) defaults to the
    cache's official splits, ``length`` to the model's input and ``padding`` to ``DEFAULT_PADDING``.
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    scheme = "official" if assignment is None else None  # None: an assignment of the caller's
    if isinstance(model, (str, Path)):
        run = load_run(model)
        model = run.model
        length = length or run.settings.length
        padding = padding or run.settings.padding
        assignment = run.assignment if assignment is None else assignment
        scheme = run.split_scheme
    shape = _faces_input_shape(model)
    length = length or int(shape[1])
    source = clip_source(cache_dir, split, length, padding=padding or DEFAULT_PADDING, size=int(shape[2]),
                         manifest=manifest, assignment=assignment)
    pred = predict_source(model, source, batch_size)
    if len(pred["names"]) == 0:
        raise ValueError(f"no readable clips in split {split!r} of {cache_dir}")
    rep = _report(pred, split_entries(cache_dir, "train", manifest, assignment))
    rep.update(split=split, split_scheme=scheme, names=pred["names"], y_true=pred["y_true"].tolist(),
               y_pred=pred["y_pred"].tolist(), skipped=pred["skipped"])
    return rep


def _report(pred: dict[str, Any], train_entries: list) -> dict[str, Any]:
    """``metrics.report`` of predictions beside both baselines, made from ``train_entries``' labels."""
    if not train_entries:
        raise ValueError("no training clips to make the baselines from")
    y_train = np.stack([e.labels for e in train_entries]).astype(np.float64)
    ids = [video_id(n) for n in pred["names"]]
    same = same_video_means(y_train, [video_id(e.name) for e in train_entries], ids)
    # Intervals resample videos: the clips of one video (one person) are not independent draws.
    return M.report(pred["y_true"], pred["y_pred"], means=M.train_means(y_train), same_video=same, video_ids=ids)


def _calibration(val: dict[str, Any], test: dict[str, Any], means: dict[str, float]) -> dict[str, Any]:
    """How far predictions shrink toward the mean (validation, test), and test after a per-trait
    linear recalibration fitted on validation only (``metrics.fit_recalibration``)."""
    slope, intercept = M.fit_recalibration(val["y_true"], val["y_pred"])
    recalibrated = M.apply_recalibration(test["y_pred"], slope, intercept)
    return {
        "validation": M.calibration(val["y_true"], val["y_pred"]),
        "test": M.calibration(test["y_true"], test["y_pred"]),
        "recalibration": {t: {"slope": float(slope[i]), "intercept": float(intercept[i])} for i, t in enumerate(TRAITS)},
        "recalibrated_test": M.score_report(test["y_true"], recalibrated, [video_id(n) for n in test["names"]],
                                            means=[means[t] for t in TRAITS]),
    }


def paired_comparison(run_a: Path, run_b: Path, cache_dir: Path, split: str = "test", *,
                      metric: str = "mae", resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Two run folders scored on the clips of ``split`` they share, paired (``metrics.compare_runs``).

    Each run is scored under its own splits (``evaluate``); train both with the same
    ``split_scheme`` and ``split_seed`` so that their test clips are the same.
    Returns the ``metrics.compare`` dict (``metric(a) - metric(b)`` per trait and for the mean,
    with its interval over resampled videos and the share of resamples where a is better).
    """
    a, b = evaluate(run_a, cache_dir, split), evaluate(run_b, cache_dir, split)
    return M.compare_runs(a, b, metric=metric, resamples=resamples, seed=seed)


def run_assignment(run_dir: Path) -> dict[str, str]:
    """clip name -> split of the run folder's training (its ``splits.json``)."""
    return read_run(run_dir).assignment


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What a training reads from the cache before it builds a model: the three splits as
    clip sources, and what the run folder will record about them."""

    cache_dir: Path
    settings: RunSettings       #: the preprocessing every later use of the model repeats
    split_scheme: str
    split_seed: int
    assignment: dict[str, str]  #: clip name -> split
    dataset: str | None         #: the cache's dataset kind (recorded by prepare)
    train: ClipSource           #: shuffled once per epoch with the training seed
    validation: ClipSource
    test: ClipSource


def training_data(cache_dir: Path, length: int = 32, *, seed: int = 0, padding: Strategy = DEFAULT_PADDING,
                  split_scheme: str = "by-video", split_seed: int = 0,
                  allow_incomplete: bool = False) -> TrainingData:
    """The splits of ``cache_dir`` under ``split_scheme`` as clip sources of ``length`` frames.

    Refuses an incomplete cache unless ``allow_incomplete``. ``seed`` shuffles the training
    clips (the same seed as the model's, in ``train``).
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    if not allow_incomplete:
        check_complete(cache_dir, manifest)
    assignment = split_assignment(manifest, split_scheme, split_seed, cache_dir=cache_dir)
    train_src = clip_source(cache_dir, "train", length, shuffle=True, seed=seed, padding=padding, manifest=manifest,
                            assignment=assignment)
    others = {split: clip_source(cache_dir, split, length, padding=padding, size=train_src.size, manifest=manifest,
                                 assignment=assignment) for split in ("validation", "test")}
    settings = RunSettings(length, train_src.size, int(manifest["settings"]["num_frames"]), padding, TRAITS,
                           manifest["settings"].get("detector"))
    return TrainingData(cache_dir, settings, split_scheme, split_seed, assignment, manifest.get("dataset"),
                        train_src, others["validation"], others["test"])


def fit_callbacks(epochs: int, learning_rate: float, patience: int = DEFAULT_PATIENCE) -> list:
    """The cosine learning-rate schedule and early stopping on validation MAE (best weights kept)."""
    return [
        keras.callbacks.LearningRateScheduler(lambda epoch: cosine_learning_rate(epoch, epochs, learning_rate)),
        # Model choice on the validation split by the challenge's own measure (MAE), whatever the loss.
        keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=patience, restore_best_weights=True),
    ]


def train(cache_dir: Path, run_dir: Path, model_name: str = "light", length: int = 32,
          epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
          distribution: str | None = None, verbose: int = 0, *, learning_rate: float | None = None,
          patience: int = DEFAULT_PATIENCE, padding: Strategy = DEFAULT_PADDING,
          split_scheme: str = "by-video", split_seed: int = 0, model_kwargs: dict | None = None,
          allow_incomplete: bool = False) -> dict[str, Any]:
    """Train ``model_name`` (a name of ``helpers.models.MODELS``) on the train split,
    stop early on validation, score test once.

    What the command line's ``train`` runs; notebook 05 writes the same steps out in cells
    (``training_data``, ``model.fit`` with ``fit_callbacks``, ``save_run``).
    ``split_scheme`` (``helpers.labels.SPLIT_SCHEMES``; default ``"by-video"``, no video
    on two sides; ``"official"`` measures recognising people, see the module docstring) and
    ``split_seed`` (by-video only; independent of the training ``seed``) say which clips form
    the splits (``inputs.split_assignment``). ``length``: the sequence length the model sees
    (1 to ``MAX_LENGTH``; each clip's usable frames are made that long with ``padding``).
    ``learning_rate`` defaults to the model's (``models.default_learning_rate``).
    ``verbose=1`` prints one line per epoch; Keras' own progress bars stay off.
    ``distribution="mirrored"`` builds and compiles the model under
    ``tf.distribute.MirroredStrategy`` (meant for several GPUs; it also runs on one CPU).
    ``allow_incomplete``: train on a cache an interrupted prepare left (refused otherwise).
    Options, the cache and ``run_dir`` are checked before any work. Returns the dict written
    to ``run_dir/metrics.json`` (see the module docstring).
    """
    from helpers.models import build_model, default_learning_rate

    check_options(model_name=model_name, length=length, epochs=epochs, batch_size=batch_size, patience=patience,
                  learning_rate=learning_rate, padding=padding, split_scheme=split_scheme, split_seed=split_seed,
                  distribution=distribution)
    lr = default_learning_rate(model_name) if learning_rate is None else float(learning_rate)
    data = training_data(cache_dir, length, seed=seed, padding=padding, split_scheme=split_scheme,
                         split_seed=split_seed, allow_incomplete=allow_incomplete)
    with staged_run(run_dir) as staging:  # made now: an unwritable --out is found before training
        keras.utils.set_random_seed(seed)
        with _distribution(distribution).scope():
            model = build_model(model_name, length, data.settings.size, learning_rate=lr, **(model_kwargs or {}))
        start = time.perf_counter()
        hist = _fit(model, data, epochs, batch_size, lr, patience, verbose)
        recorded = {"model": model_name, "seed": seed, "batch_size": batch_size, "learning_rate": lr,
                    "epochs": epochs, "patience": patience, "distribution": distribution,
                    "train_seconds": time.perf_counter() - start}
        return _score_and_write(staging, model, hist, data, recorded)


def save_run(run_dir: Path, model, history: dict[str, list[float]], data: TrainingData, *, model_name: str,
             seed: int, batch_size: int, learning_rate: float, epochs: int, patience: int = DEFAULT_PATIENCE,
             train_seconds: float = 0.0) -> dict[str, Any]:
    """Score a model trained on ``data`` (validation, then test once) and write its run folder.

    For a training written out by hand (notebook 05); ``train`` ends the same way. The
    other arguments are recorded in ``metrics.json`` as ``train`` records them. Returns what
    ``metrics.json`` holds.
    """
    with staged_run(run_dir) as staging:
        recorded = {"model": model_name, "seed": seed, "batch_size": batch_size, "learning_rate": float(learning_rate),
                    "epochs": epochs, "patience": patience, "distribution": None, "train_seconds": train_seconds}
        return _score_and_write(staging, model, history, data, recorded)


def _score_and_write(staging: Path, model, history: dict[str, list], data: TrainingData,
                     recorded: dict[str, Any]) -> dict[str, Any]:
    """Predict validation and test, build ``metrics.json``'s figures, save model and run files into ``staging``.

    ``history``: Keras' ``History.history``, written as plain floats.
    """
    hist = {k: [float(v) for v in vals] for k, vals in history.items()}
    usable_train = data.train.usable
    if not usable_train:
        raise ValueError(f"every training file of {data.cache_dir} failed to load: {sorted(data.train.skipped)}")
    batch_size = recorded["batch_size"]
    val_pred = predict_source(model, data.validation, batch_size)
    test_pred = predict_source(model, data.test, batch_size)  # the one look at test
    val, rep = _report(val_pred, usable_train), _report(test_pred, usable_train)
    facts = {
        "model": recorded["model"],
        "split": "test",
        **rep,
        "validation": {k: val[k] for k in ("n", "mean_accuracy", "mean_mae", "baseline_mean_accuracy",
                                           "baseline_mean_mae", "same_video_baseline_mean_accuracy",
                                           "mae_ratio", "intervals")},
        "calibration": _calibration(val_pred, test_pred, rep["train_means"]),
        "dataset": data.dataset,
        "seed": recorded["seed"],
        "batch_size": batch_size,
        "learning_rate": recorded["learning_rate"],
        "epochs": recorded["epochs"],
        "epochs_run": len(hist.get("loss", [])),
        "best_epoch": int(np.argmin(hist["val_mae"])) + 1 if hist.get("val_mae") else len(hist.get("loss", [])),
        "patience": recorded["patience"],
        "distribution": recorded["distribution"],
        "params": int(model.count_params()),
        "train_seconds": round(recorded["train_seconds"], 2),
        "n_clips": {"train": len(usable_train), "validation": val["n"], "test": rep["n"]},
        "skipped_files": {**data.train.skipped, **data.validation.skipped, **data.test.skipped},
    }
    model.save(staging / MODEL_FILE)
    return write_run(staging, data.settings, data.split_scheme, data.split_seed, data.assignment, facts, hist)


def _fit(model, data: TrainingData, epochs: int, batch_size: int, lr: float,
         patience: int, verbose: int) -> dict[str, list]:
    """``model.fit`` with ``fit_callbacks``; Keras' history dict."""
    callbacks = fit_callbacks(epochs, lr, patience)
    if verbose:
        callbacks.append(EpochLine(epochs))
    history = model.fit(dataset_from_source(data.train, batch_size),
                        validation_data=dataset_from_source(data.validation, batch_size),
                        epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0)
    return history.history


_RUN_CACHE: dict[tuple, Run] = {}


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)


def load_run(run_dir: Path) -> Run:
    """The ``helpers.runs.Run`` of a run folder written by ``train``, with its ``model`` loaded.

    Cached per version of its files (a re-trained folder is read again). Errors name the
    folder or file and what to do (``RunFolderError``, ``helpers.models.ModelFileError``).
    """
    from helpers.models import load_model

    record = read_run(run_dir)
    key = (_file_key(record.model_file), _file_key(record.folder / METRICS_FILE))
    if key not in _RUN_CACHE:
        _RUN_CACHE.clear()
        _RUN_CACHE[key] = dataclasses.replace(record, model=load_model(record.model_file))
    return _RUN_CACHE[key]
