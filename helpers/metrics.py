"""The challenge metric, the field's other metrics, the baselines, and intervals that resample videos.

ChaLearn First Impressions scores a model per trait as ``1 - mean absolute error``
(targets and predictions in [0, 1]); the challenge score is the mean of that accuracy
over the five traits of ``helpers.TRAITS`` (``interview`` is not part of it).

That accuracy looks high for any sensible prediction: predicting each trait's
*training mean* for every clip already scores 0.8814 on the real test set (the 2016
winner scored 0.9130). So a report always shows a model beside this train-mean
baseline, and adds Pearson's r per trait, which says how much of the variation between
clips a model actually follows. Given the predictions of the *same-video* baseline (the mean
of the same video's training clips, ``helpers.labels.same_video_means``: 0.9049 on the real
test split, most of whose videos also have training clips), it shows that one beside them too.

``score_report`` adds what the field reports (DeepPersonality: 1 - MAE, MSE, Pearson r,
CCC) and R^2 against the train mean, each with an interval from a cluster bootstrap over
video ids; ``compare`` pairs two sets of predictions on the same clips; ``calibration``,
``fit_recalibration`` and ``apply_recalibration`` measure and undo the shrinking of
predictions toward the mean. Why videos, not clips: the clips of one video show one
person and are not independent. A video is not quite a person, though: on the demo data
each video id is its own person, but the real clips come from 2,764 YouTube users over
3,060 video ids, so a few people have several videos; resampling videos then treats two
videos of one person as independent, and real intervals may be slightly too narrow.

Every function here is a small pure numpy function. Arrays of scores have shape
``[n_clips, n_traits]`` with the traits in ``TRAITS`` order.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

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
           means: Any | None = None, same_video: Any | None = None, traits: Sequence[str] = TRAITS,
           video_ids: Sequence[Any] | None = None, resamples: int = 2000, seed: int = 0,
           level: float = 0.95) -> dict[str, Any]:
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
    With ``video_ids`` (one per clip) the report adds ``"intervals"``: ``score_report`` of
    the same predictions and baselines (every metric with a ``level`` interval from
    ``resamples`` resamples of the videos, ``seed``); ``format_report`` then shows it too.
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
    if video_ids is not None:
        rep["intervals"] = score_report(t, p, video_ids, means=means, same_video=same_video, resamples=resamples,
                                        seed=seed, level=level, traits=traits)
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
        lines.append("same vid = the mean of the same video's training clips, the training mean when none")
    if "intervals" in rep:
        lines += ["", format_score_report(rep["intervals"])]
    return "\n".join(lines)


def print_report(rep: dict[str, Any], title: str | None = None) -> None:
    """Print ``format_report(rep, title)`` (for notebooks)."""
    print(format_report(rep, title))


# ----------------------------------------------------------------------------- intervals
#
# Clips of one video are not independent (one video shows one person; on the real data a
# person may have several videos), so intervals come from a *cluster* bootstrap over video
# ids: each resample draws as many video ids as there are, with replacement, and every clip
# of a drawn video comes along (a video drawn twice counts twice). Every metric below is a
# function of a few weighted sums over clips, so a resample is a vector of per-video counts
# and all resamples are one matrix product of counts [B, n_videos] with per-video sums.

#: The metrics of ``score_report`` (per trait), with the direction that is better.
METRICS: tuple[str, ...] = ("accuracy", "mae", "mse", "pearson_r", "ccc", "r2", "sd_ratio", "slope")
#: Metrics where lower is better (``compare`` counts "A better" as A lower for these).
LOWER_IS_BETTER = frozenset({"mae", "mse"})
#: Metrics ``compare`` can compare (``sd_ratio`` and ``slope`` have no better direction).
COMPARABLE: tuple[str, ...] = ("accuracy", "mae", "mse", "pearson_r", "ccc", "r2")
#: Below this variance (relative to the mean square) a column counts as constant.
_CONSTANT = 1e-12


def _video_codes(video_ids: Sequence[Any], n: int) -> tuple[np.ndarray, int]:
    """Each clip's video as an integer 0..n_videos-1, and n_videos."""
    ids = list(video_ids)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} video ids for {n} clips: give one video id per clip "
                         "(helpers.dataset.video_id of each clip name)")
    _, codes = np.unique(np.asarray([str(v) for v in ids]), return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1


def _video_sums(t: np.ndarray, p: np.ndarray, codes: np.ndarray, n_videos: int,
                ref: np.ndarray | None) -> np.ndarray:
    """Per video the sums every metric needs: ``[n_videos, 9, n_traits]``.

    Rows: clips, |t-p|, (t-p)^2, t, p, t^2, p^2, t*p, (t-ref)^2 (0 without ``ref``). Labels,
    predictions and ``ref`` are first shifted by the label mean, which changes no metric but
    keeps the variances ``E[x^2] - E[x]^2`` free of cancellation.
    """
    c = t.mean(axis=0)
    tc, pc = t - c, p - c
    e = t - p
    dref = (t - ref) if ref is not None else np.zeros_like(t)
    per_clip = np.stack([np.ones_like(t), np.abs(e), e**2, tc, pc, tc**2, pc**2, tc * pc, dref**2], axis=1)
    sums = np.zeros((n_videos,) + per_clip.shape[1:])
    np.add.at(sums, codes, per_clip)
    return sums


def _metrics_from_sums(s: np.ndarray, has_ref: bool) -> dict[str, np.ndarray]:
    """Every metric of ``METRICS`` from summed statistics ``[..., 9, n_traits]`` (weights = counts).

    With ``n`` clips (weighted), means ``mt``, ``mp``, population variances ``vt``, ``vp`` and
    covariance ``cov``: MAE = mean |t - p|; accuracy = 1 - MAE; MSE = mean (t - p)^2;
    Pearson r = cov / sqrt(vt vp); CCC = 2 cov / (vt + vp + (mt - mp)^2) (Lin's concordance);
    R^2 = 1 - SSE / SST with SSE = sum (t - p)^2 and SST = sum (t - ref)^2 (``ref`` the
    train mean) or, without it, sum (t - mt)^2; sd_ratio = sqrt(vp / vt); slope = cov / vp
    (least-squares slope of labels on predictions: 1 when calibrated, above 1 when predictions
    shrink toward the mean). Undefined entries (a constant column) are nan.
    """
    n = s[..., 0, :]
    mae, mse = s[..., 1, :] / n, s[..., 2, :] / n
    mt, mp = s[..., 3, :] / n, s[..., 4, :] / n
    ett, epp = s[..., 5, :] / n, s[..., 6, :] / n
    vt, vp = np.maximum(ett - mt**2, 0.0), np.maximum(epp - mp**2, 0.0)
    cov = s[..., 7, :] / n - mt * mp
    t_ok = vt > _CONSTANT * np.maximum(ett, 1.0)
    p_ok = vp > _CONSTANT * np.maximum(epp, 1.0)
    sst = s[..., 8, :] if has_ref else n * vt
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(t_ok & p_ok, cov / np.sqrt(vt * vp), np.nan)
        denom = vt + vp + (mt - mp) ** 2
        ccc = np.where(denom > _CONSTANT * np.maximum(ett + epp, 1.0), 2 * cov / denom, np.nan)
        r2 = np.where(sst > _CONSTANT * n * np.maximum(ett, 1.0), 1.0 - s[..., 2, :] / sst, np.nan)
        sd_ratio = np.where(t_ok, np.sqrt(vp / vt), np.nan)
        slope = np.where(p_ok, cov / vp, np.nan)
    return {"accuracy": 1.0 - mae, "mae": mae, "mse": mse, "pearson_r": np.clip(r, -1.0, 1.0),
            "ccc": np.clip(ccc, -1.0, 1.0), "r2": r2, "sd_ratio": sd_ratio, "slope": slope}


def resample_counts(n_videos: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """``[resamples, n_videos]``: how often each video is drawn in each cluster-bootstrap resample.

    Each row draws ``n_videos`` video indices with replacement (``numpy.random.default_rng(seed)``).
    """
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_videos, size=(resamples, n_videos))
    offsets = (np.arange(resamples) * n_videos)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_videos).reshape(
        resamples, n_videos).astype(np.float64)


