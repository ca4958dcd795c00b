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


# ----------------------------------------------------------------------------- score_report and intervals

RNG_LABELS = np.random.default_rng(7).uniform(0.2, 0.8, size=(60, 5))
VIDEOS_60 = [f"v{i // 3}" for i in range(60)]  # 20 videos of 3 clips


def _estimates(rep, metric):
    return np.array([rep["traits"][t][metric]["estimate"] for t in rep["traits"]], dtype=float)


def test_perfect_predictions_score_perfectly():
    rep = M.score_report(RNG_LABELS, RNG_LABELS, VIDEOS_60, RNG_LABELS)
    np.testing.assert_allclose(_estimates(rep, "mae"), 0, atol=1e-12)
    for m in ("accuracy", "pearson_r", "ccc", "r2", "sd_ratio", "slope"):
        np.testing.assert_allclose(_estimates(rep, m), 1, atol=1e-9)
    assert rep["mean_accuracy"]["low"] == pytest.approx(1.0)
    assert rep["n_clips"] == 60 and rep["n_videos"] == 20
    json.dumps(rep, allow_nan=False)


def test_constant_predictions_r_undefined_and_r2_zero_at_the_train_mean():
    means = RNG_LABELS.mean(axis=0)
    rep = M.score_report(RNG_LABELS, M.baseline_predictions(means, 60), VIDEOS_60, means=means)
    for t in TRAITS:
        row = rep["traits"][t]
        assert row["pearson_r"] == {"estimate": None, "low": None, "high": None}
        assert row["slope"]["estimate"] is None
        assert row["sd_ratio"]["estimate"] == pytest.approx(0.0, abs=1e-9)
        assert row["ccc"]["estimate"] == pytest.approx(0.0, abs=1e-9)  # cov 0
        assert row["r2"]["estimate"] == pytest.approx(0.0, abs=1e-9)   # SSE = SST: no gain over the baseline
    # the model *is* the train-mean baseline: gain exactly 0 on every resample
    gain = rep["baselines"]["train_mean"]["gain"]
    assert (gain["estimate"], gain["low"], gain["high"], gain["share_a_better"]) == pytest.approx((0, 0, 0, 0))
    json.dumps(rep, allow_nan=False)


def test_shifted_predictions_keep_r_lower_ccc_and_mae_is_the_shift():
    rep = M.score_report(RNG_LABELS, RNG_LABELS + 0.1, VIDEOS_60)
    np.testing.assert_allclose(_estimates(rep, "mae"), 0.1)
    np.testing.assert_allclose(_estimates(rep, "mse"), 0.01)
    np.testing.assert_allclose(_estimates(rep, "pearson_r"), 1)
    np.testing.assert_allclose(_estimates(rep, "slope"), 1)
    vt = RNG_LABELS.var(axis=0)
    np.testing.assert_allclose(_estimates(rep, "ccc"), 2 * vt / (2 * vt + 0.01))  # Lin's CCC by hand
    np.testing.assert_allclose(_estimates(rep, "r2"), 1 - 0.01 / vt)  # around the label mean: no y_train
    assert rep["r2_reference"] == "label mean"


def test_shrunk_predictions_ccc_below_r_and_calibration_sees_the_shrink():
    mean = RNG_LABELS.mean(axis=0)
    shrunk = mean + 0.5 * (RNG_LABELS - mean)  # perfectly correlated, half the spread
    rep = M.score_report(RNG_LABELS, shrunk, VIDEOS_60)
    np.testing.assert_allclose(_estimates(rep, "pearson_r"), 1)
    vt = RNG_LABELS.var(axis=0)
    np.testing.assert_allclose(_estimates(rep, "ccc"), 2 * 0.5 * vt / (vt + 0.25 * vt))  # = 0.8
    assert (_estimates(rep, "ccc") < _estimates(rep, "pearson_r") - 0.1).all()
    cal = M.calibration(RNG_LABELS, shrunk)
    for t in TRAITS:
        assert cal[t]["sd_ratio"] == pytest.approx(0.5)
        assert cal[t]["slope"] == pytest.approx(2.0)
        assert cal[t]["mean_prediction"] == pytest.approx(cal[t]["mean_label"])
    # a fit on these clips undoes the shrink exactly
    slope, intercept = M.fit_recalibration(RNG_LABELS, shrunk)
    np.testing.assert_allclose(slope, 2.0)
    np.testing.assert_allclose(M.apply_recalibration(shrunk, slope, intercept), RNG_LABELS, atol=1e-12)


