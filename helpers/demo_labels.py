"""The demo dataset's label model: people, their clips, the official splits and the labels.

The real First Impressions labels are mostly a property of the person: 65-80 % of each
trait's variance lies between videos (a video shows one person), the traits correlate
strongly (pairwise r 0.58-0.80), and the official splits share people (84 % of the test
clips come from a video with clips in training). This module draws demo labels with the
same structure, so that the demo can show what that means (``helpers.labels``), while
every part of a clip's label except a small noise stays visible in that clip.

How a clip's label is made (``draw_labels``), for video (person) ``v`` and clip ``c``:

1. person scores ``p_v``, one per video: normal with mean ``TRAIT_MEANS`` (the real
   training means) and covariance ``BETWEEN_SD^2 R``;
2. the clip's noiseless score ``s_c = clip(p_v + d_c, 0, 1)``, ``d_c`` normal with mean 0 and
   covariance ``WITHIN_SD^2 R``: how this clip of the person came across. ``s_c`` sets the
   clip's visual factors (``helpers.demo.factors_from_scores``: extraversion as roll speed,
   the others as brightness, contrast, sharpness, side shadow), so all of ``s_c`` is
   visible in the clip;
3. the label ``clip(s_c + e_c, 0, 1)``, ``e_c ~ Normal(0, NOISE_STD)`` independent per trait:
   the *noise floor*, the only part of a label no clip shows. A model that read every
   factor exactly would keep a mean absolute error of about ``NOISE_STD sqrt(2 / pi) = 0.016``
   (``noise_floor_mae``; challenge accuracy about 0.984);
4. ``interview = clip(mean of the five labels + Normal(0, NOISE_STD), 0, 1)``.

Person scores and clip deviations are drawn, then moved and mixed so that over the clips
they have exactly the designed means and covariances (``_matched``): with 200 clips from
about 60 people, raw draws would miss the design by chance. The noise is left as drawn.

``R`` (``trait_correlation_matrix``) is positive but weaker than the real one, and weakest
for extraversion, so that extraversion stays a matter of motion: from the four other
traits (each visible in a single frame) a linear fit explains about 11 % of its variance.
Measured like the real labels (``helpers.labels``), the spreads give a total SD of about
0.14, a within-video SD of about 0.075 and 68-75 % of each trait's variance between videos.

The plan (``plan_videos``): videos get 1-6 clips (``CLIPS_PER_VIDEO``, numbers ``.000``-
``.005``), a distribution under which a clip-level random split reproduces the real split
figures (on average 86 % of the videos have training clips, 48 % test clips, and 85 % of
the test clips come from a video with training clips). The official splits are drawn that
way, per clip, 60/20/20 like the real 6000/2000/2000 (``draw_official_splits``), so the same
person appears on several sides as in the real data.

Everything is deterministic in ``(n_clips, seed)``; layout, labels and splits use separate
random streams, none shared with ``helpers.demo``'s.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from helpers import SPLITS, TRAITS
from helpers import labels as lb

#: Training means of the real labels (First Impressions V2), TRAITS order.
TRAIT_MEANS: dict[str, float] = {"extraversion": 0.476, "neuroticism": 0.520, "agreeableness": 0.548,
                                 "conscientiousness": 0.523, "openness": 0.566}
#: SD of the person scores around the means, and of a clip's visible deviation from its person.
BETWEEN_SD = 0.110
WITHIN_SD = 0.088
#: SD of the label noise (the noise floor): the part of a label no clip shows.
NOISE_STD = 0.02
#: Pairwise r between extraversion and each other trait, and among the four others.
EXTRAVERSION_R = 0.27
OTHERS_R = 0.55
#: Probability of a video having 1, 2, ... 6 clips.
CLIPS_PER_VIDEO: tuple[float, ...] = (0.25, 0.20, 0.10, 0.10, 0.10, 0.25)
#: Official split shares, like the real 6000 / 2000 / 2000.
SPLIT_SHARES = {"train": 0.6, "validation": 0.2, "test": 0.2}
#: Real test split: share of clips whose video has training clips, and same-video minus train-mean accuracy.
REAL_TEST_OVERLAP = 0.840
REAL_SAME_VIDEO_GAIN = 0.9049 - 0.8814
#: Random clip-level splits drawn; the one nearest the real figures is kept (``draw_official_splits``).
SPLIT_DRAWS = 20

_ID_ALPHABET = string.ascii_letters + string.digits + "-_"
# Random streams of this module, apart from helpers.demo's (0-3) so they never coincide.
_STREAM_LAYOUT, _STREAM_LABELS, _STREAM_SPLITS = 10, 11, 12


def trait_correlation_matrix() -> np.ndarray:
    """``R``: the 5x5 correlation of person scores and of clip deviations, TRAITS order."""
    r = np.full((len(TRAITS), len(TRAITS)), OTHERS_R)
    e = TRAITS.index("extraversion")
    r[e, :] = r[:, e] = EXTRAVERSION_R
    np.fill_diagonal(r, 1.0)
    return r


@dataclass(frozen=True)
class DemoClipLabels:
    """One demo clip's place in the plan and its labels (no pixels)."""

    name: str                   #: file name, e.g. ``J4GQm9j0JZ0.003.mp4``
    video_id: str
    video_index: int            #: position of the video in the plan (keys per-video streams)
    index: int                  #: position of the clip in the dataset: train, validation, test
    split: str                  #: official split
    person: dict[str, float]    #: the person's scores (shared by the video's clips; not clipped)
    scores: dict[str, float]    #: noiseless scores in [0, 1]: what the clip's factors show
    noise: dict[str, float]     #: label noise (never shown)
    labels: dict[str, float]    #: clip(scores + noise, 0, 1): what the annotation files hold
    interview: float