def _all_metrics(t: np.ndarray, p: np.ndarray, codes: np.ndarray, n_videos: int, counts: np.ndarray,
                 ref: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(point estimates ``{metric: [n_traits]}``, resampled ``{metric: [B, n_traits]}``)."""
    sums = _video_sums(t, p, codes, n_videos, ref)
    flat = sums.reshape(n_videos, -1)
    point = _metrics_from_sums(flat.sum(axis=0).reshape(sums.shape[1:]), ref is not None)
    boot = _metrics_from_sums((counts @ flat).reshape((len(counts),) + sums.shape[1:]), ref is not None)
    return point, boot


def _interval(estimate: float, samples: np.ndarray, level: float) -> dict[str, float | None]:
    """``{"estimate", "low", "high"}``: the estimate and the percentile interval of the finite samples."""
    finite = samples[np.isfinite(samples)]
    if math.isnan(float(estimate)) or finite.size == 0:
        return {"estimate": _num(estimate), "low": None, "high": None}
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (0.95 for a 95 % interval), got {level}")


def _reference(y_train: Any | None, means: Any | None, k: int) -> np.ndarray | None:
    """The train mean per trait (R^2's reference), or None to use the label mean."""
    if means is None and y_train is not None:
        means = train_means(y_train)
    if means is None:
        return None
    m = np.asarray(means, dtype=np.float64).reshape(-1)
    if m.shape != (k,):
        raise ValueError(f"train means have shape {m.shape}, expected ({k},)")
    return m


def _resampling(y_true: Any, preds: Sequence[Any], video_ids: Sequence[Any], traits: Sequence[str],
                y_train: Any | None, means: Any | None, resamples: int, seed: int, level: float) -> tuple:
    """Checked inputs of a resampled report: labels, each prediction set, video codes and count,
    the R^2 reference and the resample counts ``[resamples, videos]``."""
    _check_level(level)
    t = _pair(y_true, preds[0])[0]
    checked = tuple(_pair(t, p)[1] for p in preds)
    if len(traits) != t.shape[1]:
        raise ValueError(f"{len(traits)} trait names for {t.shape[1]} columns")
    codes, n_videos = _video_codes(video_ids, len(t))
    ref = _reference(y_train, means, t.shape[1])
    return t, checked, codes, n_videos, ref, resample_counts(n_videos, resamples, seed)


def score_report(y_true: Any, y_pred: Any, video_ids: Sequence[Any], y_train: Any | None = None, *,
                 means: Any | None = None, same_video: Any | None = None, resamples: int = 2000,
                 seed: int = 0, level: float = 0.95, traits: Sequence[str] = TRAITS) -> dict[str, Any]:
    """Every metric of ``METRICS`` per trait, with a ``level`` interval that resamples videos.

    ``video_ids``: one per clip (``helpers.dataset.video_id`` of its name); each of
    ``resamples`` cluster-bootstrap resamples (``resample_counts``, ``seed``) draws the
    videos with replacement and takes all their clips. Intervals are percentile intervals.
    ``y_train`` (or ``means``, its per-trait means) gives the train-mean baseline and is
    R^2's reference: R^2 = 1 - SSE / SST with SST around the *train* mean, so it reads as
    the share of the train-mean baseline's squared error the model removes (0 = no gain
    over the baseline); without either, SST is around the labels' own mean.
    ``same_video`` (predictions ``[n_clips, n_traits]``) adds the same-video baseline.
    Returns a JSON-ready dict (nan as None)::

        {"n_clips", "n_videos", "resamples", "seed", "level", "r2_reference": "train mean" | "label mean",
         "traits": {trait: {metric: {"estimate", "low", "high"}}},
         "mean_accuracy": {...}, "mean_mae": {...},
         "baselines": {"train_mean" | "same_video": {"mean_accuracy", "mean_mae",
                       "gain": {"estimate", "low", "high", "share_a_better"}}}}

    ``gain``: the model's mean accuracy minus the baseline's, paired on the same resamples;
    ``share_a_better``: the share of resamples where the model scores higher.
    """
    t, (p,), codes, n_videos, ref, counts = _resampling(y_true, (y_pred,), video_ids, traits, y_train, means,
                                                         resamples, seed, level)
    point, boot = _all_metrics(t, p, codes, n_videos, counts, ref)
    rep: dict[str, Any] = {
        "n_clips": int(len(t)), "n_videos": n_videos, "resamples": int(resamples), "seed": int(seed),
        "level": float(level), "r2_reference": "label mean" if ref is None else "train mean",
        "traits": {name: {m: _interval(point[m][i], boot[m][:, i], level) for m in METRICS}
                   for i, name in enumerate(traits)},
        "mean_accuracy": _interval(point["accuracy"].mean(), boot["accuracy"].mean(axis=1), level),
        "mean_mae": _interval(point["mae"].mean(), boot["mae"].mean(axis=1), level),
        "baselines": {},
    }
    others = {}
    if ref is not None:
        others["train_mean"] = baseline_predictions(ref, len(t))
    if same_video is not None:
        others["same_video"] = _pair(t, same_video)[1]
    for name, base in others.items():
        bpoint, bboot = _all_metrics(t, base, codes, n_videos, counts, ref)
        gain = _paired(point["accuracy"].mean(), boot["accuracy"].mean(axis=1),
                       bpoint["accuracy"].mean(), bboot["accuracy"].mean(axis=1), level, lower_better=False)
        rep["baselines"][name] = {
            "mean_accuracy": _interval(bpoint["accuracy"].mean(), bboot["accuracy"].mean(axis=1), level),
            "mean_mae": _interval(bpoint["mae"].mean(), bboot["mae"].mean(axis=1), level),
            "gain": gain,
        }
    return rep


def _paired(est_a: float, boot_a: np.ndarray, est_b: float, boot_b: np.ndarray, level: float,
            lower_better: bool) -> dict[str, float | None]:
    """The difference a - b with its interval, and the share of resamples where a is strictly better."""
    diff = boot_a - boot_b
    out = _interval(est_a - est_b, diff, level)
    finite = diff[np.isfinite(diff)]
    better = (finite < 0) if lower_better else (finite > 0)
    out["share_a_better"] = float(better.mean()) if finite.size else None
    return out


def compare(y_true: Any, pred_a: Any, pred_b: Any, video_ids: Sequence[Any], *, metric: str = "mae",
            y_train: Any | None = None, means: Any | None = None, resamples: int = 2000, seed: int = 0,
            level: float = 0.95, traits: Sequence[str] = TRAITS) -> dict[str, Any]:
    """Two sets of predictions on the same clips, paired: ``metric(a) - metric(b)`` with its interval.

    Both are scored on the *same* cluster-bootstrap resamples of videos (see ``score_report``),
    so what the clips have in common cancels. ``metric`` is one of ``COMPARABLE``; for
    ``mae`` and ``mse`` lower is better, for the others higher. ``y_train``/``means`` only
    matter for ``r2`` (its reference). Returns a JSON-ready dict::

        {"metric", "n_clips", "n_videos", "resamples", "seed", "level",
         "traits": {trait: {"a", "b", "difference", "low", "high", "share_a_better"}},
         "mean": {...the same for the metric's mean over traits}}

    ``difference`` = a - b; ``share_a_better``: the share of resamples where A is strictly
    better (ties, such as identical predictions, count for neither).
    """
    if metric not in COMPARABLE:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(COMPARABLE)}")
    t, (a, b), codes, n_videos, ref, counts = _resampling(y_true, (pred_a, pred_b), video_ids, traits, y_train,
                                                           means, resamples, seed, level)
    pa, ba = _all_metrics(t, a, codes, n_videos, counts, ref)
    pb, bb = _all_metrics(t, b, codes, n_videos, counts, ref)
    low = metric in LOWER_IS_BETTER

    def row(est_a: float, boot_a: np.ndarray, est_b: float, boot_b: np.ndarray) -> dict[str, Any]:
        d = _paired(est_a, boot_a, est_b, boot_b, level, low)
        return {"a": _num(est_a), "b": _num(est_b), "difference": d["estimate"], "low": d["low"],
                "high": d["high"], "share_a_better": d["share_a_better"]}

    return {"metric": metric, "n_clips": int(len(t)), "n_videos": n_videos, "resamples": int(resamples),
            "seed": int(seed), "level": float(level),
            "traits": {name: row(pa[metric][i], ba[metric][:, i], pb[metric][i], bb[metric][:, i])
                       for i, name in enumerate(traits)},
            "mean": row(pa[metric].mean(), ba[metric].mean(axis=1), pb[metric].mean(), bb[metric].mean(axis=1))}


def compare_runs(a: Mapping[str, Any], b: Mapping[str, Any], *, metric: str = "mae", **kwargs: Any) -> dict[str, Any]:
    """``compare`` of two runs' predictions, matched by clip name.

    ``a`` and ``b`` hold ``"names"``, ``"y_true"`` and ``"y_pred"`` (as
    ``helpers.training.evaluate`` returns them). Only the clips both hold are compared
    (``n_only_a``, ``n_only_b`` say how many were left out); video ids come from the clip
    names (``helpers.dataset.video_id``). ``kwargs`` go to ``compare``. Refuses runs that
    share no clip, or give one clip two different labels (not the same dataset).
    """
    from helpers.dataset import video_id

    rows_b = {name: i for i, name in enumerate(b["names"])}
    common = [(i, rows_b[name]) for i, name in enumerate(a["names"]) if name in rows_b]
    if not common:
        raise ValueError("the two runs share no test clip: a paired comparison needs the same clips "
                         "(train both with the same --split-scheme and --split-seed)")
    ia, ib = (np.array(ix) for ix in zip(*common))
    ta, tb = _as_2d(a["y_true"], "a's y_true")[ia], _as_2d(b["y_true"], "b's y_true")[ib]
    if not np.allclose(ta, tb):
        raise ValueError("the two runs label the same clips differently: were they scored on the same dataset?")
    names = [a["names"][i] for i in ia]
    rep = compare(ta, _as_2d(a["y_pred"], "a's y_pred")[ia], _as_2d(b["y_pred"], "b's y_pred")[ib],
                  [video_id(n) for n in names], metric=metric, **kwargs)
    rep.update(n_only_a=len(a["names"]) - len(common), n_only_b=len(b["names"]) - len(common))
    return rep


def format_comparison(rep: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> str:
    """A ``compare`` dict as text: per trait and mean, A, B, A - B [low, high], the share where A is better."""
    a, b = names
    metric = rep["metric"]
    wa, wb, wd, ws = max(9, len(a) + 2), max(9, len(b) + 2), max(12, len(a) + len(b) + 5), max(16, len(a) + 12)
    head = f"{'trait':<18}{a:>{wa}}{b:>{wb}}{a + ' - ' + b:>{wd}}  {'interval':<20}{a + ' better in':>{ws}}"
    lines = [f"{metric}: {a} against {b}, paired on the same {rep['n_clips']} clips", head, "-" * len(head)]
    for name, row in [*rep["traits"].items(), ("mean", rep["mean"])]:
        if row["difference"] is None:
            lines.append(f"{name:<18}{'n/a':>{wa}}")
            continue
        interval = "" if row["low"] is None else f"[{row['low']:+.4f}, {row['high']:+.4f}]"
        lines.append(f"{name:<18}{row['a']:{wa}.4f}{row['b']:{wb}.4f}{row['difference']:+{wd}.4f}  {interval:<20}"
                     f"{row['share_a_better']:>{ws}.0%}")
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    lines.append(f"{rep['level']:.0%} intervals from {rep['resamples']} resamples of {rep['n_videos']} videos; "
                 f"{better} {metric} is better")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- calibration


def calibration(y_true: Any, y_pred: Any, traits: Sequence[str] = TRAITS) -> dict[str, dict[str, float | None]]:
    """Per trait: how far predictions shrink toward the mean.

    ``sd_ratio`` = SD(predictions) / SD(labels) (population SDs; 1 = as spread as the labels);
    ``slope``, ``intercept``: least-squares fit labels ~ slope * prediction + intercept
    (slope 1 and intercept 0 when calibrated; slope > 1 when predictions shrink);
    ``mean_label``, ``mean_prediction``. Undefined entries (a constant column) are None.
    """
    t, p = _pair(y_true, y_pred)
    if len(traits) != t.shape[1]:
        raise ValueError(f"{len(traits)} trait names for {t.shape[1]} columns")
    point = _metrics_from_sums(_video_sums(t, p, np.zeros(len(t), dtype=int), 1, None)[0], False)
    slope, intercept = fit_recalibration(t, p)
    return {name: {"sd_ratio": _num(point["sd_ratio"][i]), "slope": _num(point["slope"][i]),
                   "intercept": _num(intercept[i]) if not math.isnan(point["slope"][i]) else None,
                   "mean_label": float(t[:, i].mean()), "mean_prediction": float(p[:, i].mean())}
            for i, name in enumerate(traits)}


def fit_recalibration(y_val: Any, p_val: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per trait least-squares ``label ~ slope * prediction + intercept`` on validation clips.

    Returns ``(slope, intercept)``, each ``[n_traits]``. Fit on validation only, apply to
    test with ``apply_recalibration``. A trait whose predictions are constant gets slope 0
    and the validation label mean as intercept (the best a line can do).
    """
    t, p = _pair(y_val, p_val)
    mt, mp = t.mean(axis=0), p.mean(axis=0)
    vp = ((p - mp) ** 2).mean(axis=0)
    cov = ((t - mt) * (p - mp)).mean(axis=0)
    ok = vp > _CONSTANT * np.maximum((p**2).mean(axis=0), 1.0)
    slope = np.where(ok, cov / np.where(ok, vp, 1.0), 0.0)
    return slope, mt - slope * mp


def apply_recalibration(y_pred: Any, slope: Any, intercept: Any, clip: bool = True) -> np.ndarray:
    """``slope * y_pred + intercept`` per trait, clipped to [0, 1] (the labels' range) unless ``clip=False``."""
    p = _as_2d(y_pred, "y_pred")
    s, b = np.asarray(slope, dtype=np.float64).reshape(-1), np.asarray(intercept, dtype=np.float64).reshape(-1)
    if s.shape != (p.shape[1],) or b.shape != (p.shape[1],):
        raise ValueError(f"slope {s.shape} and intercept {b.shape} must be ({p.shape[1]},), one per trait")
    out = p * s + b
    return np.clip(out, 0.0, 1.0) if clip else out


def reliability_bins(y_true: Any, y_pred: Any, bins: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per trait: clips sorted by prediction and cut into ``bins`` groups of (nearly) equal size.

    Returns ``(mean_prediction, mean_label, clips)``, each ``[bins, n_traits]``: a calibrated
    model has mean label = mean prediction in every bin. Equal-count bins rather than
    equal-width ones, because shrunk predictions crowd a narrow range. Fewer clips than
    ``bins`` give one bin per clip.
    """
    t, p = _pair(y_true, y_pred)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    k = min(int(bins), len(t))
    mean_p, mean_t, n = (np.zeros((k, t.shape[1])) for _ in range(3))
    for j in range(t.shape[1]):
        for b, rows in enumerate(np.array_split(np.argsort(p[:, j], kind="stable"), k)):
            mean_p[b, j], mean_t[b, j], n[b, j] = p[rows, j].mean(), t[rows, j].mean(), len(rows)
    return mean_p, mean_t, n


# ----------------------------------------------------------------------------- text


def interval_text(cell: Mapping[str, float | None], digits: int = 3, *, signed: bool = False) -> str:
    """``0.912 [0.905, 0.919]`` (``signed``: ``+0.012 [-0.005, +0.019]``); ``n/a`` when undefined."""
    if cell.get("estimate") is None:
        return "n/a"
    f = f"{'+' if signed else ''}.{digits}f"
    if cell.get("low") is None:
        return f"{cell['estimate']:{f}}"
    return f"{cell['estimate']:{f}} [{cell['low']:{f}}, {cell['high']:{f}}]"


#: Columns of ``format_score_report``: (metric, heading).
SHOWN = (("accuracy", "accuracy (1-MAE)"), ("pearson_r", "r"), ("ccc", "CCC"), ("r2", "R^2"))


def format_score_report(rep: dict[str, Any], title: str | None = None) -> str:
    """A ``score_report`` dict as text: per trait accuracy, r, CCC and R^2 as ``estimate [low, high]``,
    then the mean accuracy beside the baselines with the model's paired gain over each."""
    width = 23
    lines = [title] if title else []
    head = f"{'trait':<18}" + "".join(f"{h:>{width}}" for _, h in SHOWN)
    lines += [head, "-" * len(head)]
    for name, row in rep["traits"].items():
        lines.append(f"{name:<18}" + "".join(f"{interval_text(row[m]):>{width}}" for m, _ in SHOWN))
    lines.append("-" * len(head))
    lines.append(f"{'mean accuracy':<18}{interval_text(rep['mean_accuracy'], 4):>{width}}")
    for name, base in rep.get("baselines", {}).items():
        label = name.replace("_", "-") + " baseline"
        gain = base["gain"]
        lines.append(f"{label:<24}{interval_text(base['mean_accuracy'], 4)};  model - baseline "
                     f"{interval_text(gain, 4)}, model higher in {gain['share_a_better']:.0%} of resamples")
    lines.append(f"{rep['n_clips']} clips from {rep['n_videos']} videos; {rep['level']:.0%} intervals from "
                 f"{rep['resamples']} resamples of the videos (seed {rep['seed']}); "
                 f"R^2 around the {rep['r2_reference']}")
    return "\n".join(lines)
