"""Raters in miniature: the Bradley-Terry-Luce fit recovers simulated scores, and a planted rater
bias against a group shows up, measurably, in the fitted scores."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from helpers import raters as R

RNG = np.random.default_rng(0)
N = 150
TRUE = np.clip(RNG.normal(0.5, 0.12, N), 0, 1)
GROUPS = np.where(RNG.random(N) < 0.25, "B", "A")


def fitted(n_pairs=6000, **kwargs):
    c = R.simulate_comparisons(TRUE, GROUPS, n_pairs, against="B", seed=1, **kwargs)
    return R.strengths_to_scores(R.fit_btl(N, c.i, c.j, c.first_wins), like=TRUE)


def test_btl_recovers_scores_without_biased_raters():
    scores = fitted(noise=0.05)
    assert R.rank_correlation(TRUE, scores) >= 0.9
    assert abs(scores.mean() - TRUE.mean()) < 1e-9 and abs(scores.std() - TRUE.std()) < 1e-9
    report = R.bias_survival(TRUE, scores, GROUPS, "B")
    assert abs(report["bias_in_scores"]) < 0.015 and report["surviving_share"] is None


def test_biased_raters_leave_the_group_scored_lower_than_it_is():
    bias, share = 0.1, 0.4
    fair = R.bias_survival(TRUE, fitted(noise=0.05), GROUPS, "B")
    biased = R.bias_survival(TRUE, fitted(noise=0.05, biased_share=share, bias=bias), GROUPS, "B",
                             planted=-bias * share)
    assert biased["true_gap"] == fair["true_gap"] == pytest.approx(TRUE[GROUPS == "B"].mean()
                                                                   - TRUE[GROUPS == "A"].mean())
    assert biased["bias_in_scores"] < fair["bias_in_scores"] - 0.02
    assert 0.5 < biased["surviving_share"] < 2.0  # most of the planted -0.04 is in the scores
    assert biased["rank_correlation"] >= 0.85  # the ranking still looks good: the bias hides in it


def test_fewer_pairs_and_more_noise_recover_less():
    noisy = R.rank_correlation(TRUE, fitted(n_pairs=1500, noise=0.15))
    clean = R.rank_correlation(TRUE, fitted(n_pairs=8000, noise=0.05))
    assert noisy < clean


def test_simulate_comparisons_pairs_raters_and_seed():
    c = R.simulate_comparisons(TRUE, GROUPS, 2000, against="B", biased_share=0.25, bias=0.1, n_raters=40, seed=3)
    assert len(c.i) == len(c.j) == len(c.first_wins) == len(c.rater) == 2000
    assert (c.i != c.j).all() and c.i.max() < N and c.j.max() < N
    assert c.biased.sum() == 10 and c.rater.max() < 40
    again = R.simulate_comparisons(TRUE, GROUPS, 2000, against="B", biased_share=0.25, bias=0.1, n_raters=40, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(c, again))
    # Without noise an unbiased rater always picks the truly higher clip.
    exact = R.simulate_comparisons(TRUE, None, 500, noise=0.0)
    np.testing.assert_array_equal(exact.first_wins, TRUE[exact.i] > TRUE[exact.j])


def test_fit_btl_orders_a_clear_case_and_handles_one_sided_answers():
    i, j = np.array([0, 0, 1, 0, 1, 2] * 20), np.array([1, 2, 2, 3, 3, 3] * 20)
    s = R.fit_btl(4, i, j, np.ones(len(i), dtype=bool))  # lower index always wins: one class only
    assert list(np.argsort(-s)) == [0, 1, 2, 3] and abs(s.sum()) < 1e-9
    with pytest.raises(ValueError, match="two different clips"):
        R.fit_btl(4, [0], [0], [True])
    with pytest.raises(ValueError, match="two different clips"):
        R.fit_btl(4, [0], [4], [True])


def test_strengths_to_scores_and_rank_correlation():
    s = np.array([-2.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(R.strengths_to_scores(s), [0.0, 0.4, 0.6, 1.0])
    like = np.array([0.3, 0.5, 0.6, 0.7])
    out = R.strengths_to_scores(s, like=like)
    assert out.mean() == pytest.approx(like.mean()) and out.std() == pytest.approx(like.std())
    a, b = RNG.normal(size=50), RNG.normal(size=50)
    b[:5] = b[5]  # ties
    assert R.rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_refuses_bad_inputs():
    with pytest.raises(ValueError, match="no clip is in group 'C'"):
        R.simulate_comparisons(TRUE, GROUPS, 10, against="C", biased_share=0.5, bias=0.1)
    with pytest.raises(ValueError, match="biased_share"):
        R.simulate_comparisons(TRUE, GROUPS, 10, against="B", biased_share=1.5)
    with pytest.raises(ValueError, match="one finite score per clip"):
        R.simulate_comparisons(np.ones((3, 2)), None, 10)
    with pytest.raises(ValueError, match="every clip is in group"):
        R.group_gap(TRUE, ["B"] * N, "B")