def split_counts(n_clips: int) -> dict[str, int]:
    """Clips per official split: 20 % each for validation and test (at least 1), the rest training."""
    held = max(1, round(SPLIT_SHARES["validation"] * n_clips))
    return {"train": n_clips - 2 * held, "validation": held, "test": held}


def plan_videos(n_clips: int, rng: np.random.Generator) -> list[tuple[str, list[int]]]:
    """Videos until ``n_clips`` clips: (11-character id, sorted clip numbers in 0-5) each.

    Clip counts follow ``CLIPS_PER_VIDEO``; the last video is cut to fit. Ids are unique.
    """
    videos: list[tuple[str, list[int]]] = []
    used: set[str] = set()
    left = n_clips
    while left > 0:
        vid = "".join(rng.choice(list(_ID_ALPHABET), size=11))
        if vid in used:
            continue
        used.add(vid)
        k = min(int(rng.choice(len(CLIPS_PER_VIDEO), p=CLIPS_PER_VIDEO)) + 1, left)
        videos.append((vid, sorted(int(n) for n in rng.choice(6, size=k, replace=False))))
        left -= k
    return videos


def _matched(draws: np.ndarray, weights: np.ndarray, mean: np.ndarray, sd: float) -> np.ndarray:
    """``draws`` (rows) moved and mixed so that their weighted mean is ``mean`` and covariance ``sd^2 R`` exactly.

    ``draws`` are standard normal. Small demos have few people: raw draws would give
    correlations and spreads far from the design by chance. With no more than 10 rows
    the draws are only centred, then given the design's covariance.
    """
    w = weights / weights.sum()
    centred = draws - w @ draws
    if len(draws) > 2 * len(TRAITS):  # enough rows for a stable covariance to undo
        cov = (centred * w[:, None]).T @ centred
        centred = np.linalg.solve(np.linalg.cholesky(cov), centred.T).T
    return mean + sd * centred @ np.linalg.cholesky(trait_correlation_matrix()).T