def test_scaled_predictions_pin_r2_against_the_train_mean():
    # predictions 0 everywhere on labels: SSE = sum t^2; SST around train mean m = sum (t - m)^2
    t = np.array([[0.2], [0.4], [0.6], [0.8]])
    m = np.array([0.5])
    rep = M.score_report(t, 0.5 * t, ["a", "a", "b", "b"], means=m, traits=("x",))
    sse = ((t - 0.5 * t) ** 2).sum()
    sst = ((t - 0.5) ** 2).sum()
    assert rep["traits"]["x"]["r2"]["estimate"] == pytest.approx(1 - sse / sst)
    assert rep["traits"]["x"]["pearson_r"]["estimate"] == pytest.approx(1.0)
    assert rep["traits"]["x"]["sd_ratio"]["estimate"] == pytest.approx(0.5)
    assert rep["r2_reference"] == "train mean"


def test_point_estimates_match_the_plain_functions():
    rng = np.random.default_rng(3)
    p = np.clip(RNG_LABELS + rng.normal(0, 0.1, RNG_LABELS.shape), 0, 1)
    rep = M.score_report(RNG_LABELS, p, VIDEOS_60, RNG_LABELS[:30])
    np.testing.assert_allclose(_estimates(rep, "mae"), M.mae_per_trait(RNG_LABELS, p))
    np.testing.assert_allclose(_estimates(rep, "pearson_r"), M.pearson_r(RNG_LABELS, p))
    assert rep["mean_accuracy"]["estimate"] == pytest.approx(M.mean_accuracy(RNG_LABELS, p))
    for t in TRAITS:
        for cell in rep["traits"][t].values():
            assert cell["low"] <= cell["estimate"] <= cell["high"]


def test_seeded_and_deterministic_and_the_seed_matters():
    p = RNG_LABELS[::-1]
    a = M.score_report(RNG_LABELS, p, VIDEOS_60, resamples=300, seed=5)
    b = M.score_report(RNG_LABELS, p, VIDEOS_60, resamples=300, seed=5)
    c = M.score_report(RNG_LABELS, p, VIDEOS_60, resamples=300, seed=6)
    assert a == b
    assert a["mean_accuracy"]["low"] != c["mean_accuracy"]["low"]


def test_resample_counts_draw_every_video_count_times():
    counts = M.resample_counts(7, resamples=50, seed=0)
    assert counts.shape == (50, 7)
    np.testing.assert_array_equal(counts.sum(axis=1), 7)


def _width(rep):
    return rep["mean_accuracy"]["high"] - rep["mean_accuracy"]["low"]


def _people(n_people, clips_each, seed):
    """Labels with a strong person effect, predictions with a per-person error: clips of a person alike."""
    rng = np.random.default_rng(seed)
    person = rng.uniform(0.2, 0.8, size=(n_people, 5))
    err = rng.normal(0, 0.1, size=(n_people, 5))
    rows = np.repeat(np.arange(n_people), clips_each)
    t = person[rows] + rng.normal(0, 0.01, size=(len(rows), 5))
    return t, t + err[rows] + rng.normal(0, 0.01, size=(len(rows), 5)), [f"p{r}" for r in rows]


