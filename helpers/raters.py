"""Where the labels come from, in miniature: raters compare clips in pairs, a Bradley-Terry-Luce fit scores them.

First Impressions' scores were made this way (Ponce-López et al. 2016; Escalante et al. 2020):
crowd workers saw two clips and picked the one showing more of a trait; a Bradley-Terry-Luce
(BTL) model turned the answers into one score per clip. Here, for one trait:

- ``simulate_comparisons``: each comparison is made by one of ``n_raters`` raters, who perceives
  each clip as its true score plus Gaussian noise and picks the higher; a share of the raters is
  biased, perceiving every clip of one group ``bias`` lower than it is.
- ``fit_btl``: the BTL model says P(i beats j) = sigmoid(s_i - s_j), a logistic regression without
  intercept on a design row of +1 for i and -1 for j (scikit-learn, lightly L2-regularised, which
  also fixes the free additive constant: the strengths sum to ~0).
- ``strengths_to_scores``: the strengths' scale is arbitrary (only differences enter the model);
  map them to the scores' scale by matching a reference's mean and SD (a simulation has the true
  scores; real data has no truth, so the default is a min-max map to [0, 1]).
- ``bias_survival``: the fitted gap between the group and the rest against the true gap: how
  much of the raters' bias survives into the scores.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np


class Comparisons(NamedTuple):
    """Pairwise answers: clip ``i`` against clip ``j``; ``first_wins`` True when ``i`` was picked."""

    i: np.ndarray
    j: np.ndarray
    first_wins: np.ndarray
    rater: np.ndarray
    biased: np.ndarray  #: per rater (``[n_raters]``): whether that rater is biased


def _scores_1d(scores: Any, name: str) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or len(arr) < 2 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be one finite score per clip (one trait, >= 2 clips), got shape {arr.shape}")
    return arr


def _in_group(groups: Sequence[Any] | None, against: Any, n: int) -> np.ndarray:
    if groups is None or against is None:
        return np.zeros(n, dtype=bool)
    gs = list(groups)
    if len(gs) != n:
        raise ValueError(f"{len(gs)} groups for {n} clips: give one group per clip")
    member = np.array([g == against for g in gs], dtype=bool)
    if not member.any():
        raise ValueError(f"no clip is in group {against!r}: the bias has no one to act on")
    return member


def simulate_comparisons(true_scores: Any, groups: Sequence[Any] | None, n_pairs: int, *,
                         against: Any = None, biased_share: float = 0.0, bias: float = 0.0,
                         noise: float = 0.05, n_raters: int = 100, seed: int = 0) -> Comparisons:
    """``n_pairs`` comparisons of random pairs of distinct clips, each by a random rater.

    A rater perceives a clip as ``true score + N(0, noise)`` (a fresh draw per look), minus ``bias``
    when the rater is one of the ``round(biased_share * n_raters)`` biased raters and the clip is in
    group ``against`` (``groups``: one label per clip); the clip perceived higher wins.
    """
    t = _scores_1d(true_scores, "true_scores")
    member = _in_group(groups, against, len(t))
    if not 0.0 <= biased_share <= 1.0:
        raise ValueError(f"biased_share must be in [0, 1], got {biased_share}")
    if n_pairs < 1 or n_raters < 1 or noise < 0:
        raise ValueError("n_pairs and n_raters must be >= 1 and noise >= 0")
    rng = np.random.default_rng(seed)
    biased = np.zeros(n_raters, dtype=bool)
    biased[: int(round(biased_share * n_raters))] = True
    i = rng.integers(0, len(t), n_pairs)
    j = (i + rng.integers(1, len(t), n_pairs)) % len(t)  # never i itself
    rater = rng.integers(0, n_raters, n_pairs)
    shift = np.where(biased[rater], float(bias), 0.0)
    seen_i = t[i] + rng.normal(0.0, noise, n_pairs) - shift * member[i]
    seen_j = t[j] + rng.normal(0.0, noise, n_pairs) - shift * member[j]
    return Comparisons(i, j, seen_i > seen_j, rater, biased)


def fit_btl(n_items: int, i: Any, j: Any, first_wins: Any, *, C: float = 10.0) -> np.ndarray:
    """Bradley-Terry-Luce strengths ``[n_items]`` (mean 0) from pairwise answers, by logistic regression.

    Each answer is a row of a sparse design matrix, +1 in column ``i``, -1 in column ``j``; the
    target is whether ``i`` won. No intercept: the model is symmetric in who is shown first.
    ``C``: scikit-learn's inverse L2 strength (the penalty keeps strengths finite for a clip that
    won or lost every comparison). A clip never compared gets 0 (the mean).
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    y = np.asarray(first_wins, dtype=bool)
    if not (i.shape == j.shape == y.shape) or i.ndim != 1 or len(i) == 0:
        raise ValueError("i, j and first_wins must be equal-length, non-empty 1-D arrays")
    if i.min() < 0 or j.min() < 0 or max(i.max(), j.max()) >= n_items or (i == j).any():
        raise ValueError(f"pairs must name two different clips in 0..{n_items - 1}")
    if y.all() or not y.any():
        # One class only: flip half the rows (and their answers), which changes nothing in the model.
        flip = np.arange(len(y)) % 2 == 1
        i, j, y = np.where(flip, j, i), np.where(flip, i, j), np.where(flip, ~y, y)
    rows = np.repeat(np.arange(len(i)), 2)
    cols = np.stack([i, j], axis=1).ravel()
    vals = np.tile([1.0, -1.0], len(i))
    x = sparse.csr_matrix((vals, (rows, cols)), shape=(len(i), n_items))
    model = LogisticRegression(fit_intercept=False, C=C, max_iter=1000)
    model.fit(x, y)
    s = model.coef_.ravel()
    return s - s.mean()


