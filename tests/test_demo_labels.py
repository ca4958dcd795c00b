"""Tests for helpers.demo_labels: the demo's people, plan, official splits and labels."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest

from helpers import TRAITS
from helpers import demo_labels as dl
from helpers import labels as lb
from helpers.demo import factors_from_scores, scores_from_factors

CLIP_NAME = re.compile(r"^[A-Za-z0-9_-]{11}\.00[0-5]\.mp4$")


@pytest.fixture(scope="module")
def default() -> list[dl.DemoClipLabels]:
    return dl.draw_demo_labels()


def test_plan_layout(default):
    assert len(default) == 200 and len({c.name for c in default}) == 200
    assert all(CLIP_NAME.match(c.name) and c.name.startswith(c.video_id + ".") for c in default)
    assert Counter(c.split for c in default) == {"train": 120, "validation": 40, "test": 40}
    assert [c.index for c in default] == list(range(200))
    order = [dl.SPLITS.index(c.split) for c in default]
    assert order == sorted(order)  # training clips first, then validation, then test
    per_video = Counter(c.video_id for c in default)
    assert set(per_video.values()) <= set(range(1, 7)) and max(per_video.values()) == 6
    assert len({c.video_index for c in default}) == len(per_video)
    # One person per video: all its clips share the person scores, whatever their split.
    people = {}
    for c in default:
        assert people.setdefault(c.video_id, c.person) == c.person


def test_deterministic_in_seed():
    assert dl.draw_demo_labels(60, 3) == dl.draw_demo_labels(60, 3)
    assert dl.draw_demo_labels(60, 3) != dl.draw_demo_labels(60, 4)
    with pytest.raises(ValueError, match="at least 3 clips"):
        dl.draw_demo_labels(2)
    small = dl.draw_demo_labels(3, 0)  # too few people to match moments: still valid labels
    assert [c.split for c in small] == ["train", "validation", "test"]


def test_every_part_of_a_label_but_the_noise_is_visible(default):
    for c in default:
        s = np.array([c.scores[t] for t in TRAITS])
        assert ((0 <= s) & (s <= 1)).all()
        # The clip's factors carry its noiseless scores exactly ...
        back = scores_from_factors(factors_from_scores(c.scores))
        assert [back[t] for t in TRAITS] == pytest.approx(list(s), abs=1e-12)
        # ... which are the person's scores plus the clip's own deviation; the label adds only the noise.
        for t in TRAITS:
            assert c.labels[t] == pytest.approx(min(1.0, max(0.0, c.scores[t] + c.noise[t])), abs=1e-15)
        assert 0 <= c.interview <= 1
    noise = np.array([[c.noise[t] for t in TRAITS] for c in default])
    # The noise floor: mean |noise| about NOISE_STD sqrt(2/pi) (1000 draws: standard error 0.0004).
    assert np.abs(noise).mean() == pytest.approx(dl.noise_floor_mae(), abs=0.002)
    assert dl.noise_floor_mae() == pytest.approx(0.02 * math.sqrt(2 / math.pi))


def test_person_and_clip_structure_matches_the_design():
    clips = dl.draw_demo_labels(2000, 0)
    person = {}
    for c in clips:
        person[c.video_id] = [c.person[t] for t in TRAITS]
    weights = Counter(c.video_id for c in clips)
    p = np.array([person[v] for v in weights])
    w = np.array([weights[v] for v in weights], dtype=float)
    mean = (w[:, None] * p).sum(axis=0) / w.sum()
    cov = ((p - mean) * w[:, None]).T @ (p - mean) / w.sum()
    assert mean == pytest.approx([dl.TRAIT_MEANS[t] for t in TRAITS], abs=1e-9)
    assert cov == pytest.approx(dl.BETWEEN_SD**2 * dl.trait_correlation_matrix(), abs=1e-9)
    # Correlations of the designed matrix: positive, weaker than the real ones, weakest for extraversion.
    r = dl.trait_correlation_matrix()
    off = r[~np.eye(5, dtype=bool)]
    assert (off > 0).all() and 0.3 <= off.mean() <= 0.5
    e = TRAITS.index("extraversion")
    others = np.delete(np.arange(5), e)
    r2 = r[e, others] @ np.linalg.solve(r[np.ix_(others, others)], r[others, e])
    assert r2 <= 0.15


@pytest.mark.parametrize("seed", range(5))
def test_default_size_hits_the_targets(seed):
    t = dl.label_targets(dl.draw_demo_labels(200, seed))
    assert 0.7 <= t["test_overlap"] <= 0.95
    assert 0.3 <= t["mean_pairwise_r"] <= 0.5
    assert 0.55 <= t["min_between_video_share"] and t["max_between_video_share"] <= 0.85
    assert t["same_video_gain"] >= 0.0118
    assert t["extraversion_r2"] <= 0.3
    assert 0.065 <= t["within_video_sd"] <= 0.085  # the real one is about 0.075
    assert 0.134 <= t["total_sd"] <= 0.155         # the real range


def test_label_targets_agree_with_the_labels_module(default):
    by_split = dl.demo_annotations(default)
    report = lb.label_report(by_split)
    t = dl.label_targets(default)
    assert t["test_overlap"] == report["clips_with_video_in_training"]["test"]
    assert t["same_video_gain"] == report["baselines"]["same_video"] - report["baselines"]["train_mean"]
    assert t["mean_pairwise_r"] == pytest.approx(lb.mean_pairwise_correlation(report["trait_correlation"]))
    assert t["min_between_video_share"] == min(report["between_video_share"].values())
    # The overlap comes from the clip-level split, not from the labels: the plan alone shows it.
    videos = np.array([c.video_index for c in default])
    splits = np.array([dl.SPLITS.index(c.split) for c in default])
    labels = np.array([[c.labels[x] for x in TRAITS] for c in default])
    assert dl.split_figures(videos, splits, labels) == pytest.approx(
        {"test_overlap": t["test_overlap"], "same_video_gain": t["same_video_gain"]})


def test_official_splits_are_clip_level_and_typical():
    rng = np.random.default_rng(0)
    videos = np.repeat(np.arange(40), 5)
    labels = rng.uniform(size=(200, 5))
    splits = dl.draw_official_splits(videos, labels, np.random.default_rng(1))
    assert np.bincount(splits).tolist() == [120, 40, 40]
    assert sum(len(set(splits[videos == v].tolist())) > 1 for v in range(40)) > 20  # videos span splits
    # The kept draw is the nearest of SPLIT_DRAWS to the real figures: no single draw is nearer.
    def gap(s):
        f = dl.split_figures(videos, s, labels)
        return (abs(f["test_overlap"] - dl.REAL_TEST_OVERLAP) / dl.REAL_TEST_OVERLAP
                + abs(f["same_video_gain"] - dl.REAL_SAME_VIDEO_GAIN) / dl.REAL_SAME_VIDEO_GAIN)
    cut = np.repeat([0, 1, 2], [120, 40, 40])
    again = np.random.default_rng(1)
    assert min(gap(cut[again.permutation(200)]) for _ in range(dl.SPLIT_DRAWS)) == gap(splits)