def test_interval_width_follows_the_number_of_people_not_of_clips():
    t, p, vids = _people(30, 2, seed=1)
    base = _width(M.score_report(t, p, vids))
    # every clip of every person ten times over: same people, ten times the clips
    t10, p10, v10 = np.repeat(t, 10, axis=0), np.repeat(p, 10, axis=0), np.repeat(vids, 10).tolist()
    assert _width(M.score_report(t10, p10, v10)) == pytest.approx(base, rel=1e-9)
    # resampling clips instead (each clip its own "video") would call the copies independent
    naive = _width(M.score_report(t10, p10, list(range(len(t10)))))
    assert naive < 0.5 * base
    # four times the people: about half the width
    t4, p4, v4 = _people(120, 2, seed=2)
    assert 0.3 < _width(M.score_report(t4, p4, v4)) / base < 0.7


def test_interval_covers_the_true_value_in_about_95_percent_of_datasets():
    # errors e = person part + clip part, normal with SD sigma per trait:
    # population MAE = sigma * sqrt(2 / pi), so the true mean accuracy is known.
    sigma = np.array([0.08, 0.10, 0.12, 0.09, 0.11])
    su, se = sigma * np.sqrt(0.6), sigma * np.sqrt(0.4)
    truth = 1 - float((sigma * np.sqrt(2 / np.pi)).mean())
    truth_mae = sigma * np.sqrt(2 / np.pi)
    rng = np.random.default_rng(2024)
    n_people, clips = 40, 4
    rows = np.repeat(np.arange(n_people), clips)
    covered, covered_mae = 0, np.zeros(5)
    for k in range(200):
        t = rng.uniform(0.2, 0.8, size=(len(rows), 5))
        p = t + rng.normal(0, 1, (n_people, 5))[rows] * su + rng.normal(0, 1, t.shape) * se
        rep = M.score_report(t, p, rows, resamples=1000, seed=k)
        covered += rep["mean_accuracy"]["low"] <= truth <= rep["mean_accuracy"]["high"]
        covered_mae += [rep["traits"][n]["mae"]["low"] <= truth_mae[i] <= rep["traits"][n]["mae"]["high"]
                        for i, n in enumerate(TRAITS)]
    # measured: 0.925 (per trait 0.91-0.965); resampling clips instead of people gives 0.845 here
    assert 0.90 <= covered / 200 <= 0.98
    assert ((0.88 <= covered_mae / 200) & (covered_mae / 200 <= 0.98)).all()


def test_score_report_refuses_bad_input_clearly():
    with pytest.raises(ValueError, match="video ids for 60 clips"):
        M.score_report(RNG_LABELS, RNG_LABELS, VIDEOS_60[:10])
    with pytest.raises(ValueError, match="level"):
        M.score_report(RNG_LABELS, RNG_LABELS, VIDEOS_60, level=95)
    with pytest.raises(ValueError, match="resamples"):
        M.score_report(RNG_LABELS, RNG_LABELS, VIDEOS_60, resamples=0)


def test_report_with_video_ids_adds_intervals_and_format_shows_them():
    means = RNG_LABELS.mean(axis=0)
    p = np.clip(RNG_LABELS + 0.05, 0, 1)
    plain = M.report(RNG_LABELS, p, means=means, same_video=RNG_LABELS)
    rep = M.report(RNG_LABELS, p, means=means, same_video=RNG_LABELS, video_ids=VIDEOS_60, resamples=200)
    assert "intervals" not in plain
    assert {k: v for k, v in rep.items() if k != "intervals"} == plain  # compatible: the rest unchanged
    iv = rep["intervals"]
    assert iv["mean_accuracy"]["estimate"] == pytest.approx(rep["mean_accuracy"])
    assert set(iv["baselines"]) == {"train_mean", "same_video"}
    assert iv["baselines"]["same_video"]["gain"]["share_a_better"] == 0.0  # same video = the labels here
    text = M.format_report(rep)
    assert "60 clips from 20 videos" in text and "CCC" in text and "same-video baseline" in text
    est = iv["traits"]["openness"]["accuracy"]
    assert f"{est['estimate']:.3f} [{est['low']:.3f}, {est['high']:.3f}]" in text
    json.dumps(rep, allow_nan=False)


# ----------------------------------------------------------------------------- compare


