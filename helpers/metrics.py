"""The challenge metric, the train-mean baseline and per-trait Pearson r.

ChaLearn First Impressions scores a model per trait as ``1 - mean absolute error``
(targets and predictions in [0, 1]); the challenge score is the mean of that accuracy
over the five traits of ``helpers.TRAITS`` (``interview`` is not part of it).

That accuracy looks high for any sensible prediction: predicting each trait's
*training mean* for every clip already scores 0.8814 on the real test set (the 2016
winner scored 0.9130). So a report always shows a model beside this train-mean
baseline, and adds Pearson's r per trait, which says how much of the variation between
clips a model actually follows. Given the predictions of the *same-video* baseline (the mean
of the same video's training clips, ``helpers.labels.same_video_means``: 0.9049 on the real
test split, whose people mostly also appear in training), it shows that one beside them too.

Every function here is a small pure numpy function. Arrays of scores have shape
``[n_clips, n_traits]`` with the traits in ``TRAITS`` order.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from helpers import TRAITS


def _as_2d(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [n_clips, n_traits], got shape {arr.shape}")
    return arr


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_2d(y_true, "y_true"), _as_2d(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    if len(t) == 0:
        raise ValueError("no clips to score")
    return t, p


def mae_per_trait(y_true: Any, y_pred: Any) -> np.ndarray:
    """Mean absolute error per trait (column): float64 ``[n_traits]``."""
    t, p = _pair(y_true, y_pred)
    return np.abs(t - p).mean(axis=0)


def accuracy_per_trait(y_true: Any, y_pred: Any) -> np.ndarray:
    """The challenge accuracy per trait, ``1 - MAE``: float64 ``[n_traits]``."""
    return 1.0 - mae_per_trait(y_true, y_pred)


def mean_accuracy(y_true: Any, y_pred: Any) -> float:
    """The challenge score: the mean over traits of ``1 - MAE``."""
    return float(accuracy_per_trait(y_true, y_pred).mean())


def train_means(y_train: Any) -> np.ndarray:
    """Each trait's mean over the training clips: the train-mean baseline's prediction."""
    t = _as_2d(y_train, "y_train")
    if len(t) == 0:
        raise ValueError("no training clips to take the mean of")
    return t.mean(axis=0)


def baseline_predictions(means: Any, n: int) -> np.ndarray:
    """The train-mean baseline for ``n`` clips: ``means`` repeated, ``[n, n_traits]``."""
    m = np.asarray(means, dtype=np.float64).reshape(1, -1)
    return np.repeat(m, int(n), axis=0)


def pearson_r(y_true: Any, y_pred: Any) -> np.ndarray:
    """Pearson's correlation per trait between targets and predictions: ``[n_traits]``.

    Where either column is constant (e.g. the train-mean baseline, or a model that
    collapsed to one output) r is undefined and that entry is ``nan``, never an
    arbitrary 0; fewer than two clips also give ``nan``.
    """
    t, p = _pair(y_true, y_pred)
    out = np.full(t.shape[1], np.nan)
    if len(t) < 2:
        return out
    tc, pc = t - t.mean(axis=0), p - p.mean(axis=0)
    st, sp = np.sqrt((tc**2).sum(axis=0)), np.sqrt((pc**2).sum(axis=0))
    # A column is constant when its spread is ~0 relative to its magnitude (float round-off).
    scale_t = np.maximum(np.abs(t).max(axis=0), 1.0) * 1e-12 * len(t)
    scale_p = np.maximum(np.abs(p).max(axis=0), 1.0) * 1e-12 * len(p)
    ok = (st > scale_t) & (sp > scale_p)
    out[ok] = (tc[:, ok] * pc[:, ok]).sum(axis=0) / (st[ok] * sp[ok])
    return np.clip(out, -1.0, 1.0)


def _num(x: float) -> float | None:
    """A JSON-friendly float: nan becomes None."""
    x = float(x)
    return None if math.isnan(x) else x


def report(y_true: Any, y_pred: Any, y_train: Any | None = None, *,
           means: Any | None = None, same_video: Any | None = None, traits: Sequence[str] = TRAITS) -> dict[str, Any]:
    """Score predictions and the train-mean baseline side by side.

    Give either ``y_train`` (training targets, whose per-trait means are the baseline)
    or ``means`` directly. ``same_video``, when given, holds the same-video baseline's
    predictions ``[n_clips, n_traits]`` (``helpers.labels.same_video_means``: the mean of
    each clip's video's training clips); the report then adds ``same_video_baseline_accuracy``
    and ``same_video_baseline_mae`` per trait and ``same_video_baseline_mean_accuracy``,
    ``same_video_baseline_mean_mae``. Returns a JSON-ready dict::

        {"n": n_clips,
         "per_trait": {trait: {"accuracy", "mae", "pearson_r",
                               "baseline_accuracy", "baseline_mae"}},
         "mean_accuracy", "mean_mae", "baseline_mean_accuracy", "baseline_mean_mae",
         "mae_ratio": mean_mae / baseline_mean_mae,
         "train_means": {trait: mean}}

    ``pearson_r`` is ``None`` (JSON null) where it is undefined (constant predictions).
    """
    t, p = _pair(y_true, y_pred)
    if len(traits) != t.shape[1]:
        raise ValueError(f"{len(traits)} trait names for {t.shape[1]} columns")
    if means is None:
        if y_train is None:
            raise ValueError("give y_train or means for the train-mean baseline")
        means = train_means(y_train)
    means = np.asarray(means, dtype=np.float64).reshape(-1)
    if means.shape != (t.shape[1],):
        raise ValueError(f"means has shape {means.shape}, expected ({t.shape[1]},)")
    base = baseline_predictions(means, len(t))
    mae, base_mae, r = mae_per_trait(t, p), mae_per_trait(t, base), pearson_r(t, p)
    per_trait = {
        name: {
            "accuracy": float(1 - mae[i]),
            "mae": float(mae[i]),
            "pearson_r": _num(r[i]),
            "baseline_accuracy": float(1 - base_mae[i]),
            "baseline_mae": float(base_mae[i]),
        }
        for i, name in enumerate(traits)
    }
    mean_mae, base_mean_mae = float(mae.mean()), float(base_mae.mean())
    rep = {
        "n": int(len(t)),
        "per_trait": per_trait,
        "mean_accuracy": 1.0 - mean_mae,
        "mean_mae": mean_mae,
        "baseline_mean_accuracy": 1.0 - base_mean_mae,
        "baseline_mean_mae": base_mean_mae,
        "mae_ratio": mean_mae / base_mean_mae if base_mean_mae > 0 else float("inf"),
        "train_means": {name: float(means[i]) for i, name in enumerate(traits)},
    }
    if same_video is not None:
        _, sv = _pair(t, same_video)
        sv_mae = mae_per_trait(t, sv)
        for i, name in enumerate(traits):
            per_trait[name].update(same_video_baseline_accuracy=float(1 - sv_mae[i]),
                                   same_video_baseline_mae=float(sv_mae[i]))
        rep.update(same_video_baseline_mean_accuracy=1.0 - float(sv_mae.mean()),
                   same_video_baseline_mean_mae=float(sv_mae.mean()))
    return rep


def format_report(rep: dict[str, Any], title: str | None = None) -> str:
    """A fixed-width table of a ``report`` dict: one row per trait, then the mean.

    Accuracy (1 - MAE) of the model, the train-mean baseline and, when the report has it,
    the same-video baseline side by side; then the MAEs and Pearson's r.
    """
    def r_text(v: float | None) -> str:
        return "    n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:7.3f}"

    same = "same_video_baseline_mean_accuracy" in rep
    lines = []
    if title:
        lines.append(title)
    head = (f"{'trait':<18}{'accuracy':>9}{'baseline':>9}" + (f"{'same vid':>9}" if same else "")
            + f"{'MAE':>8}{'base MAE':>9}{'r':>8}")
    lines += [head, "-" * len(head)]
    for name, row in rep["per_trait"].items():
        lines.append(f"{name:<18}{row['accuracy']:9.4f}{row['baseline_accuracy']:9.4f}"
                     + (f"{row['same_video_baseline_accuracy']:9.4f}" if same else "")
                     + f"{row['mae']:8.4f}{row['baseline_mae']:9.4f}{r_text(row['pearson_r']):>8}")
    lines.append("-" * len(head))
    lines.append(f"{'mean (score)':<18}{rep['mean_accuracy']:9.4f}{rep['baseline_mean_accuracy']:9.4f}"
                 + (f"{rep['same_video_baseline_mean_accuracy']:9.4f}" if same else "")
                 + f"{rep['mean_mae']:8.4f}{rep['baseline_mean_mae']:9.4f}")
    lines.append(f"{rep['n']} clips; baseline = each trait's training mean; "
                 f"model MAE / baseline MAE = {rep['mae_ratio']:.2f}")
    if same:
        lines.append("same vid = the mean of the same video's (person's) training clips, the training mean when none")
    return "\n".join(lines)


def print_report(rep: dict[str, Any], title: str | None = None) -> None:
    """Print ``format_report(rep, title)`` (for notebooks)."""
    print(format_report(rep, title))
