"""helpers.metrics against values worked out by hand."""

import json
import math

import numpy as np
import pytest

from helpers import TRAITS
from helpers import metrics as M

# Three clips, two traits; worked by hand below.
Y_TRUE = np.array([[0.5, 0.2], [0.7, 0.4], [0.3, 0.9]])
Y_PRED = np.array([[0.6, 0.2], [0.6, 0.5], [0.3, 0.6]])
# |errors| col 0: 0.1, 0.1, 0.0 -> MAE 0.2/3;  col 1: 0.0, 0.1, 0.3 -> MAE 0.4/3


def test_mae_and_accuracy_per_trait_hand_computed():
    np.testing.assert_allclose(M.mae_per_trait(Y_TRUE, Y_PRED), [0.2 / 3, 0.4 / 3])
    np.testing.assert_allclose(M.accuracy_per_trait(Y_TRUE, Y_PRED), [1 - 0.2 / 3, 1 - 0.4 / 3])
    # challenge score: mean over traits of 1 - MAE = 1 - 0.6/6 = 0.9
    assert M.mean_accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.9)


def test_perfect_prediction_scores_one():
    assert M.mean_accuracy(Y_TRUE, Y_TRUE) == pytest.approx(1.0)


def test_shape_mismatch_and_empty_raise():
    with pytest.raises(ValueError, match="shape"):
        M.mae_per_trait(Y_TRUE, Y_PRED[:2])
    with pytest.raises(ValueError):
        M.mae_per_trait(np.zeros((0, 5)), np.zeros((0, 5)))


def test_train_mean_baseline():
    y_train = np.array([[0.2, 1.0], [0.4, 0.0], [0.6, 0.5]])
    means = M.train_means(y_train)
    np.testing.assert_allclose(means, [0.4, 0.5])
    base = M.baseline_predictions(means, 3)
    assert base.shape == (3, 2)
    # Against Y_TRUE: col 0 |0.1|,|0.3|,|0.1| -> 0.5/3; col 1 0.3,0.1,0.4 -> 0.8/3
    np.testing.assert_allclose(M.mae_per_trait(Y_TRUE, base), [0.5 / 3, 0.8 / 3])


def test_pearson_r_hand_computed():
    # col 0: x = (1, 2, 3), y = (2, 4, 7), mean y = 13/3: dx = (-1, 0, 1), dy = (-7/3, -1/3, 8/3)
    # sum dx*dy = 15/3 = 5, |dx| = sqrt 2, |dy| = sqrt(114) / 3 -> r = 15 / (sqrt 2 * sqrt 114)
    t = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    p = np.array([[2.0, 3.0], [4.0, 2.0], [7.0, 1.0]])
    r = M.pearson_r(t, p)
    assert r[0] == pytest.approx(15 / (math.sqrt(2) * math.sqrt(114)))
    assert r[1] == pytest.approx(-1.0)
    np.testing.assert_allclose(r[0], np.corrcoef(t[:, 0], p[:, 0])[0, 1])


def test_pearson_r_is_nan_for_constant_predictions():
    t = np.array([[0.1, 0.2], [0.5, 0.3], [0.9, 0.8]])
    p = np.array([[0.3, 0.1], [0.3, 0.2], [0.3, 0.3]])  # column 0 constant (float 0.3: inexact)
    r = M.pearson_r(t, p)
    assert math.isnan(r[0])
    assert not math.isnan(r[1])
    # a single clip: undefined too
    assert np.isnan(M.pearson_r(t[:1], p[:1])).all()


def test_report_side_by_side_and_json_ready():
    y_train = np.array([[0.2, 1.0], [0.4, 0.0], [0.6, 0.5]])
    rep = M.report(Y_TRUE, Y_PRED, y_train, traits=("a", "b"))
    assert list(rep["per_trait"]) == ["a", "b"]
    a = rep["per_trait"]["a"]
    assert a["accuracy"] == pytest.approx(1 - 0.2 / 3)
    assert a["mae"] == pytest.approx(0.2 / 3)
    assert a["baseline_accuracy"] == pytest.approx(1 - 0.5 / 3)
    assert a["baseline_mae"] == pytest.approx(0.5 / 3)
    assert a["pearson_r"] == pytest.approx(np.corrcoef(Y_TRUE[:, 0], Y_PRED[:, 0])[0, 1])
    assert rep["mean_accuracy"] == pytest.approx(0.9)
    assert rep["baseline_mean_accuracy"] == pytest.approx(1 - 1.3 / 6)
    assert rep["mae_ratio"] == pytest.approx((0.6 / 6) / (1.3 / 6))
    assert rep["n"] == 3
    assert rep["train_means"] == pytest.approx({"a": 0.4, "b": 0.5})
    json.dumps(rep, allow_nan=False)  # no nan anywhere


def test_report_constant_predictions_give_null_r_and_baseline_equals_itself():
    rng = np.random.default_rng(0)
    y = rng.uniform(size=(10, 5))
    means = y.mean(axis=0)
    rep = M.report(y, M.baseline_predictions(means, 10), means=means)
    assert list(rep["per_trait"]) == list(TRAITS)
    for row in rep["per_trait"].values():
        assert row["pearson_r"] is None
        assert row["accuracy"] == pytest.approx(row["baseline_accuracy"])
    assert rep["mae_ratio"] == pytest.approx(1.0)
    json.dumps(rep, allow_nan=False)


def test_report_needs_a_baseline_and_matching_traits():
    with pytest.raises(ValueError, match="y_train or means"):
        M.report(Y_TRUE, Y_PRED, traits=("a", "b"))
    with pytest.raises(ValueError, match="trait names"):
        M.report(Y_TRUE, Y_PRED, Y_TRUE)  # default five names for two columns


def test_format_report_table(capsys):
    y = np.array([[0.5] * 5, [0.7] * 5, [0.2] * 5])
    p = np.array([[0.5] * 5, [0.5] * 5, [0.5] * 5])
    rep = M.report(y, p, y)
    text = M.format_report(rep, title="demo")
    lines = text.splitlines()
    assert lines[0] == "demo"
    for name in TRAITS:
        assert any(line.startswith(name) for line in lines)
    assert "n/a" in text  # constant predictions: r undefined
    assert "mean (score)" in text
    M.print_report(rep)
    assert "extraversion" in capsys.readouterr().out