def test_compare_identical_predictions_differ_by_exactly_zero():
    p = np.clip(RNG_LABELS + 0.05, 0, 1)
    for metric in M.COMPARABLE:
        c = M.compare(RNG_LABELS, p, p.copy(), VIDEOS_60, metric=metric, resamples=300)
        assert (c["mean"]["difference"], c["mean"]["low"], c["mean"]["high"]) == (0.0, 0.0, 0.0)
        assert c["mean"]["share_a_better"] == 0.0  # ties count for neither


def test_compare_a_clearly_better_set():
    rng = np.random.default_rng(11)
    good = RNG_LABELS + rng.normal(0, 0.02, RNG_LABELS.shape)
    bad = RNG_LABELS + rng.normal(0, 0.15, RNG_LABELS.shape)
    c = M.compare(RNG_LABELS, good, bad, VIDEOS_60, metric="mae")
    assert c["mean"]["high"] < 0  # MAE of A minus B: below zero throughout
    assert c["mean"]["share_a_better"] > 0.99
    assert c["mean"]["difference"] == pytest.approx(
        M.mae_per_trait(RNG_LABELS, good).mean() - M.mae_per_trait(RNG_LABELS, bad).mean())
    flipped = M.compare(RNG_LABELS, good, bad, VIDEOS_60, metric="ccc")
    assert flipped["mean"]["low"] > 0 and flipped["mean"]["share_a_better"] > 0.99  # higher is better
    assert set(c["traits"]) == set(TRAITS)
    json.dumps(c, allow_nan=False)
    with pytest.raises(ValueError, match="unknown metric"):
        M.compare(RNG_LABELS, good, bad, VIDEOS_60, metric="slope")


def test_recalibration_clips_to_the_label_range_and_handles_constant_predictions():
    p = np.full((4, 2), 0.4)
    t = np.array([[0.1, 0.3], [0.3, 0.5], [0.5, 0.7], [0.7, 0.9]])
    slope, intercept = M.fit_recalibration(t, p)
    np.testing.assert_allclose(slope, 0)
    np.testing.assert_allclose(intercept, t.mean(axis=0))
    assert M.calibration(t, p, traits=("a", "b"))["a"]["slope"] is None
    out = M.apply_recalibration(np.array([[0.9, 0.1]]), [2.0, 2.0], [0.0, -0.5])
    np.testing.assert_allclose(out, [[1.0, 0.0]])
    with pytest.raises(ValueError, match="one per trait"):
        M.apply_recalibration(p, [1.0], [0.0, 0.0])


def test_compare_runs_matches_clips_by_name_and_refuses_other_datasets():
    names = [f"vid{i // 3:08d}.{i % 3:03d}.mp4" for i in range(60)]
    good = RNG_LABELS + 0.02
    a = {"names": names, "y_true": RNG_LABELS, "y_pred": good}
    order = np.arange(60)[::-1]  # b lists its clips in another order, and misses two
    keep = order[2:]
    b = {"names": [names[i] for i in keep], "y_true": RNG_LABELS[keep], "y_pred": (RNG_LABELS + 0.1)[keep]}
    rep = M.compare_runs(a, b, resamples=200)
    assert rep["n_clips"] == 58 and rep["n_only_a"] == 2 and rep["n_only_b"] == 0
    assert rep["n_videos"] == 20
    assert rep["mean"]["difference"] == pytest.approx(0.02 - 0.1)
    assert rep["mean"]["share_a_better"] == 1.0
    text = M.format_comparison(rep, ("light", "per-frame"))
    assert "light - per-frame" in text and "paired on the same 58 clips" in text and "lower mae is better" in text
    with pytest.raises(ValueError, match="share no test clip"):
        M.compare_runs(a, {"names": ["other00000.000.mp4"], "y_true": RNG_LABELS[:1], "y_pred": good[:1]})
    with pytest.raises(ValueError, match="differently"):
        M.compare_runs(a, {**a, "y_true": RNG_LABELS + 0.5})