def draw_labels(videos: np.ndarray, n_videos: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Labels of clips whose video numbers are ``videos``: ``[n_clips, 5]`` arrays in TRAITS order.

    Keys: ``person`` (the video's person scores, per clip), ``scores`` (noiseless, in [0, 1]),
    ``noise``, ``labels``; and ``interview`` ``[n_clips]``. Person scores are matched over
    the clips, clip deviations over all clips, to the designed means, SDs and correlations
    (``_matched``), so even 200 clips show the designed structure; the noise is left as drawn.
    """
    n_traits = len(TRAITS)
    means = np.array([TRAIT_MEANS[t] for t in TRAITS])
    people = _matched(rng.standard_normal((n_videos, n_traits)),
                      np.bincount(videos, minlength=n_videos).astype(float), means, BETWEEN_SD)
    deviations = _matched(rng.standard_normal((len(videos), n_traits)), np.ones(len(videos)),
                          np.zeros(n_traits), WITHIN_SD)
    person = people[videos]
    scores = np.clip(person + deviations, 0.0, 1.0)
    noise = rng.normal(0.0, NOISE_STD, size=scores.shape)
    labels = np.clip(scores + noise, 0.0, 1.0)
    interview = np.clip(labels.mean(axis=1) + rng.normal(0.0, NOISE_STD, size=len(videos)), 0.0, 1.0)
    return {"person": person, "scores": scores, "noise": noise, "labels": labels, "interview": interview}


def split_figures(videos: np.ndarray, splits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``test_overlap`` and ``same_video_gain`` of one split (0 train, 1 validation, 2 test) of labelled clips."""
    train, test = splits == 0, splits == 2
    in_train = set(videos[train].tolist())
    base = lb.baseline_accuracies(labels[train], videos[train].tolist(), labels[test], videos[test].tolist())
    return {"test_overlap": float(np.mean([v in in_train for v in videos[test].tolist()])),
            "same_video_gain": base["same_video"] - base["train_mean"]}


def draw_official_splits(videos: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split (0 train, 1 validation, 2 test) of each clip, given its video number and labels.

    Per clip, like the real splits: a random permutation cut 60/20/20 (``split_counts``), so
    a person's clips land on several sides. With 40 test clips the test overlap and the
    same-video gain vary much by chance, so of ``SPLIT_DRAWS`` permutations the one nearest
    the real figures (``REAL_TEST_OVERLAP``, ``REAL_SAME_VIDEO_GAIN``, relative distances
    added) is kept: the most typical split, not a lucky or an unlucky one.
    """
    counts = split_counts(len(videos))
    cut = np.repeat(np.arange(len(SPLITS)), [counts[s] for s in SPLITS])
    best, best_gap = cut, math.inf
    for _ in range(SPLIT_DRAWS):
        splits = cut[rng.permutation(len(videos))]
        fig = split_figures(videos, splits, labels)
        gap = (abs(fig["test_overlap"] - REAL_TEST_OVERLAP) / REAL_TEST_OVERLAP
               + abs(fig["same_video_gain"] - REAL_SAME_VIDEO_GAIN) / REAL_SAME_VIDEO_GAIN)
        if gap < best_gap:
            best, best_gap = splits, gap
    return best


def draw_demo_labels(n_clips: int = 200, seed: int = 0) -> list[DemoClipLabels]:
    """Every demo clip: name, video, official split and labels; training clips first, then validation, test.

    Deterministic in ``(n_clips, seed)``: the videos (``plan_videos``), then the labels
    (``draw_labels``), then the official splits (``draw_official_splits``). Within a split
    clips come in random order, so a video's clips spread over the groups of 80.
    """
    if n_clips < 3:
        raise ValueError(f"the demo dataset needs at least 3 clips (one per split), got {n_clips}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    layout_rng = np.random.default_rng([seed, _STREAM_LAYOUT])
    videos = plan_videos(n_clips, layout_rng)
    clips = [(v, vid, number) for v, (vid, numbers) in enumerate(videos) for number in numbers]
    video_of = np.array([v for v, _, _ in clips])
    drawn = draw_labels(video_of, len(videos), np.random.default_rng([seed, _STREAM_LABELS]))
    split_of = draw_official_splits(video_of, drawn["labels"], np.random.default_rng([seed, _STREAM_SPLITS]))
    order = np.concatenate([layout_rng.permutation(np.flatnonzero(split_of == i)) for i in range(len(SPLITS))])

    as_dict = lambda a: {t: float(x) for t, x in zip(TRAITS, a)}  # noqa: E731
    result = []
    for index, k in enumerate(order.tolist()):
        v, vid, number = clips[k]
        result.append(DemoClipLabels(
            name=f"{vid}.{number:03d}.mp4", video_id=vid, video_index=v, index=index, split=SPLITS[split_of[k]],
            person=as_dict(drawn["person"][k]), scores=as_dict(drawn["scores"][k]), noise=as_dict(drawn["noise"][k]),
            labels=as_dict(drawn["labels"][k]), interview=float(drawn["interview"][k])))
    return result


def demo_annotations(clips: Sequence[DemoClipLabels]) -> dict[str, dict[str, dict[str, float]]]:
    """The clips' labels as ``helpers.labels`` takes them: split -> trait -> {clip name: label} (five traits)."""
    by_split: dict[str, dict[str, dict[str, float]]] = {s: {t: {} for t in TRAITS} for s in SPLITS}
    for clip in clips:
        for t in TRAITS:
            by_split[clip.split][t][clip.name] = clip.labels[t]
    return by_split


def noise_floor_mae() -> float:
    """Expected mean absolute error of a model that reads every factor exactly: ``E|e| = NOISE_STD sqrt(2/pi)``.

    (Slightly less in practice: labels clipped to [0, 1] lose a little noise at the ends.)
    """
    return NOISE_STD * math.sqrt(2.0 / math.pi)


def label_targets(clips: Sequence[DemoClipLabels]) -> dict[str, float]:
    """The figures the demo's labels are designed to hit, measured on the labels alone (``helpers.labels``).

    ``test_overlap`` (share of test clips whose video has a training clip; target 0.7-0.95),
    ``mean_pairwise_r`` (training clips; 0.3-0.5), ``min_between_video_share`` and
    ``max_between_video_share`` (over traits, all clips; 0.55-0.85), ``same_video_gain``
    (same-video minus train-mean mean accuracy on test; >= 0.0118, half the real gain),
    ``extraversion_r2`` (from the other four traits, training clips; <= 0.3),
    ``within_video_sd`` (square root of ``within_video_variance``, mean over traits; real
    about 0.075) and ``total_sd`` (population SD over all clips, mean over traits; real 0.134-0.155).
    """
    by_split = demo_annotations(clips)
    train, merged = by_split["train"], lb.merge_splits(by_split)
    base = lb.baselines(by_split)
    share = lb.between_video_share(merged)
    within = lb.within_video_variance(merged)
    return {
        "test_overlap": lb.clips_with_video_in_training(by_split)["test"],
        "mean_pairwise_r": lb.mean_pairwise_correlation(lb.trait_correlation(train)),
        "min_between_video_share": min(share.values()),
        "max_between_video_share": max(share.values()),
        "same_video_gain": base["same_video"] - base["train_mean"],
        "extraversion_r2": lb.r2_from_others(train, "extraversion"),
        "within_video_sd": float(np.mean([math.sqrt(v) for v in within.values()])),
        "total_sd": float(np.mean(list(lb.trait_sd(merged).values()))),
    }