def strengths_to_scores(strengths: Any, like: Any | None = None) -> np.ndarray:
    """Strengths on a score scale: with ``like`` (e.g. the true scores) its mean and SD; else min-max to [0, 1]."""
    s = _scores_1d(strengths, "strengths")
    spread = s.std()
    if like is None:
        lo, hi = s.min(), s.max()
        return (s - lo) / (hi - lo) if hi > lo else np.full_like(s, 0.5)
    ref = _scores_1d(like, "like")
    if spread == 0:
        return np.full_like(s, ref.mean())
    return ref.mean() + (s - s.mean()) * (ref.std() / spread)


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rank correlation (Pearson's r of the ranks; ties get their mean rank)."""
    from scipy.stats import rankdata

    x, y = rankdata(_scores_1d(a, "a")), rankdata(_scores_1d(b, "b"))
    if len(x) != len(y):
        raise ValueError(f"{len(x)} and {len(y)} scores: rank correlation needs pairs")
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x**2).sum() * (y**2).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def group_gap(scores: Any, groups: Sequence[Any], against: Any) -> float:
    """Mean score of group ``against`` minus the mean of every other clip."""
    s = _scores_1d(scores, "scores")
    member = _in_group(groups, against, len(s))
    if member.all():
        raise ValueError(f"every clip is in group {against!r}: a gap needs clips outside it")
    return float(s[member].mean() - s[~member].mean())


def bias_survival(true_scores: Any, fitted_scores: Any, groups: Sequence[Any], against: Any, *,
                  planted: float | None = None) -> dict[str, Any]:
    """How much of the raters' bias is in the fitted scores.

    Returns ``{"true_gap", "fitted_gap", "bias_in_scores", "rank_correlation", "planted",
    "surviving_share"}``: gaps are ``group_gap`` (group ``against`` minus the rest);
    ``bias_in_scores`` = fitted gap - true gap (negative: the group is scored lower than it is);
    ``planted``, when given, is the average shift the raters applied (``-bias * biased_share``),
    and ``surviving_share`` = bias_in_scores / planted (1: all of it survives; above 1: magnified).
    """
    true_gap = group_gap(true_scores, groups, against)
    fitted_gap = group_gap(fitted_scores, groups, against)
    in_scores = fitted_gap - true_gap
    share = in_scores / planted if planted else None
    return {"true_gap": true_gap, "fitted_gap": fitted_gap, "bias_in_scores": in_scores,
            "rank_correlation": rank_correlation(true_scores, fitted_scores),
            "planted": None if planted is None else float(planted), "surviving_share": share}
