"""Smoke tests of the score plots: they return a Figure and draw what they were given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import TRAITS  # noqa: E402
from helpers import metrics as M  # noqa: E402
from helpers import plots  # noqa: E402

RNG = np.random.default_rng(0)
Y = RNG.uniform(0.2, 0.8, size=(40, 5))
P = Y.mean(axis=0) + 0.4 * (Y - Y.mean(axis=0))  # shrunk toward the mean
VIDS = [f"v{i // 4}" for i in range(40)]


def test_reliability_bins_equal_count_and_exact_means():
    mp, mt, n = M.reliability_bins(Y, P, bins=4)
    assert mp.shape == mt.shape == n.shape == (4, 5)
    np.testing.assert_array_equal(n, 10)
    assert (np.diff(mp, axis=0) > 0).all()  # sorted by prediction
    np.testing.assert_allclose((mt * n).sum(axis=0) / 40, Y.mean(axis=0))  # every clip counted once
    # shrunk predictions: labels spread 2.5x as far as the predictions across bins
    np.testing.assert_allclose((mt[-1] - mt[0]) / (mp[-1] - mp[0]), 2.5)
    assert M.reliability_bins(Y[:3], P[:3], bins=10)[0].shape == (3, 5)
    with pytest.raises(ValueError, match="bins"):
        M.reliability_bins(Y, P, bins=0)


def test_reliability_plot_one_panel_per_trait_with_the_diagonal():
    fig = plots.reliability_plot(Y, P, bins=4)
    assert isinstance(fig, plt.Figure)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == list(TRAITS)
    for k, ax in enumerate(axes):
        diag, pts = ax.lines
        np.testing.assert_allclose(diag.get_xdata(), [0, 1])
        np.testing.assert_allclose(pts.get_xdata(), M.reliability_bins(Y, P, 4)[0][:, k])
    assert "Reliability" in fig._suptitle.get_text()
    plt.close(fig)
    slope, intercept = M.fit_recalibration(Y, P)
    fig = plots.reliability_plot(Y, P, bins=4, recalibrated=M.apply_recalibration(P, slope, intercept))
    assert all(len(ax.lines) == 3 for ax in fig.axes[:5])
    plt.close(fig)


def test_interval_plot_one_dot_per_trait_and_report():
    reps = {f"seed {s}": M.score_report(Y, P + 0.01 * s, VIDS, resamples=200, seed=s) for s in range(3)}
    fig = plots.interval_plot(reps)
    assert isinstance(fig, plt.Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(TRAITS) + ["mean (score)"]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 3 and all(len(d.get_xdata()) == 6 for d in dots)
    drawn = np.asarray(dots[0].get_xdata(), dtype=float)[:5]
    np.testing.assert_allclose(drawn, [reps["seed 0"]["traits"][t]["accuracy"]["estimate"] for t in TRAITS])
    assert "intervals" in ax.get_title()
    plt.close(fig)
    # r of constant predictions is undefined: those dots are left out, not drawn at 0
    const = M.score_report(Y, np.full_like(Y, 0.5), VIDS, resamples=50)
    fig = plots.interval_plot({"constant": const, "model": reps["seed 0"]}, metric="pearson_r")
    dots = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert [len(d.get_xdata()) for d in dots] == [0, 5]
    plt.close(fig)
